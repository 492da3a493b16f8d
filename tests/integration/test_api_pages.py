"""The dashboard's server side for real: GET /api/runs' filters and paging, the job and
schedule pages, the deep URLs; on one `runner api` in front of Redis, its configuration a
committed revision the reconciler applied (the working tree changed since), and run records
written to the store as workers and beat write them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from runner.runs import RunRecord
from runner.store import RunFilter, Store
from tests.helpers.api import VIEW, Api, start_api
from tests.helpers.cluster import make_cluster
from tests.helpers.repos import git
from tests.servers import Redis

PARAMS_JOB = """\
# the jobs the pages show
jobs:
  deploy:
    description: Ship it.
    queue: high
    targets: [here]
    params:
      version: {type: string, pattern: "^v[0-9]+$", description: what to ship}
      batch: {type: integer, minimum: 1, maximum: 9, default: 3}
    steps:
      - {command: echo "$RUNNER_PARAM_VERSION"}

  other: {queue: low, targets: [here], steps: [{command: echo other}]}
"""
SCHEDULES = """\
schedules:
  nightly: {job: deploy, cron: "30 2 * * *", timezone: Europe/Berlin, params: {version: v1}}
  hourly: {job: deploy, every: 1h, params: {version: v2}}
"""
WORKFLOW = """\
workflows:
  chain:
    nodes:
      first: {job: deploy, params: {version: v3}}
