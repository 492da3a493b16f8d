"""Jitter and Jenkins' H: stable values from a SHA-256 of the schedule's name, and every firing
computed through next_fires (plan, diff, status, beat's decide, backfill) carries them."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.backfill import firings
from runner.celery.beat import decide
from runner.cli import cli
from runner.config import model
from runner.cron import hashed, parse
from runner.desired import next_fires, when
from runner.diff import changes
from runner.schedule import jitter_offset
from tests.helpers.repos import BASE


def sched(name: str, **v: object) -> model.Schedule:
    return model.schedule(name, {"job": "j", **v})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# Pinned: these must never change, or every fleet's spread moves on upgrade.
@pytest.mark.parametrize(("expr", "name", "concrete"), [
    ("H 2 * * *", "nightly", "42 2 * * *"),
    ("H 2 * * *", "backup", "34 2 * * *"),
    ("H/15 * * * *", "nightly", "12-59/15 * * * *"),
    ("H(0-29)/10 * * * *", "nightly", "2-29/10 * * * *"),
    ("H(0-29)/10 * * * *", "backup", "4-29/10 * * * *"),
    ("0 0 H H H", "nightly", "0 0 22 2 5"),
    ("H,30 * * * *", "backup", "34,30 * * * *"),
    ("H(1-7) H/6 H/2 H(jan-mar) H(mon-fri)", "nightly", "1 0-23/6 2-28/2 2 1"),
    ("h 2 * * thu", "nightly", "42 2 * * thu"),  # any case; the h of thu is no H
    ("30 2 * * thu", "nightly", "30 2 * * thu"),  # without H: the expression itself
    ("@daily", "nightly", "@daily"),
])  # fmt: skip
def test_h_resolves_to_pinned_numbers(expr: str, name: str, concrete: str) -> None:
    assert hashed(expr, name) == concrete


@pytest.mark.parametrize(("name", "jitter", "offset"), [
    ("nightly", 30, 2), ("backup", 30, 23), ("spread-5m", 240, 119), ("a", 3600, 3334),
    ("nightly", 0, 0), ("nightly", 1, 0),
])  # fmt: skip
def test_jitter_offset_is_pinned(name: str, jitter: int, offset: int) -> None:
    assert jitter_offset(name, jitter) == offset


def test_h_stays_in_jenkins_ranges_for_many_names() -> None:
    seen: list[set[int]] = [set(), set(), set(), set(), set()]
    for i in range(2000):
        cron = parse(hashed("H H H H H", f"s{i}"))
        for k, values in enumerate((cron.minutes, cron.hours, cron.days, cron.months,
                                    cron.weekdays)):
            seen[k] |= set(values)
    # day of month only 1-28 (every month has it), weekday 0-6; each range fully used
    assert seen == [set(range(60)), set(range(24)), set(range(1, 29)), set(range(1, 13)),
                    set(range(7))]


def test_h_is_a_number_not_a_star_for_vixie_rules() -> None:
    # a step H is not a wildcard job: on Berlin's fall-back night (2027-10-31, 02:xx twice)
    # it fires once per wall time, as a fixed-time job does
    s = sched("quarter", cron="H/15 2 * * *", timezone="Europe/Berlin")
    assert s.hashed_cron is not None and not parse(s.hashed_cron).wildcard
    fires = next_fires(s, at("2027-10-30T12:00:00+00:00"), 8)
    assert [f.date().isoformat() for f in fires].count("2027-10-31") == 4
    # day-of-month H with a weekday: either matches (a star would require both)
    assert not parse(hashed("0 12 H * 1", "x")).both_days


@pytest.mark.parametrize(("v", "now"), [
    ({"every": "5m", "jitter": "4m"}, "2026-03-28T11:00:00+00:00"),
    ({"cron": "H * * * *", "jitter": "1h"}, "2026-03-28T11:00:00+00:00"),
    # across Berlin's spring jump: the delay is real seconds, not wall-clock ones
    ({"cron": "59 1 * * *", "jitter": "1h", "timezone": "Europe/Berlin"},
     "2026-03-28T12:00:00+01:00"),
    ({"cron": "H/20 * * * *", "jitter": "30s", "timezone": "Australia/Lord_Howe"},
     "2026-04-04T14:00:00+00:00"),
])  # fmt: skip
def test_jitter_keeps_each_firing_within_t_and_t_plus_jitter(v: dict[str, str],
                                                              now: str) -> None:
    for name in ("alpha", "beta", "gamma", "delta"):
        s = sched(name, **v)
        plain = sched(name, **{k: x for k, x in v.items() if k != "jitter"})
        shift = timedelta(seconds=s.jitter_offset)
        assert timedelta(0) <= shift < timedelta(seconds=s.jitter)
        # each firing is its unjittered one t plus the offset, in real time: in [t, t+jitter)
        jittered, base = next_fires(s, at(now), 40), next_fires(plain, at(now) - shift, 40)
        assert [j.astimezone(UTC) - b.astimezone(UTC)  # same-zone subtraction is wall time
                for j, b in zip(jittered, base, strict=True)] == [shift] * 40
        assert all(j.tzinfo == b.tzinfo for j, b in zip(jittered, base, strict=True))


def test_jitter_does_not_lose_a_firing_due_before_now() -> None:
    s = sched("spread-5m", every="5m", jitter="4m")  # offset 119 s
    # 11:05 fires at 11:06:59: at 11:06 it is still ahead
    assert next_fires(s, at("2026-03-28T11:06:00+00:00"), 1) == [
        at("2026-03-28T11:06:59+00:00")]


def test_plan_words_show_the_concrete_cron() -> None:
    assert when(sched("nightly", cron="H 2 * * *")) == "cron H 2 * * * (= 42 2 * * *)"
    assert when(sched("nightly", cron="30 2 * * *")) == "cron 30 2 * * *"


def test_beat_and_backfill_use_the_jittered_instant() -> None:
    s = sched("spread-5m", every="5m", jitter="4m", starting_deadline="10s")
    due = at("2026-03-28T11:06:59+00:00")
    assert decide(s, at("2026-03-28T11:02:00+00:00"), at("2026-03-28T11:06:58+00:00")) is None
    # the deadline counts from the jittered instant: 9 s after it still runs, 11 s is MISSED
    d = decide(s, at("2026-03-28T11:02:00+00:00"), due + timedelta(seconds=9))
    assert d is not None and d.run == due
    d = decide(s, at("2026-03-28T11:02:00+00:00"), due + timedelta(seconds=11))
    assert d is not None and d.run is None and d.last_missed == due
    assert firings(s, at("2026-03-28T11:00:00+00:00"), at("2026-03-28T11:15:00+00:00"),
                   False) == [at("2026-03-28T11:01:59+00:00"), due,
                              at("2026-03-28T11:11:59+00:00")]


def test_plan_shows_offset_concrete_cron_and_jittered_times(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(BASE, repo)
    (repo / "schedules.d" / "spread.yaml").write_text(
        "schedules:\n"
        "  nightly: {job: health-check, cron: 'H 2 * * *', jitter: 30s}\n")
    args = ["plan", "--repo", str(repo), "--now", "2026-03-28T12:00:00+00:00", "--count", "2"]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    assert ("  nightly: job health-check on system, cron H 2 * * * (= 42 2 * * *) (UTC), "
            "overlap forbid, jitter 30s (+2s)\n"
            "      2026-03-29T02:42:02+00:00, 2026-03-30T02:42:02+00:00\n") in done.output
    done = CliRunner().invoke(cli, [*args, "--format", "json"])
    plan = json.loads(done.output)["schedules"]
    assert plan["nightly"] == {
        "job": "health-check", "queue": "system", "when": "cron H 2 * * * (= 42 2 * * *)",
        "timezone": "UTC", "overlap": "forbid", "jitter": 30, "jitter_offset": 2,
        "next": ["2026-03-29T02:42:02+00:00", "2026-03-30T02:42:02+00:00"]}
    assert plan["health-every-5m"]["jitter"] == plan["health-every-5m"]["jitter_offset"] == 0


def test_diff_shows_the_jittered_times() -> None:
    base = {"schedules": {"nightly": {"job": "j", "cron": "H 2 * * *"}}}
    head = {"schedules": {"nightly": {"job": "j", "cron": "H 2 * * *", "jitter": "30s"}}}
    [change] = changes(base, head, at("2026-03-28T12:00:00+00:00"), 1)
    assert change.fields == (("jitter", None, "30s"),)
    assert change.fires == (("2026-03-29T02:42:00+00:00",), ("2026-03-29T02:42:02+00:00",))
