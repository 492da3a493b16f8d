"""The Redis store's Lua scripts take their state names and keys from RunState and keys.py."""

from __future__ import annotations

import re

import pytest

from runner.runs import ACTIVE, RunState
from runner.store.redis import script


@pytest.mark.parametrize("name", ["begin", "forget", "received", "renew", "update"])
def test_every_token_of_a_script_is_replaced(name: str) -> None:
    assert not re.search(r"\{[A-Z]+\}", script(name))


def test_the_scripts_spell_the_states_of_runstate() -> None:
    forget = script("forget")
    assert all(f"['\"{s}\"'] = 1" in forget for s in ACTIVE)  # what forget keeps
    assert f'"state":"{RunState.STARTED}"' in script("begin")
    assert f"'\"{RunState.RECEIVED}\"'" in script("received")