"""
BASE = 1_790_000_000.0  # the seeded runs' first creation time (2026-09-21)
N = 240


@dataclass(frozen=True)
class Site:
    api: Api
    store: Store
    repo: Path
    revision: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, redis_server: Redis) -> Iterator[Site]:
    cluster = make_cluster(tmp_path_factory.mktemp("pages"), redis_server.url)
    repo = cluster.repo
    (repo / "jobs.d" / "deploy.yaml").write_text(PARAMS_JOB)
    (repo / "schedules.d" / "s.yaml").write_text(SCHEDULES)
    (repo / "workflows.d").mkdir()
    (repo / "workflows.d" / "w.yaml").write_text(WORKFLOW)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pages")
    done = cluster.runner("reconcile", "--once")
    assert done.returncode == 0, done.stderr
    # after the commit the reconciler applied: the page shows the applied text, not this
    (repo / "jobs.d" / "deploy.yaml").write_text("# edited, not committed\n\n" + PARAMS_JOB)
    cluster.store.save_runs([RunRecord.from_json(r) for r in seeded()])
    api = start_api(cluster, {"RUNNER_COMMIT_URL": "https://git.example/c/{sha}"})
    yield Site(api, cluster.store, repo, git(repo, "rev-parse", "HEAD"))
    api.stop()


def seeded() -> list[dict[str, Any]]:
    """N runs of varied job, state, queue, trigger and worker; ties on the creation time."""
    out = []
    for i in range(N):
        created = BASE + (i // 2) * 60
        out.append({"run_id": f"{int(created * 1000):012x}-{i:08x}",
                    "job": ("deploy", "other", "quick-low")[i % 3],
                    "state": ("SUCCESS", "FAILURE", "SUCCESS", "REVOKED")[i % 4],
                    "queue": ("high", "low")[i % 5 == 0],
                    "trigger": ("api", "cli", "schedule hourly", "retry-of x")[i % 4],
                    "worker": f"w{i % 3}@host", "created": created,
                    "started": created + 1, "finished": created + 1 + i % 7})
    return out


def walk(client: httpx.Client, params: dict[str, Any], limit: int = 7) -> list[dict[str, Any]]:
    """Every run GET /api/runs gives for `params`, following `next` to the end."""
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = client.get("/api/runs", params={**params, "limit": limit,
                                             **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        seen += r.json()["runs"]
        cursor = r.json()["next"]
        if not cursor:
            return seen


MID = BASE + 60 * 60
FILTERS: list[tuple[dict[str, Any], Any]] = [
    ({"queue": "low"}, lambda r: r["queue"] == "low"),
    ({"trigger": "schedule"}, lambda r: r["trigger"] == "schedule hourly"),
    ({"trigger": "schedule hourly"}, lambda r: r["trigger"] == "schedule hourly"),
    ({"trigger": "schedule hour"}, lambda r: False),  # words, not characters
    ({"worker": "w1@host"}, lambda r: r["worker"] == "w1@host"),
    ({"until": MID}, lambda r: r["created"] <= MID),
    ({"since": MID, "until": MID + 1800}, lambda r: MID <= r["created"] <= MID + 1800),
    ({"job": "deploy", "state": "SUCCESS", "worker": "w0@host"},
     lambda r: (r["job"], r["state"], r["worker"]) == ("deploy", "SUCCESS", "w0@host")),
    ({"q": seeded()[101]["run_id"][:12]}, lambda r: r["run_id"][:12] ==
     seeded()[101]["run_id"][:12]),
    ({"q": seeded()[101]["run_id"]}, lambda r: r["run_id"] == seeded()[101]["run_id"]),
    ({"q": "zz"}, lambda r: False),
]


@pytest.mark.parametrize(("params", "keep"), FILTERS, ids=[",".join(p) for p, _ in FILTERS])
def test_runs_filters_page_through_exactly_the_matching_runs(site: Site, params: dict[str, Any],
                                                             keep: Any) -> None:
    with site.api.client(VIEW) as viewer:
        seen = walk(viewer, params)
    want = sorted((r for r in seeded() if keep(r)), key=lambda r: (r["created"], r["run_id"]),
                  reverse=True)
    assert [r["run_id"] for r in seen] == [r["run_id"] for r in want]


def test_a_filtered_scan_pages_on_without_gaps(store: Store) -> None:
    """A scan too short for a page ends it early with a cursor; walking on finds each
    matching run once (both backends)."""
    store.save_runs([RunRecord.from_json(r) for r in seeded()])
    where = RunFilter(queue="low", trigger="cli")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        runs, cursor = store.runs_page(before=cursor, limit=5, scan=10, where=where)
        seen += [r.run_id for r in runs]
        pages += 1
        if cursor is None:
            break
    want = [r["run_id"] for r in sorted(seeded(), key=lambda r: (r["created"], r["run_id"]),
                                        reverse=True)
            if r["queue"] == "low" and r["trigger"] == "cli"]
    assert seen == want and pages >= N // 10


def test_job_page_shows_the_applied_definition_targets_schedules_params_stats(
        site: Site) -> None:
    with site.api.client(VIEW) as viewer:
        page = viewer.get("/api/jobs/deploy").json()
        assert viewer.get("/api/jobs/nope").status_code == 404
        flow = viewer.get("/api/jobs/chain")
    committed = PARAMS_JOB.splitlines()
    assert (page["file"], page["line"]) == ("jobs.d/deploy.yaml", 3)
    assert page["yaml"] == "\n".join(committed[2:11]) + "\n"
    assert page["revision"] == site.revision
    assert page["commit_url"] == f"https://git.example/c/{site.revision}"
    assert page["targets"] == ["here"] and page["queue"] == "high"
    assert [s["name"] for s in page["schedules"]] == ["hourly", "nightly"]
    berlin = [datetime.fromisoformat(t) for t in page["schedules"][1]["next"]]
    assert len(berlin) == 5 and all(t.utcoffset() == t.astimezone(ZoneInfo("Europe/Berlin"))
                                    .utcoffset() and (t.hour, t.minute) == (2, 30)
                                    for t in berlin)
    assert page["params"] == {
        "version": {"type": "string", "pattern": "^v[0-9]+$", "description": "what to ship"},
        "batch": {"type": "integer", "minimum": 1, "maximum": 9, "default": 3}}
    mine = [r for r in seeded() if r["job"] == "deploy"]
    ended = sorted((r for r in mine if r["state"] in ("SUCCESS", "FAILURE")),
                   key=lambda r: (r["created"], r["run_id"]))[-100:]
    assert page["stats"] == {
        "runs": len(mine), "succeeded": sum(r["state"] == "SUCCESS" for r in mine),
        "failed": sum(r["state"] == "FAILURE" for r in mine),
        "durations": [[r["finished"], r["finished"] - r["started"]] for r in ended]}
    assert flow.status_code == 404 and "/api/workflows/chain" in flow.json()["detail"]


def test_schedule_page_next_firings_in_its_zone_and_past_ones_with_a_missed(site: Site
                                                                            ) -> None:
    due = datetime(2026, 11, 30, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    site.store.save_runs([RunRecord.from_json(r) for r in (
        {"run_id": f"{int(due.timestamp() * 1000):012x}-00000001", "job": "deploy",
         "state": "SUCCESS", "trigger": "schedule nightly", "schedule": "nightly",
         "scheduled_for": due.isoformat(), "created": due.timestamp() + 2.5},
        {"run_id": f"{int(due.timestamp() * 1000) + 86400_000:012x}-00000002",
         "job": "deploy", "state": "MISSED", "trigger": "schedule nightly",
         "schedule": "nightly", "error": "1 firing(s) of schedule nightly missed",
         "scheduled_for": due.replace(day=1, month=12).isoformat(),
         "created": due.timestamp() + 86400 + 600})])
    with site.api.client(VIEW) as viewer:
        page = viewer.get("/api/schedules/nightly").json()
        assert viewer.get("/api/schedules/nope").status_code == 404
    assert (page["job"], page["when"], page["timezone"], page["suspended"]) == (
        "deploy", "cron 30 2 * * *", "Europe/Berlin", False)
    nexts = [datetime.fromisoformat(t) for t in page["next"]]
    assert len(nexts) == 10 and nexts == sorted(nexts) and all(
        t.utcoffset() == t.astimezone(ZoneInfo("Europe/Berlin")).utcoffset()
        and (t.hour, t.minute) == (2, 30) for t in nexts)
    assert [(f["state"], f["at"], f["late"]) for f in page["firings"]] == [
        ("MISSED", "2026-12-01T02:30:00+01:00", 600.0),
        ("SUCCESS", "2026-11-30T02:30:00+01:00", 2.5)]
    assert "missed" in page["firings"][0]["error"]


@pytest.mark.parametrize("path", ["/runs/0190-ab", "/jobs/deploy", "/schedules/nightly",
                                  "/workflows/chain", "/workers/busy@host"])
def test_deep_urls_answer_the_dashboard_without_a_token(site: Site, path: str) -> None:
    with site.api.client(None) as anyone:
        r = anyone.get(path)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "<html" in r.text.lower()


@pytest.mark.parametrize("path", ["/api/jobs/deploy", "/api/schedules/nightly",
                                  "/api/runs?queue=low&q=01"])
def test_the_pages_data_needs_a_token(site: Site, path: str) -> None:
    with site.api.client(None) as anyone, site.api.client(VIEW) as viewer:
        assert anyone.get(path).status_code == 401
        assert viewer.get(path).status_code == 200


def test_paging_goes_on_past_the_store_into_the_report_branch(
        tmp_path: Path, redis_server: Redis) -> None:
    """Runs the store let go (published, then forgotten) come after the store's oldest, from
    the report branch: every run once, newest first; filters hold there too; and GET
    /api/runs/ID reads one from there."""
    cluster = make_cluster(tmp_path, redis_server.url)
    git(cluster.repo, "init", "-q", "-b", "main")
    git(cluster.repo, "add", "-A")
    git(cluster.repo, "commit", "-qm", "config")
    start = time.time() - 3 * 86400  # over 3 days, all younger than RUNNER_KEEP_RUNS
    runs = [{"run_id": f"{int((start + i * 7200) * 1000):012x}-{i:08x}",
             "job": ("quick-low", "quick-high")[i % 2], "state": ("SUCCESS", "FAILURE")[i % 3 == 0],
             "queue": "low", "trigger": "api", "created": start + i * 7200,
             "finished": start + i * 7200 + 1} for i in range(30)]
    cluster.store.save_runs([RunRecord.from_json(r) for r in runs])
    done = cluster.runner("publish", "--once")
    assert done.returncode == 0, done.stderr
    assert cluster.store.forget(start + 17.5 * 7200) == (18, 18)  # the oldest 18: branch only
    api = start_api(cluster)
    try:
        newest_first = [r["run_id"] for r in reversed(runs)]
        with api.client(VIEW) as viewer:
            assert [r["run_id"] for r in walk(viewer, {})] == newest_first
            assert [r["run_id"] for r in walk(viewer, {"job": "quick-high",
                                                       "state": "FAILURE"}, 2)] == [
                r["run_id"] for r in reversed(runs)
                if (r["job"], r["state"]) == ("quick-high", "FAILURE")]
            old = viewer.get(f"/api/runs/{runs[0]['run_id']}")
            assert old.status_code == 200 and old.json()["job"] == "quick-low"
            assert viewer.get("/api/runs", params={"cursor": "reports:x"}).status_code == 400
    finally:
        api.stop()
