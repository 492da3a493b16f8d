"""The README's configuration examples are a valid configuration, and its commands exist."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from runner.cli import cli
from tests.integration.conftest import PROJECT

README = (PROJECT / "README.md").read_text()


def test_readme_configuration_examples_validate(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.S)
    kinds = r"^(queues|targets|jobs|schedules):"
    by_key = {b.split(":", 1)[0]: b for b in blocks if re.match(kinds, b)}
    assert set(by_key) == {"queues", "targets", "jobs", "schedules"}
    (tmp_path / "queues.yaml").write_text(by_key["queues"])
    for kind in ("targets", "jobs", "schedules"):
        (tmp_path / f"{kind}.d").mkdir()
        (tmp_path / f"{kind}.d" / "readme.yaml").write_text(by_key[kind])
    shutil.copytree(PROJECT / "files", tmp_path / "files")
    result = CliRunner().invoke(cli, ["validate", "--repo", str(tmp_path), "--no-cache"])
    assert result.exit_code == 0, result.output


def test_every_command_in_the_readme_exists() -> None:
    documented = set(re.findall(r"^### runner (\w+)", README, re.M))
    assert documented == set(cli.commands)
