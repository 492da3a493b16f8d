"""Queue lengths over time (celery/lengths.py): what a sample adds, and what it lets go."""

from runner.celery.lengths import KEEP, appended


def test_samples_stay_bounded_by_age_and_by_the_configured_queues() -> None:
    points: dict[str, list[list[float]]] = {}
    for i in range(1000):  # 8.3 h of samples every 30 s
        points = appended(points, {"high": i, "low": 0, **({"gone": 1} if i < 10 else {})},
                          1_800_000_000.0 + 30 * i)
    assert set(points) == {"high", "low"}  # a queue no longer configured goes
    assert len(points["high"]) == KEEP // 30 == 360  # 3 h of them, oldest first
    assert points["high"][0] == [1_800_000_000.0 + 30 * 640, 640]
    assert points["high"][-1] == [1_800_000_000.0 + 30 * 999, 999]
