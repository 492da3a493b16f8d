"""The shape issue 19 asks of tests/: what more than one test module uses lives in
tests/helpers/ (servers in tests/servers.py and tests/wsman.py); no module imports a test
module or a conftest (fixtures reach tests through pytest, never by name)."""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
SHARED = ("tests.helpers", "tests.servers", "tests.wsman")  # what test modules may import


def imports(path: Path) -> set[str]:
    """The modules `path` imports anywhere in its text, by dotted name (`from X import Y`
    counts X and X.Y: Y may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: a relative import"
            found |= {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def is_test_module(name: str) -> bool:
    """`name` is a module pytest collects tests or fixtures from."""
    last = name.rsplit(".", 1)[-1]
    return name.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def test_no_module_imports_a_test_module_and_tests_share_only_helpers() -> None:
    wrong: list[str] = []
    files = sorted([*(PROJECT / "tests").rglob("*.py"), *(PROJECT / "bench").rglob("*.py")])
    for path in files:
        name = ".".join(path.relative_to(PROJECT).with_suffix("").parts)
        found = imports(path)
        wrong += [f"{name} imports {m}" for m in sorted(found) if is_test_module(m)]
        if is_test_module(name):
            wrong += [f"{name} imports {m}" for m in sorted(found)
                      if m.startswith("tests.") and not m.startswith(SHARED)]
    assert len(files) > 60  # the walk found the tests
    assert not wrong, wrong
