"""The shape issue 19 asks of runner/: no module over 350 lines, no function over 100, no
import cycle between its modules (imports inside functions count: they are a cycle that only
shows at run time)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "runner"
MAX_MODULE, MAX_FUNCTION = 350, 100


def modules() -> dict[str, Path]:
    """runner's modules by dotted name (a package by its own name)."""
    return {".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in sorted(ROOT.rglob("*.py"))}


def imported(name: str, path: Path, tree: ast.Module, known: set[str]) -> set[str]:
    """The modules of runner that `name` imports anywhere in its text (not its own packages)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")
                drop = node.level - (1 if path.name == "__init__.py" else 0)
                package = package[:len(package) - drop] if drop else package
                base = ".".join([*package, *([node.module] if node.module else [])])
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {d for d in found if d in known and d != name
            and not name.startswith(d + ".") and not d.startswith(name + ".")}


def test_no_long_module_no_long_function_no_import_cycle() -> None:
    known = modules()
    long: list[str] = []
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        text = path.read_text()
        tree = ast.parse(text)
        lines = len(text.splitlines())
        if lines > MAX_MODULE:
            long.append(f"{name}: {lines} lines")
        long += [f"{name}.{f.name}: {f.end_lineno - f.lineno + 1} lines" for f in ast.walk(tree)
                 if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                 and (f.end_lineno or 0) - f.lineno + 1 > MAX_FUNCTION]
        graph[name] = imported(name, path, tree, set(known))
    assert len(known) > 30  # the walk found runner's modules
    assert not long, long
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None
