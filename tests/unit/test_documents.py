"""The YAML layer: plain values out, positions kept, dangerous input refused with a location."""

from __future__ import annotations

import pytest

from runner.config.documents import MAX_FILE_BYTES, parse


def test_plain_values_and_positions() -> None:
    parsed = parse("f.yaml", b"jobs:\n  a:\n    n: 3\n    at: 2026-12-01T10:00:00+01:00\n"
                             b"    ok: true\n    list: [x, 1.5, null]\n")
    assert parsed.problems == ()
    assert parsed.value == {"jobs": {"a": {"n": 3, "at": "2026-12-01T10:00:00+01:00", "ok": True,
                                           "list": ["x", 1.5, None]}}}
    assert parsed.locate(("jobs", "a", "n")) == (3, 8)
    assert parsed.locate(("jobs", "a", "n"), key=True) == (3, 5)
    assert parsed.locate(("jobs", "a", "list", 1)) == (6, 15)
    assert parsed.locate(("jobs", "a", "missing")) == (2, 3)  # nearest parent


def test_merge_keys_work_and_locate_through_them() -> None:
    text = b"base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\n"
    parsed = parse("f.yaml", text)
    assert parsed.problems == ()
    assert parsed.value["item"] == {"x": 1, "y": 3}
    assert parsed.locate(("item", "x")) == (1, 14)


@pytest.mark.parametrize(("data", "line", "column", "words"), [
    (b"a: 1\na: 2\n", 2, 1, "duplicate key 'a' (first defined at line 1)"),
    (b"a: !!python/object/apply:os.system [ls]\n", 1, 4, "'!!python/object/apply:os.system'"),
    (b"a: !Ref x\n", 1, 4, "YAML tag '!Ref' is not allowed"),
    (b"a: !!binary aGVsbG8=\n", 1, 4, "'!!binary' is not allowed"),
    (b"a: !!set {x}\n", 1, 4, "'!!set' is not allowed"),
    (b"a: &x [*x]\n", 1, 4, "recursive alias"),
    (b"a: [\n", 2, 1, "YAML syntax error"),
    (b"a: 1\n---\nb: 2\n", 2, 1, "second YAML document"),
    (b"a: 1\n\tb: 2\n", 2, 1, "YAML syntax error"),
    (b"ok: 1\nbad: caf\xe9\n", 2, 9, "not valid UTF-8: byte 0xe9"),
    (b"a: \x00\n", 1, 4, "NUL character"),
    (b"a: {[1]: x}\n", 1, 5, "mapping keys must be plain strings"),
])
def test_refused_input_is_located(data: bytes, line: int, column: int, words: str) -> None:
    problems = parse("f.yaml", data).problems
    assert len(problems) == 1, problems
    assert (problems[0].line, problems[0].column) == (line, column)
    assert words in problems[0].message


def test_keys_are_kept_as_written() -> None:
    assert parse("f.yaml", b"on: 1\n1234: x\nnull: y\n").value == {"on": 1, "1234": "x",
                                                                   "null": "y"}


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    problems = parse("bomb.yaml", "\n".join(lines).encode()).problems
    assert len(problems) == 1
    assert "aliases expand to more than" in problems[0].message


def test_oversized_file_is_refused_without_parsing() -> None:
    problems = parse("big.yaml", b"#" * (MAX_FILE_BYTES + 1)).problems
    assert "limited to" in problems[0].message


def test_a_refused_node_does_not_hide_the_rest_of_the_file() -> None:
    parsed = parse("f.yaml", b"a: !Ref x\nb: 1\nb: 2\n")
    assert [p.line for p in parsed.problems] == [1, 3]
    assert parsed.value == {"a": None, "b": 1}


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (45, "45s"), (300, "5m"),
                                               (5400, "1h30m"), (90061, "1d1h1m1s")])
def test_duration_text_round_trips(seconds: int, text: str) -> None:
    from runner.config.model import seconds as parse_seconds
    from runner.desired import duration_text

    assert duration_text(seconds) == text
    assert parse_seconds(text) == seconds


def test_locating_every_key_of_a_large_file_is_linear() -> None:
    """12,000 errors in one file took 31 s: each was located by scanning its mapping."""
    import time

    n = 12_000
    parsed = parse("f.yaml", ("jobs:\n" + "".join(f"  j{i}: {{timeout: -{i}}}\n"
                                                  for i in range(n))).encode())
    start = time.monotonic()
    where = [parsed.locate(("jobs", f"j{i}", "timeout")) for i in range(n)]
    written = [parsed.written(("jobs", f"j{i}", "timeout")) for i in range(n)]
    elapsed = time.monotonic() - start
    assert where[-1] == (n + 1, 15 + len(f"j{n - 1}"))
    assert written[-1] == f"-{n - 1}"
    assert elapsed < 2, f"locating {n} keys took {elapsed:.1f}s"  # was 13 s; now about 0.1 s


SPANNED = """\
jobs:
  a: {queue: q, steps: []}
  # about b

  b:
    queue: q
    steps:
      - x

# trailing
  c:
    steps: [y]"""


@pytest.mark.parametrize(("name", "span"), [("a", (2, 2)), ("b", (5, 8)), ("c", (11, 12)),
                                            ("nope", None)])
def test_span_is_an_entry_s_lines_without_trailing_blanks_or_comments(
        name: str, span: tuple[int, int] | None) -> None:
    assert parse("j.yaml", SPANNED.encode()).span(("jobs", name), SPANNED) == span
