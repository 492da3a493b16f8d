"""Riding out a store that is away: told once lost, once back; a run's final state kept."""

from __future__ import annotations

import logging

import pytest

from runner.celery.tasks import keep
from runner.errors import StoreUnavailable
from runner.store.outage import Outage


def test_an_outage_is_told_once_when_lost_and_once_when_back(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    outage = Outage("beat", logging.getLogger("t"), lambda: now[0])
    delays = [outage.lost("refused") for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    now[0] = 12.0
    outage.ok()
    outage.ok()
    said = [r.getMessage() for r in caplog.records]
    assert said == ["beat: lost the store (refused); retrying until it is back",
                    "beat: the store is back after 12.0s"]


def test_a_final_state_is_kept_until_the_store_is_back(
        caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def save() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise StoreUnavailable("Redis is unavailable: refused")
        return "SUCCESS"

    assert keep(save, "r1") == "SUCCESS"
    assert len(calls) == 3
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2
    assert said[0].startswith("run r1: lost the store (Redis is unavailable: refused)")
    assert said[1].startswith("run r1: the store is back after")


def test_a_final_state_is_given_up_after_its_patience() -> None:
    def save() -> None:
        raise StoreUnavailable("Redis is unavailable: refused")

    with pytest.raises(StoreUnavailable):
        keep(save, "r1", patience=0.1)
