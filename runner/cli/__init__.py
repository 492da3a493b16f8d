"""The command line: `runner` and its commands (a click group; base.py), by subject."""

from runner.cli import (  # noqa: F401 - they add their commands
    config,
    discover,
    notify,
    runs,
    system,
    workflows,
)
from runner.cli.base import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli.main(prog_name="runner")
