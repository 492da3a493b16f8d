"""`runner backfill`: the firings `plan` computes, queued per the schedule's overlap, bounded."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cluster import Cluster, make_cluster
from tests.helpers.procs import poll

SCHEDULES = """\
schedules:
  minutely: {job: side-job, every: 1m, overlap: allow}
  latest: {job: side-job, every: 1m, overlap: replace}
  serial: {job: nap-short, every: 1m, overlap: forbid}
  nightly: {job: side-job, cron: "30 2 * * *", timezone: Europe/Berlin}
  often: {job: side-job, every: 1s, overlap: allow}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = make_cluster(tmp_path, None)
    (c.repo / "schedules.d" / "s.yaml").write_text(SCHEDULES)
    with open(c.repo / "jobs.d" / "j.yaml", "a") as f:
        f.write("  nap-short: {queue: other, targets: [here], steps: [{command: "
                f"'date +%s.%N >> {c.repo}/started; sleep 0.3; "
                f"date +%s.%N >> {c.repo}/ended'}}]}}\n")
    yield c
    c.stop()


def backfill(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.runner("backfill", *args, "--repo", str(cluster.repo), "--format", "json")


def test_dry_run_lists_the_firings_plan_computes_across_a_dst_change(cluster: Cluster) -> None:
    done = backfill(cluster, "nightly", "--from", "2026-10-23T00:00:00+02:00",
                    "--to", "2026-10-27T00:00:00+01:00", "--dry-run")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["firings"] == ["2026-10-23T02:30:00+02:00", "2026-10-24T02:30:00+02:00",
                              "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    assert (out["runs"], out["dry_run"]) == ([], True)


def test_allow_queues_every_firing_and_replace_only_the_latest(cluster: Cluster) -> None:
    window = ("--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:04:00Z")
    every = json.loads(backfill(cluster, "minutely", *window).stdout)
    assert len(every["firings"]) == len(every["runs"]) == 5  # both ends included
    history = json.loads(cluster.runner("history", "--repo", str(cluster.repo), "--format",
                                        "json").stdout)
    queued = {r["run_id"]: r for r in history["runs"]}
    assert [queued[i]["scheduled_for"] for i in every["runs"]] == [
        f"2026-11-30T10:0{m}:00+00:00" for m in range(5)]
    assert {(queued[i]["trigger"], queued[i]["schedule"], queued[i]["state"])
            for i in every["runs"]} == {("backfill", "minutely", "PENDING")}
    latest = json.loads(backfill(cluster, "latest", *window).stdout)
    assert (latest["firings"], len(latest["runs"])) == (["2026-11-30T10:04:00+00:00"], 1)


def test_forbid_runs_one_firing_at_a_time(cluster: Cluster) -> None:
    cluster.worker("side")
    done = backfill(cluster, "serial", "--from", "2026-11-30T10:00:00Z",
                    "--to", "2026-11-30T10:02:00Z")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)["runs"]
    assert len(runs) == 3
    poll(lambda: all(cluster.state(r) == "SUCCESS" for r in runs), 60, "the runs ended")
    started = [float(x) for x in (cluster.repo / "started").read_text().split()]
    ended = [float(x) for x in (cluster.repo / "ended").read_text().split()]
    assert len(started) == len(ended) == 3
    assert all(s >= e for s, e in zip(started[1:], ended[:-1], strict=True))  # no overlap


@pytest.mark.parametrize(("args", "said"), [
    (("often", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T11:00:00Z"),
     "fires more than 1000 times"),
    (("minutely", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T09:00:00Z"),
     "is before --from"),
    (("nope", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T11:00:00Z"),
     "there is no schedule 'nope'"),
    (("minutely", "--from", "yesterday", "--to", "2026-11-30T11:00:00Z"),
     "--from 'yesterday' is not an ISO 8601 time"),
    (("minutely", "--from", "2026-11-30T10:00:00", "--to", "2026-11-30T11:00:00Z"),
     "--from '2026-11-30T10:00:00' has no UTC offset"),
])
def test_bad_ranges_are_one_sentence_and_exit_2(cluster: Cluster, args: tuple[str, ...],
                                                said: str) -> None:
    done = backfill(cluster, *args, "--dry-run")
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_yes_allows_more_up_to_the_hard_maximum(cluster: Cluster) -> None:
    done = backfill(cluster, "often", "--from", "2026-11-30T10:00:00Z",
                    "--to", "2026-11-30T11:00:00Z", "--dry-run", "--yes")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["firings"]) == 3601
