"""A seeded mutation fuzzer over valid configurations (the demo and tests/cases/_base).

Each case mutates one YAML file of a valid repository (a value, a key, a line, bytes), commits
it, and runs runner in-process (click's CliRunner): `validate` must end with exit 0, 1 or 2 and
no traceback; when it says ok, `plan`, `run --dry-run` of every job and `diff` must succeed too.
About 40 s by default; RUNNER_FUZZ_SECONDS sets the budget, RUNNER_FUZZ_SEED the first seed
(each case's seed is printed on failure: rerun it with RUNNER_FUZZ_SEED=that and a small budget).
Every crash it finds becomes a table case in tests/cases/.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import time
import traceback
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from runner.cli import cli
from tests.helpers.repos import DEMO, PROJECT, git

BASE = Path(__file__).parent / "cases" / "_base"

# values that broke runner once, or are at an edge of YAML, JSON Schema or Python
VALUES = [
    "0x" + "f" * 4000, "9" * 5000, "1" * 300, "-1", "0", "1e999", "-.inf", ".nan", "0o777",
    "1_000", "''", "null", "~", "true", "no", "{a: 1}", "[1, {b: 2}]", "[]", "{}", "'*'",
    "\"\\udcff\"", "\"\\x00\"", "'é ☃ 𝄞'", "'" + "x" * 2000 + "'", "!!binary aGk=",
    "!!python/object:os.system x", "&a [*a]", "*undefined", "2026-12-01", "2026-12-01T10:00:00",
    "'env:RUNNER_SECRET_NOPE'", "'file:/etc/passwd'", "'label:'", "'group:'", "'*/0 * * * *'",
    "'0 0 31 2 *'", "'@yearly'", "'99999999999s'", "'1h1h'", "/dev/zero", "'../../etc'",
    "'files/../.git/config'", "'C:\\\\x'", "'unix:///tmp/x.sock'", "[{queue: x}]",
    "on_failure", "[check]",
]
KEYS = ["queue", "queues", "targets", "steps", "command", "script", "upload", "download",
        "timeout", "retries", "env", "labels", "groups", "cron", "every", "at", "job", "limit",
        "concurrency", "priority", "max_bytes", "src", "dest", "mode", "when", "transport",
        "host", "port", "user", "password", "key_file", "timezone", "overlap", "<<", "? [a]",
        "workflow", "nodes", "after", "approval",
        "1", "on", "", "x" * 70, "-a"]


def _corpus(root: Path) -> list[Path]:
    """Two valid repositories, each committed once (tag 'base')."""
    repos = []
    for name, copy in (("demo", lambda d: [(shutil.copytree if (PROJECT / n).is_dir() else
                                             shutil.copy2)(PROJECT / n, d / n) for n in DEMO]),
                       ("base", lambda d: shutil.copytree(BASE, d, dirs_exist_ok=True))):
        repo = root / name
        repo.mkdir()
        copy(repo)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "gc.auto", "0")  # no gc under the cases
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "base")
        git(repo, "tag", "base")
        repos.append(repo)
    return repos


def mutate(text: str, rng: random.Random) -> str:
    """One mutation of a YAML text."""
    lines = text.splitlines()
    i = rng.randrange(len(lines))
    line = lines[i]
    kind = rng.randrange(8)
    pair = re.match(r"^(\s*(?:- )?\{?)([^:{}\[\],#]+):\s*(.*)$", line)
    if kind in (0, 1, 2) and pair:  # a value
        lines[i] = f"{pair[1]}{pair[2]}: {rng.choice(VALUES)}"
    elif kind == 3 and pair:  # a key
        lines[i] = f"{pair[1]}{rng.choice(KEYS)}: {pair[3]}"
    elif kind == 4:  # a value inside a flow mapping or list
        spots = [m.end() for m in re.finditer(r"[:\[,]\s*", line)]
        if spots:
            at = rng.choice(spots)
            rest = re.sub(r"^[^,}\]]*", "", line[at:])
            lines[i] = line[:at] + rng.choice(VALUES) + rest
    elif kind == 5:  # lines: delete, duplicate, move
        action = rng.randrange(3)
        if action == 0:
            del lines[i]
        elif action == 1:
            lines.insert(i, line)
        else:
            lines.insert(rng.randrange(len(lines)), lines.pop(i))
    elif kind == 6:  # indentation
        lines[i] = (" " * rng.choice((0, 1, 2, 3, 4, 8))) + line.lstrip()
    else:  # characters
        at = rng.randrange(len(line) + 1)
        lines[i] = line[:at] + rng.choice(["\t", ":", " #", "'", '"', "&", "*", "!", "%", "@",
                                           "{", "]", "- ", "\\", "\u2028"]) + line[at:]
    return "\n".join(lines) + "\n"


def _invoke(args: list[str], what: str) -> Result:
    result = CliRunner().invoke(cli, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
        pytest.fail(f"runner {' '.join(args[:2])} crashed {what}:\n{trace}")
    assert result.exit_code in (0, 1, 2), f"{what}: exit {result.exit_code}\n{result.output}"
    assert "Traceback" not in result.output, f"{what}:\n{result.output}"
    return result


def _runnable(repo: Path) -> list[str]:
    """The names of the jobs and the workflows (each has a dry run)."""
    names = []
    for kind in ("jobs", "workflows"):
        for path in sorted((repo / f"{kind}.d").glob("*.yaml")):
            doc = yaml.load(path.read_text("utf-8"), Loader=yaml.CSafeLoader)  # as runner does
            names += [n for n in doc[kind] if isinstance(n, str)]
    return names


def check_case(repo: Path, seed: int) -> bool:
    """Mutate one file of `repo` (at its tag 'base'), commit, and check every command; True
    when the mutated configuration is valid."""
    rng = random.Random(seed)
    git(repo, "reset", "-q", "--hard", "base")
    files = git(repo, "ls-files", "*.yaml").splitlines()
    path = repo / rng.choice(files)
    text = path.read_text("utf-8")
    for _ in range(rng.choice((1, 1, 2, 3))):
        text = mutate(text, rng)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    git(repo, "commit", "-q", "-a", "-m", "mutated", "--allow-empty")
    what = f"(seed {seed}, {path.relative_to(repo)}):\n{text}"
    r = str(repo)
    result = _invoke(["validate", "--repo", r, "--no-cache"], what)
    if result.exit_code != 0:
        return False
    done = _invoke(["plan", "--repo", r], what)
    assert done.exit_code == 0, f"plan: {done.output}\n{what}"
    for job in _runnable(repo):
        done = _invoke(["run", job, "--dry-run", "--repo", r], what)
        assert done.exit_code == 0, f"run --dry-run {job}: {done.output}\n{what}"
    done = _invoke(["diff", "base", "HEAD", "--repo", r], what)
    assert done.exit_code == 0, f"diff: {done.output}\n{what}"
    return True


def test_fuzz_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    for name, value in (("GIT_AUTHOR_NAME", "t"), ("GIT_COMMITTER_NAME", "t"),
                        ("GIT_AUTHOR_EMAIL", "t@example.invalid"),
                        ("GIT_COMMITTER_EMAIL", "t@example.invalid")):
        monkeypatch.setenv(name, value)
    budget = float(os.environ.get("RUNNER_FUZZ_SECONDS", "40"))
    seed = int(os.environ.get("RUNNER_FUZZ_SEED", "17000"))
    repos = _corpus(tmp_path)
    end, cases, valid = time.monotonic() + budget, 0, 0
    while time.monotonic() < end or cases == 0:
        valid += check_case(repos[seed % len(repos)], seed)
        seed, cases = seed + 1, cases + 1
    print(f"{cases} cases ({valid} valid), seeds up to {seed - 1}")
