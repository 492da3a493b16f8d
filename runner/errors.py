"""The one exception root of runner and the problem record for configuration errors.

    RunnerError                  everything runner raises on purpose; the CLI turns it into exit 2
    ├── UsageError               a bad option or argument (unknown job, bad --now, ...)
    ├── SourceError              the repository cannot be read (missing dir, bad git revision)
    └── ConfigInvalid            the configuration is wrong; carries every Problem; exit 1

Adapters translate their library's errors (yaml, git, croniter) into these at the boundary,
so no dependency exception reaches the user.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One configuration error, located: repo-relative file, 1-based line and column."""

    file: str
    line: int
    column: int
    message: str

    def text(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: error: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "column": self.column,
                "message": self.message}


class RunnerError(Exception):
    """Root of every error runner raises on purpose."""

    exit_code = 2


class UsageError(RunnerError):
    """The command was called wrongly."""


class SourceError(RunnerError):
    """The configuration source (directory or git revision) cannot be read."""


class ConfigInvalid(RunnerError):
    """The configuration has problems; all of them, sorted."""

    exit_code = 1

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__(f"{len(self.problems)} configuration error(s)")
