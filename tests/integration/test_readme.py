"""The README's configuration examples are a valid configuration, and its commands exist."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from runner.cli import cli
from tests.helpers.repos import PROJECT

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


def test_the_readme_lists_every_trigger() -> None:
    """Triggers written in the code (enqueue's 5th argument, a record's "trigger") are in the
    history section's list: literally, or as the constant start of an f-string."""
    listed = re.findall(r'"([^"]+)"', re.search(r'"trigger" \(([^)]*)\)', README)[1])
    found: set[str] = set()
    for path in (PROJECT / "runner").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            values = []
            if isinstance(node, ast.Call) and len(node.args) > 4 and (
                    getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            ) == "enqueue":
                values.append(node.args[4])
            if isinstance(node, ast.Dict):
                values += [v for k, v in zip(node.keys, node.values, strict=True)
                           if isinstance(k, ast.Constant) and k.value == "trigger"]
            for v in values:
                if isinstance(v, ast.Constant):
                    found.add(str(v.value))
                elif isinstance(v, ast.JoinedStr) and isinstance(v.values[0], ast.Constant):
                    found.add(f"{v.values[0].value}*")
    assert {"cli", "api", "schedule *", "retry-of *"} <= found  # the scan sees them all
    for trigger in found:
        assert any(t == trigger or (trigger.endswith("*") and t.startswith(trigger[:-1]))
                   for t in listed), f"the README's trigger list {listed} lacks {trigger!r}"


def test_the_readme_names_every_package_ci_installs() -> None:
    """`make test`'s prerequisites in the README are the packages .ci/run installs."""
    ci = (PROJECT / ".ci" / "run").read_text()
    packages = set(re.search(r"for pkg in ([^;]+);", ci)[1].split()) - {"git", "make"}
    named = set(re.search(r"Debian: `apt-get install ([^`]+)`", README)[1].split())
    assert packages <= named, f"README omits {sorted(packages - named)}"
