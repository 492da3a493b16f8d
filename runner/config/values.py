"""Plain values the configuration's records are made of: durations and secret references."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (86400, 3600, 60, 1)


def seconds(value: int | str) -> int:
    """'1h30m' -> 5400, 45 -> 45. Schema-valid input only."""
    if isinstance(value, int):
        return value
    match = _DURATION_RE.match(value)
    if not match or not value:
        raise ValueError(f"not a duration: {value!r}")
    return sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS, strict=True) if g)


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret (env:NAME or file:/path); renders masked, never holds the value."""

    ref: str

    @property
    def scheme(self) -> str:
        return self.ref.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.ref.split(":", 1)[1]

    def __str__(self) -> str:
        return f"<secret {self.ref}>"


def is_secret_ref(value: object) -> bool:
    """Is `value` a secret reference (env:NAME or file:PATH) rather than a value?"""
    return isinstance(value, str) and (value.startswith("env:") or value.startswith("file:"))
