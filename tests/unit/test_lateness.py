"""The firing-lateness histogram: bucket math, the quantile estimate, a record's lateness."""

from __future__ import annotations

import pytest

from runner.ops.lateness import increments, lateness_of, metric_lines, quantile, summary

# observations -> (bucket counts 0.1 .. 300, +Inf), sum
BUCKETS = [
    ([], (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0.0),
    ([0.0], (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), 0.0),
    ([0.1], (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), 0.1),  # a bound is in its bucket (le)
    ([0.11], (0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), 0.11),
    ([1.0, 2.5, 2.6], (0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3), 6.1),
    ([301.0], (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), 301.0),  # only +Inf
    ([0.05, 45.0, 1e6], (1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3), 1000045.05),
]


@pytest.mark.parametrize(("seconds", "counts", "total"), BUCKETS)
def test_increments_are_cumulative_buckets(seconds: list[float], counts: tuple[int, ...],
                                           total: float) -> None:
    got = increments(seconds)
    assert tuple(int(v) for k, v in got.items() if k.startswith("le=")) == counts
    assert list(got)[-3:] == ["le=+Inf", "sum", "count"]
    assert got["sum"] == pytest.approx(total) and got["count"] == len(seconds)


# observations -> p50, p99 as Prometheus' histogram_quantile estimates them
QUANTILES = [
    ([], None, None),
    ([0.05] * 10, 0.05, 0.099),  # all in the first bucket: interpolated from 0
    ([0.3] * 10, 0.375, 0.497),  # (0.25, 0.5]: 0.4975, rounded
    ([0.05] * 98 + [20.0, 20.0], 0.051, 20.0),  # rank 99 of 100: halfway up (10, 30]
    ([1000.0] * 4, 300.0, 300.0),  # only in +Inf: the highest finite bound
]


@pytest.mark.parametrize(("seconds", "p50", "p99"), QUANTILES)
def test_quantile_estimates(seconds: list[float], p50: float | None, p99: float | None) -> None:
    tally = increments(seconds)
    assert (quantile(0.5, tally), quantile(0.99, tally)) == (p50, p99)


def test_summary_and_exposition_before_and_after() -> None:
    assert summary({})["count"] == 0 and summary({})["p99"] is None
    assert 'runner_schedule_lateness_seconds_bucket{le="+Inf"} 0' in metric_lines({})
    tally = {**increments([0.2, 3.0]), "last": 3.0, "last_at": 1e9}
    s = summary(tally)
    assert (s["count"], s["sum"], s["last"], s["buckets"]["0.25"], s["buckets"]["+Inf"]) == \
        (2, 3.2, 3.0, 1, 2)
    lines = metric_lines(tally)
    assert lines[1] == "# TYPE runner_schedule_lateness_seconds histogram"
    assert 'runner_schedule_lateness_seconds_bucket{le="5.0"} 2' in lines
    assert lines[-2:] == ["runner_schedule_lateness_seconds_sum 3.200000",
                          "runner_schedule_lateness_seconds_count 2"]


def test_lateness_of_a_record() -> None:
    at = "2027-03-28T02:00:00+02:00"  # 00:00 UTC
    assert lateness_of({"created": 1806192000.75, "scheduled_for": at}) == 0.75
    assert lateness_of({"created": 1806191999.0, "scheduled_for": at}) == 0.0
    assert lateness_of({"created": 1806192000.0}) is None  # not a schedule's firing
