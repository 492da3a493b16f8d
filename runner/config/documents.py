"""Safe YAML parsing that keeps positions.

libyaml (PyYAML's C parser) composes the file into nodes; we turn nodes into plain Python values
ourselves so that we can refuse what a configuration file never needs: tags beyond the plain
types, duplicate keys, keys that are not scalars, and alias expansion past a small bound
(billion laughs). Keys are kept as written (`on:` is 'on'). Timestamps stay strings; merge keys
(`<<: *defaults`) work. `locate` maps a path of keys back to a node's line and column, so every
later check can point at the offending key or value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import Problem

MAX_FILE_BYTES = 1024 * 1024
MAX_ALIAS_NODES = 10_000  # nodes reachable through aliases, per file
MAX_DEPTH = 64
MAX_INT_DIGITS, MAX_INT_BITS = 4000, 13_000  # 13,000 bits: about 3,900 decimal digits

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = _T + "str", _T + "int", _T + "float", _T + "bool", _T + "null"
_MAP, _SEQ, _TIMESTAMP, _MERGE = _T + "map", _T + "seq", _T + "timestamp", _T + "merge"
_SCALARS = SafeConstructor()
_KIND_NAMES = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}

Path = tuple[str | int, ...]


def kind_of(value: object) -> str:
    """How a value is called in messages: 'a mapping', 'a string', ..."""
    return _KIND_NAMES.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Parsed:
    """A file's plain value (None when it could not be parsed) and the problems found parsing it."""

    file: str
    value: Any
    problems: tuple[Problem, ...]
    root: Node | None
    refused: frozenset[tuple[int, int]] = frozenset()  # (line, column) of nodes read as null
    incomplete: frozenset[tuple[int, int]] = frozenset()  # mappings whose merge was refused

    index: dict[int, Children] = field(default_factory=dict, compare=False, repr=False)

    def written(self, path: Path) -> str | None:
        """The text of the scalar at `path` as the user wrote it, or None."""
        node = _node(self.root, path, self.index)
        return node.value if isinstance(node, ScalarNode) else None

    def locate(self, path: Path, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the node at `path` (or of its key), else its nearest parent."""
        return locate(self.root, path, key, self.index)

    def span(self, path: Path, text: str) -> tuple[int, int] | None:
        """1-based first and last line of the entry at `path` in `text` (the file parsed):
        its key's line to its value's last, trailing blank and comment lines left out."""
        node = _node(self.root, path, self.index)
        if node is None:
            return None
        lines = text.splitlines()
        first = self.locate(path, key=True)[0]
        end = node.end_mark  # just past the value: the next line, or the next key's indent
        last = min(len(lines), end.line if end.line >= len(lines) or
                   not lines[end.line][:end.column].strip() else end.line + 1)
        while last > first and lines[last - 1].strip()[:1] in ("", "#"):
            last -= 1
        return first, last


def parse(file: str, data: bytes) -> Parsed:
    """Parse one YAML file's bytes; never raises for bad input, returns problems instead."""
    def fail(line: int, column: int, message: str) -> Parsed:
        return Parsed(file, None, (Problem(file, line, column, message),), None)

    if len(data) > MAX_FILE_BYTES:
        return fail(1, 1, f"file is {len(data)} bytes; configuration files are limited to "
                          f"{MAX_FILE_BYTES} bytes (split it into several files)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        return fail(line, column, f"file is not valid UTF-8: byte 0x{data[e.start]:02x} cannot "
                                  "start or continue a character (save the file as UTF-8)")
    if "\x00" in text:
        at = text.index("\x00")
        line, column = text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1
        return fail(line, column, "file contains a NUL character; expected a YAML text file")
    try:
        root = yaml.compose(text, Loader=yaml.CSafeLoader)
    except yaml.MarkedYAMLError as e:
        return fail(*_syntax_error(e))
    except yaml.YAMLError as e:
        return fail(1, 1, f"YAML error: {e}")
    if root is None:
        return Parsed(file, None, (), None)
    builder = _Builder(file)
    value = builder.value(root, 0)
    return Parsed(file, value, tuple(builder.problems), root, frozenset(builder.refused),
                  frozenset(builder.incomplete))


_QUOTE_HINT = (" (a value containing ': ' or ' #', or starting with one of * & ! | > % @ ` [ {, "
               "must be quoted: 'like this')")


def _syntax_error(e: yaml.MarkedYAMLError) -> tuple[int, int, str]:
    """Position and words of a libyaml error: where the offending token starts, what the
    parser was reading and since which line, and a quoting hint where one is likely needed."""
    problem, context = e.problem_mark, e.context_mark
    mark = problem or context
    if problem and context and problem.line == context.line:
        mark = context  # the start of the offending token
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    what = str(e.problem or "")
    if "expected a single document" in f"{what} {e.context}":
        return line, column, ("YAML syntax error: found a second YAML document ('---'); put "
                              "everything in one document")
    if e.context:
        since = f" (started at line {context.line + 1})" if context and context is not mark else ""
        what = f"{what}, {e.context}{since}"
    hint = _QUOTE_HINT if any(w in what for w in ("alias", "anchor", "mapping values", "tag",
                                                  "reserved")) else ""
    return line, column, f"YAML syntax error: {what}{hint}"


def _tag_message(tag: str) -> str:
    shown = tag.replace(_T, "!!") if tag.startswith(_T) else tag
    return (f"YAML tag {shown!r} is not allowed; only plain mappings, lists, strings, numbers, "
            "booleans and null are")


def _short(text: str) -> str:
    """A scalar as written, quoted and cut to fit in a message."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _problem(file: str, node: Node, message: str) -> Problem:
    return Problem(file, node.start_mark.line + 1, node.start_mark.column + 1, message)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.alias_nodes = 0
        self.refused: set[tuple[int, int]] = set()
        self.incomplete: set[tuple[int, int]] = set()

    def refuse(self, node: Node, message: str) -> None:
        """Record a problem and read the node as null, so the rest of the file is still checked."""
        self.problems.append(_problem(self.file, node, message))
        self.refused.add((node.start_mark.line + 1, node.start_mark.column + 1))

    def value(self, node: Node, depth: int) -> Any:
        key = id(node)
        if key in self.seen:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                if self.alias_nodes == MAX_ALIAS_NODES + 1:
                    self.refuse(node, f"aliases expand to more than {MAX_ALIAS_NODES} nodes; "
                                      "refusing to expand further (alias bomb?)")
                return None
        else:
            self.seen.add(key)
        if depth > MAX_DEPTH:
            return self.refuse(node, f"nesting is deeper than {MAX_DEPTH} levels")
        tag = node.tag
        if isinstance(node, ScalarNode):
            return self.scalar(node, tag)
        if key in self.active:
            return self.refuse(node, "an alias refers to the node that contains it "
                                     "(recursive alias)")
        self.active.add(key)
        try:
            if isinstance(node, SequenceNode) and tag == _SEQ:
                return [self.value(item, depth + 1) for item in node.value]
            if isinstance(node, MappingNode) and tag == _MAP:
                return dict(self.pairs(node, depth))
        finally:
            self.active.discard(key)
        return self.refuse(node, _tag_message(tag))

    def scalar(self, node: ScalarNode, tag: str) -> Any:
        if tag in (_STR, _TIMESTAMP):
            return node.value
        try:
            if tag == _INT:
                # Python refuses int() and str() past 4,300 digits: refuse earlier, plainly
                number = 0 if len(node.value) > MAX_INT_DIGITS else \
                    _SCALARS.construct_yaml_int(node)
                if len(node.value) > MAX_INT_DIGITS or number.bit_length() > MAX_INT_BITS:
                    return self.refuse(node, f"the number {_short(node.value)} is too large; "
                                             "quote it to make it a string")
                return number
            if tag == _FLOAT:
                return _SCALARS.construct_yaml_float(node)
            if tag == _BOOL:
                return _SCALARS.construct_yaml_bool(node)
            if tag == _NULL:
                return None
        except (ConstructorError, ValueError) as e:
            return self.refuse(node, f"cannot read {_short(node.value)} as {tag[len(_T):]}: {e}")
        return self.refuse(node, _tag_message(tag))

    def pairs(self, node: MappingNode, depth: int) -> Iterator[tuple[str, Any]]:
        first: dict[str, Node] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                refused = len(self.refused)
                merged.update(self.merge(value_node, depth))
                if len(self.refused) > refused:
                    self.incomplete.add((node.start_mark.line + 1, node.start_mark.column + 1))
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag not in (_STR, _INT, _BOOL,
                                                                             _NULL, _FLOAT):
                self.refuse(key_node, "mapping keys must be plain strings")
                continue
            name = key_node.value  # as written: `on:` is the key 'on', `1:` the key '1'
            if name in first:
                line = first[name].start_mark.line + 1
                self.problems.append(_problem(
                    self.file, key_node, f"duplicate key {name!r} (first defined at line {line}); "
                    "each key may appear once"))
                continue
            first[name] = key_node
            yield name, self.value(value_node, depth + 1)
        for name, value in merged.items():
            if name not in first:
                yield name, value

    def merge(self, node: Node, depth: int) -> dict[str, Any]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        out: dict[str, Any] = {}
        for source in reversed(sources):
            value = self.value(source, depth + 1)
            if isinstance(value, dict):
                out.update(value)
            elif (source.start_mark.line + 1, source.start_mark.column + 1) not in self.refused:
                self.refuse(source, f"'<<' merges mappings; found {kind_of(value)}")
        return out


Children = dict[str, tuple[Node, Node]]  # a mapping's keys, merges followed: (key, value)


def _keys(node: Node, index: dict[int, Children]) -> Children:
    """(key node, value node) of each key of mapping `node`, following merge keys; computed once
    per node, so locating N errors costs N lookups, not N scans of the document."""
    found = index.get(id(node))
    if found is not None:
        return found
    out: Children = {}
    index[id(node)] = out  # before the merges: a recursive alias ends here
    if not isinstance(node, MappingNode):
        return out
    merges = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            merges.append(value_node)
        elif isinstance(key_node, ScalarNode):
            out.setdefault(key_node.value, (key_node, value_node))
    for merge in merges:
        for source in merge.value if isinstance(merge, SequenceNode) else [merge]:
            for name, pair in _keys(source, index).items():
                out.setdefault(name, pair)
    return out


def _child(node: Node, step: str | int, index: dict[int, Children]) -> tuple[Node, Node] | None:
    """(key node, value node) of `step` inside `node`, following merge keys."""
    if isinstance(node, SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        item = node.value[step]
        return item, item
    if isinstance(node, MappingNode) and isinstance(step, str):
        return _keys(node, index).get(step)
    return None


def _node(root: Node | None, path: Path, index: dict[int, Children]) -> Node | None:
    node = root
    for step in path:
        found = _child(node, step, index) if node is not None else None
        if found is None:
            return None
        node = found[1]
    return node


def locate(root: Node | None, path: Path, key: bool = False,
           index: dict[int, Children] | None = None) -> tuple[int, int]:
    """1-based (line, column) of the value (or key) at `path`; falls back to the deepest parent."""
    if root is None:
        return 1, 1
    index = {} if index is None else index
    node, key_node = root, root
    for step in path:
        found = _child(node, step, index)
        if found is None:
            break
        key_node, node = found
    else:
        target = key_node if key else node
        return target.start_mark.line + 1, target.start_mark.column + 1
    return key_node.start_mark.line + 1, key_node.start_mark.column + 1
