"""A lock lease renewed by a thread of its own, independently of the work: held as long as the
process lives and reaches the store, however long its work takes; lost (and said so through
`changed`) the moment a renewal fails."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from runner.errors import StoreUnavailable
from runner.store import Store

RENEW = 1.0  # seconds between renewals (the lease's TTL is several of these)


@dataclass
class Lease:
    """Not frozen: whether the lock is held, as the last renewal found."""

    store: Store
    name: str
    owner: str
    ttl: float
    held: bool = False
    failure: StoreUnavailable | None = None  # why the last renewal failed, if the store did
    changed: threading.Event = field(default_factory=threading.Event)  # held flipped
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def renew(self) -> bool:
        """Takes or renews the lock once: whether it is held (a store that is away: not)."""
        try:
            held, self.failure = self.store.lock(self.name, self.owner, self.ttl), None
        except StoreUnavailable as e:
            held, self.failure = False, e
        if held != self.held:
            self.held = held
            self.changed.set()
        return held

    def holds(self) -> bool:
        """Whether the lock is held: the renewing thread's word, or (without the thread)
        a renewal now. A store that is away raises StoreUnavailable."""
        if self._thread is None:
            self.renew()
        if self.failure is not None:
            raise self.failure
        return self.held

    @property
    def lapsed(self) -> bool:
        """The renewing thread found the lock lost (or the store away): stop at once."""
        return self._thread is not None and not self.held

    def start(self) -> None:
        self.renew()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(RENEW):
            self.renew()

    def stop(self) -> None:
        self._stop.set()
