"""On-disk cache of per-file results, keyed by git blob id, for the command line.

One file per repository under $RUNNER_CACHE_DIR (default ~/.cache/runner). It is written only
when something changed, atomically, and holds only the entries of the last run. A cache that
cannot be read is ignored; results never depend on it, only speed does.
"""

from __future__ import annotations

import hashlib
import marshal
import os
from pathlib import Path
from typing import Any

from runner import __version__
from runner.config.load import FileResult
from runner.config.schema import KINDS, schema_text
from runner.errors import Problem


def _cache_file(repo: Path) -> Path:
    base = Path(os.environ.get("RUNNER_CACHE_DIR") or Path.home() / ".cache" / "runner")
    key = hashlib.sha1(str(repo.resolve()).encode(), usedforsecurity=False).hexdigest()[:16]
    return base / f"validate-{key}.marshal"


FORMAT = "4"  # bump when FileResult changes shape, or the checks accept less (4: names)


def _stamp() -> str:
    text = FORMAT + __version__ + "".join(schema_text(k) for k in KINDS)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class DiskCache(dict[str, FileResult]):
    """A dict of FileResult that remembers which entries were used and whether any was added."""

    def __init__(self, repo: Path) -> None:
        super().__init__()
        self.path, self.stamp, self.used = _cache_file(repo), _stamp(), set[str]()
        self.loaded: set[str] = set()
        try:
            stamp, entries = marshal.loads(self.path.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return
        if stamp == self.stamp:
            for key, (kind, names, objects, problems, bad, refs) in entries.items():
                self[key] = FileResult(kind, names, objects,
                                       tuple(Problem(*p) for p in problems), bad, refs)
            self.loaded = set(self)

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return super().get(key, default)

    def keep_used(self) -> None:
        """Forgets the entries the last load did not use (files changed or gone since), for
        a process that keeps this cache between loads."""
        for key in set(self) - self.used:
            del self[key]
        self.used = set()
        self.loaded = set(self)

    def save(self) -> None:
        keep = {k: self[k] for k in self.used if k in self}
        if set(keep) == self.loaded:
            return
        entries = {k: (r.kind, r.declared, r.objects if isinstance(r.objects, bytes) else
                       marshal.dumps(r.objects), tuple((p.file, p.line, p.column, p.message)
                                                       for p in r.problems), r.bad, r.refs)
                   for k, r in keep.items()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(marshal.dumps((self.stamp, entries)))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache we cannot write only costs speed next time
