"""Beat with an injected clock, on the embedded store and broker: what a tick fires."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from runner.celery.app import create_app
from runner.celery.beat import Beat
from runner.settings import Settings
from runner.system import System
from tests.helpers.repos import copy_demo

FIVE = "schedules:\n  five: {job: health-check, every: 5m, overlap: allow}\n"


def beat_on(tmp_path: Path, schedules: str, start: datetime
            ) -> tuple[Path, System, list[datetime], Beat]:
    """A demo repository with `schedules`, and a beat whose clock reads now[0]."""
    repo = copy_demo(tmp_path / "config")
    (repo / "schedules.d" / "ops.yaml").write_text(schedules)
    system = System(Settings(), repo, repo / ".runner")
    now = [start]
    return repo, system, now, Beat(system, create_app(system), clock=lambda: now[0])


def test_ticks_fire_on_time_and_new_schedules_owe_nothing(tmp_path: Path) -> None:
    repo, system, now, beat = beat_on(tmp_path, FIVE, datetime(2026, 11, 25, 12, 1, tzinfo=UTC))

    def scheduled() -> list[tuple[str, str, str]]:
        return sorted((r.schedule, r.state, r.scheduled_for)
                      for r in system.store.runs(limit=100))

    assert beat.tick() and scheduled() == []
    now[0] = datetime(2026, 11, 25, 12, 5, 3, tzinfo=UTC)
    beat.tick()
    assert scheduled() == [("five", "PENDING", "2026-11-25T12:05:00+00:00")]
    beat.tick()  # the same firing is never fired twice
    assert len(scheduled()) == 1
    # a schedule added at 12:07 fires from then on; 12:00 and before are not owed
    (repo / "schedules.d" / "more.yaml").write_text(
        "schedules:\n  hourly: {job: health-check, cron: '0 * * * *'}\n")
    system._config = None  # read the configuration again now
    now[0] = datetime(2026, 11, 25, 12, 7, tzinfo=UTC)
    beat.tick()
    now[0] = datetime(2026, 11, 25, 13, 0, 1, tzinfo=UTC)
    beat.tick()
    states = scheduled()
    assert ("hourly", "PENDING", "2026-11-25T13:00:00+00:00") in states
    assert not [s for s in states if s[1] == "MISSED" and s[0] == "hourly"]
    # `five` ran 13:00 (on time) and recorded 12:10 ... 12:55 as missed, in one record
    assert [s for s in states if s[0] == "five"] == [
        ("five", "MISSED", "2026-11-25T12:55:00+00:00"),
        ("five", "PENDING", "2026-11-25T12:05:00+00:00"),
        ("five", "PENDING", "2026-11-25T13:00:00+00:00")]
    # beat down for an hour: 13:05 ... 14:00 are all late, none runs, no burst
    now[0] = datetime(2026, 11, 25, 14, 3, tzinfo=UTC)
    beat.tick()
    five = [s for s in scheduled() if s[0] == "five"]
    assert five[-1] == ("five", "PENDING", "2026-11-25T13:00:00+00:00")
    assert ("five", "MISSED", "2026-11-25T14:00:00+00:00") in five
    assert len(five) == 4


def test_suspend_and_resume(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo, system, now, beat = beat_on(tmp_path, FIVE, datetime(2026, 11, 25, 12, 1, tzinfo=UTC))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runner", *args, "--repo", str(repo)],
                              capture_output=True, text=True, timeout=60)

    beat.tick()
    assert cli("suspend", "five").stdout.strip() == "schedule five suspended"
    assert cli("suspend", "fiv").returncode == 2
    assert "suspended: five" in cli("status").stdout
    now[0] = datetime(2026, 11, 25, 12, 5, 1, tzinfo=UTC)
    beat.tick()
    assert system.store.runs(limit=10) == []  # nothing fired, nothing recorded
    assert cli("resume", "five").returncode == 0
    now[0] = datetime(2026, 11, 25, 12, 10, 1, tzinfo=UTC)
    beat.tick()  # 12:05 is not made up; 12:10 fires
    assert [r.scheduled_for for r in system.store.runs(limit=10)] == [
        "2026-11-25T12:10:00+00:00"]
    assert cli("suspend", "--all").returncode == 0
    now[0] = datetime(2026, 11, 25, 12, 15, 1, tzinfo=UTC)
    beat.tick()
    assert len(system.store.runs(limit=10)) == 1
    assert cli("resume").returncode == 2  # neither a schedule nor --all
    import json

    five = json.loads(cli("status", "--format", "json").stdout)["schedules"]["five"]
    assert five["last_fire"] == "2026-11-25T12:15:00+00:00"  # passed while suspended
    assert five["last_run_id"] == system.store.runs(limit=1)[0].run_id
    assert five["next_fire"] is not None and five["job"] == "health-check"


def test_removed_schedules_stop_and_changed_ones_move(tmp_path: Path) -> None:
    repo, system, now, beat = beat_on(
        tmp_path, "schedules:\n  s: {job: health-check, cron: '0 * * * *', overlap: allow}\n",
        datetime(2026, 11, 25, 11, 59, tzinfo=UTC))
    ops = repo / "schedules.d" / "ops.yaml"

    def fired() -> list[str]:
        return sorted(r.scheduled_for for r in system.store.runs(limit=100)
                      if r.state == "PENDING")

    def at(hour: int, minute: int) -> None:
        now[0] = datetime(2026, 11, 25, hour, minute, 1, tzinfo=UTC)
        system._config = None  # read the configuration again, as after RELOAD seconds
        beat.tick()

    at(11, 59)
    at(12, 0)
    assert fired() == ["2026-11-25T12:00:00+00:00"]
    ops.write_text("schedules:\n  s: {job: health-check, cron: '30 * * * *', overlap: allow}\n")
    at(12, 15)  # the changed cron's next firing is 12:30, not 13:00
    at(12, 30)
    assert fired()[-1] == "2026-11-25T12:30:00+00:00"
    ops.write_text("schedules: {}\n")
    at(13, 0)
    at(13, 30)
    assert fired() == ["2026-11-25T12:00:00+00:00", "2026-11-25T12:30:00+00:00"]


def test_a_jitter_change_never_runs_a_firing_again_at_its_new_instant(tmp_path: Path) -> None:
    repo, system, now, beat = beat_on(
        tmp_path, "schedules:\n  moved: {job: health-check, every: 5m, overlap: allow}\n",
        datetime(2026, 11, 25, 12, 1, tzinfo=UTC))
    beat.tick()
    now[0] = datetime(2026, 11, 25, 12, 5, 1, tzinfo=UTC)
    beat.tick()  # 12:05 runs
    (repo / "schedules.d" / "ops.yaml").write_text(  # jitter 4m: `moved` is delayed 34 s
        "schedules:\n  moved: {job: health-check, every: 5m, overlap: allow, jitter: 4m}\n")
    system._config = None
    for second in (10, 35, 40):  # 12:05's new instant, 12:05:34, passes: not run again
        now[0] = datetime(2026, 11, 25, 12, 5, second, tzinfo=UTC)
        beat.tick()
    now[0] = datetime(2026, 11, 25, 12, 10, 35, tzinfo=UTC)
    beat.tick()
    assert sorted(r.scheduled_for for r in system.store.runs(limit=10)) == [
        "2026-11-25T12:05:00+00:00", "2026-11-25T12:10:34+00:00"]


def test_each_queued_firing_adds_its_lateness_to_the_histogram(tmp_path: Path) -> None:
    from runner.ops.lateness import lateness_of
    from runner.store.keys import LATENESS as KEY

    _repo, system, now, beat = beat_on(tmp_path, FIVE, datetime(2026, 11, 25, 12, 1, tzinfo=UTC))
    beat.tick()
    assert system.store.tallies(KEY).get("count", 0) == 0  # nothing fired yet
    now[0] = datetime(2026, 11, 25, 12, 5, 3, tzinfo=UTC)
    beat.tick()
    beat.tick()
    (run,) = system.store.runs(limit=10)
    tally = system.store.tallies(KEY)
    assert (tally["count"], tally["last"]) == (1, lateness_of(run.to_json()))  # once
