"""The apply stage alone, on real git commits and a real file store: what it writes, and when
the revision it applies changes what runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.apply import Current, Validated, apply
from runner.config.load import load
from runner.source import GitSnapshot
from runner.store.files import FileStore
from runner.store.keys import APPLIED


class Recording(FileStore):
    """A file store that remembers the keys written to it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written: list[str] = []

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.written.append(key)
        super().put(key, value)


def validated(repo: Path) -> Validated:
    snapshot, cache = GitSnapshot(repo, "HEAD"), {}
    assert not load(snapshot, cache, model_too=False).problems
    return Validated(snapshot, cache)


def test_apply_writes_only_what_the_applied_revision_lacks(
        demo_repo: Path, commit: Callable[[dict[str, str | None], str], str],
        tmp_path: Path) -> None:
    store = Recording(tmp_path / "state")
    first = apply(store, validated(demo_repo), Current())
    assert first.changed
    assert store.get(APPLIED) == {"revision": first.revision, "digest": first.digest}
    assert store.written[-2:] == [f"revision:{first.revision}", APPLIED]
    assert any(k.startswith("definitions:") for k in store.written)
    assert any(k.startswith("blob:") for k in store.written)

    store.written.clear()
    commit({"NOTES.md": "not configuration\n"}, "notes")
    same = apply(store, validated(demo_repo), Current(first.revision, first.digest))
    assert (same.changed, same.digest) == (False, first.digest)
    assert store.written == [f"revision:{same.revision}", APPLIED]

    store.written.clear()
    path = demo_repo / "jobs.d" / "maintenance.yaml"
    commit({"jobs.d/maintenance.yaml": path.read_text() + "# edited\n"}, "edit one file")
    edited = apply(store, validated(demo_repo), Current(same.revision, same.digest))
    assert edited.changed and edited.digest != first.digest
    blob = (store.get(f"revision:{edited.revision}") or {})["config"]["jobs.d/maintenance.yaml"]
    assert store.written == [f"definitions:{blob}", f"revision:{edited.revision}", APPLIED]
