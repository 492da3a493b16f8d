"""Table-driven validation cases: `tests/cases/<name>/` holds a case.

`_base/` is a small valid configuration repository. Each case directory has a `case.yaml`:

    description: what is wrong
    remove: [base files to delete]                  # optional
    symlinks: {link path: link target}              # optional, created by the test
    generate: {path: ..., kind: huge|latin1|nul|text, text: ...}   # optional, not committed as
                                                    # is (text: e.g. .git/config, no git can hold)
    errors:                                         # exactly these, in runner's order
      - {file: jobs.d/x.yaml, line: 3, column: 5, contains: [words of the message]}
    absent: [substrings that must appear nowhere in the output]   # optional (secrets)

and optionally `repo/`, whose files are copied over the base (replacing same-named files).
The test builds the repository in a temporary directory and runs `runner validate --format json`.
"""

from __future__ import annotations

import json
import shutil
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from runner.cli import cli
from tests.helpers.repos import BASE

CASES = Path(__file__).parent / "cases"
CASE_DIRS = sorted(p for p in CASES.iterdir() if p.is_dir() and not p.name.startswith("_"))
CASE_KEYS = {"description", "remove", "symlinks", "generate", "errors", "absent"}
ERROR_KEYS = {"file", "line", "column", "contains"}


def _spec(case: Path) -> dict[str, Any]:
    spec = yaml.safe_load((case / "case.yaml").read_text("utf-8"))
    assert isinstance(spec, dict), f"{case.name}/case.yaml must be a mapping"
    assert not set(spec) - CASE_KEYS, f"{case.name}/case.yaml: unknown keys {set(spec) - CASE_KEYS}"
    assert spec.get("description"), f"{case.name}/case.yaml needs a description"
    for error in spec.get("errors") or []:
        assert set(error) <= ERROR_KEYS and {"file", "line", "column"} <= set(error), error
    return spec


def _generate(path: Path, kind: str, text: str) -> None:
    if kind == "huge":
        # a valid document padded with comments past the 1 MiB limit
        filler = "# " + "x" * 97 + "\n"
        path.write_bytes((text + filler * (1024 * 1024 // len(filler) + 1)).encode("utf-8"))
    elif kind == "latin1":
        path.write_bytes(text.encode("latin-1"))
    elif kind == "text":
        path.write_text(text, "utf-8")
    elif kind == "nul":
        path.write_bytes(text.encode("utf-8"))  # the text carries the NUL ("\0" in case.yaml)
    else:
        raise AssertionError(f"unknown generate kind {kind!r}")


def build_repo(case: Path, root: Path) -> tuple[Path, dict[str, Any]]:
    """The base repository with the case applied, in `root`/repo; and the case's spec."""
    spec = _spec(case)
    repo = root / "repo"
    shutil.copytree(BASE, repo, symlinks=True)
    for rel in spec.get("remove") or []:
        target = repo / rel
        assert target.exists(), f"{case.name}: remove {rel!r} is not a base file"
        target.unlink()
    if (case / "repo").is_dir():
        shutil.copytree(case / "repo", repo, symlinks=True, dirs_exist_ok=True)
    for link, target in (spec.get("symlinks") or {}).items():
        path = repo / link
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)
    generate = spec.get("generate")
    if generate:
        path = repo / generate["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        _generate(path, generate["kind"], generate.get("text", ""))
    return repo, spec


def validate(repo: Path) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(
        cli, ["validate", "--repo", str(repo), "--format", "json", "--no-cache"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
        pytest.fail(f"runner validate crashed:\n{trace}")
    try:
        output = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"runner validate printed no JSON (exit {result.exit_code}):\n{result.output}")
    return result, output


def _show(errors: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {e['file']}:{e['line']}:{e['column']}: {e['message']}" for e in errors)


def test_base_is_valid(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(BASE, repo, symlinks=True)
    result, output = validate(repo)
    assert output == {"ok": True, "errors": []}, _show(output["errors"])
    assert result.exit_code == 0


def test_every_case_has_case_yaml() -> None:
    assert len(CASE_DIRS) >= 45
    missing = [p.name for p in CASE_DIRS if not (p / "case.yaml").is_file()]
    assert not missing, f"case directories without case.yaml: {missing}"


@pytest.mark.parametrize("case", CASE_DIRS, ids=[p.name for p in CASE_DIRS])
def test_case(case: Path, tmp_path: Path) -> None:
    repo, spec = build_repo(case, tmp_path)
    result, output = validate(repo)
    expected = spec.get("errors") or []
    actual = output["errors"]
    report = f"runner printed:\n{_show(actual)}"

    assert len(actual) == len(expected), f"expected {len(expected)} errors. {report}"
    for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
        where = (want["file"], want["line"], want["column"])
        assert (got["file"], got["line"], got["column"]) == where, f"error {i + 1}: {report}"
        for words in want.get("contains") or []:
            assert words in got["message"], f"error {i + 1} lacks {words!r}. {report}"
    assert output["ok"] is (not expected)
    assert result.exit_code == (1 if expected else 0), report
    for secret in spec.get("absent") or []:
        assert secret not in result.output, f"{secret!r} appears in the output. {report}"
