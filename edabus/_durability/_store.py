"""Where actor state is kept: the `StateStore` protocol and what every store shares.

A store keeps one row per actor, named by a namespace (``"app/group"``) and the
actor's key, holding opaque bytes and a version. Writes are conditional on the
version the writer last read: two activations of one key that overlap (during a
rebalance) cannot both write, since the second to write finds the version moved
and gets `StaleStateError`. A row that does not exist has version 0.

The stores here run their blocking database calls on one worker thread of
their own (`StoreThread`), which takes every request that queued meanwhile and
commits them in one transaction: many actors saving at once cost one commit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import anyio

from edabus._exceptions import EdabusError, StaleStateError
from edabus._logging import get_logger
from edabus._transport._bridge import Waker

__all__ = [
    "Load",
    "MemoryStore",
    "Save",
    "StaleStateError",
    "StateStore",
    "StoreThread",
    "Stored",
    "ThreadedStore",
    "close_stores",
]

log = get_logger(__name__)


class Stored(NamedTuple):
    """A row as read: its version and bytes."""

    version: int
    data: bytes


@runtime_checkable
class StateStore(Protocol):
    """What edabus needs from a place to keep actor state."""

    async def open(self) -> None:
        """Get ready (connect, create the table); called by the node before any actor starts."""

    async def close(self) -> None:
        """Finish what was asked and release the connection; called by the node when it stops."""

    async def load(self, namespace: str, key: str) -> Stored | None:
        """The row of ``key``, or None if it was never written."""

    async def save(self, namespace: str, key: str, data: bytes, version: int) -> int:
        """Write ``data`` if the row is still at ``version``; return the new version.

        Raises:
            StaleStateError: the row is at another version (or exists when ``version`` is 0).

        """


async def close_stores(stores: Iterable[StateStore]) -> None:
    """Close each store; one that fails is logged and does not keep the others open."""
    for store in stores:
        try:
            await store.close()
        except Exception:
            log.exception("node.store_close_failed", store=repr(store))


class MemoryStore:
    """State in this process's memory: for tests and for one process that may lose it.

    Same conditional writes as the database stores; kept across a node's restarts
    within the process, lost when the process exits.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Stored] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({len(self.rows)} rows)"

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def load(self, namespace: str, key: str) -> Stored | None:
        """The row of ``key``, or None."""
        return self.rows.get((namespace, key))

    async def save(self, namespace: str, key: str, data: bytes, version: int) -> int:
        """Write ``data`` if the row is at ``version``; the new version."""
        row = self.rows.get((namespace, key))
        if (row.version if row is not None else 0) != version:
            msg = f"state of {namespace} {key!r} moved past version {version}: another activation wrote it"
            raise StaleStateError(msg)
        self.rows[namespace, key] = Stored(version + 1, bytes(data))
        return version + 1


@dataclass(slots=True)
class Load:
    """A read request for the store's thread."""

    namespace: str
    key: str


@dataclass(slots=True)
class Save:
    """A conditional write request for the store's thread."""

    namespace: str
    key: str
    data: bytes
    version: int


@dataclass(slots=True)
class _Pending:
    request: object
    done: anyio.Event
    result: Any = None
    error: BaseException | None = None
    wake: Waker = field(default_factory=Waker)


class StoreThread:
    """One worker thread that serves a store's requests in batches.

    ``run_batch`` is called on the thread with every request that queued since the
    last batch; it returns one result (or exception) per request, in order.
    ``on_exit`` runs on the thread when it ends (to close the connection there).
    """

    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[Any]], list[object]],
        on_exit: Callable[[], None] = lambda: None,
    ) -> None:
        self._name = name
        self._run_batch = run_batch
        self._on_exit = on_exit
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        """Let the thread finish what is queued, then end it."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await anyio.to_thread.run_sync(thread.join)

    async def call(self, request: object) -> Any:
        """Queue ``request`` for the thread and wait for its result."""
        if self._thread is None:
            msg = f"{self._name} is not open"
            raise EdabusError(msg)
        pending = _Pending(request, anyio.Event())
        self._queue.put(pending)
        with anyio.CancelScope(shield=True):  # a write once queued is seen through
            await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _serve(self) -> None:
        try:
            self._serve_batches()
        finally:
            self._on_exit()

    def _serve_batches(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                results = self._run_batch([p.request for p in batch])
            except Exception as exc:
                log.exception("store.batch_failed", store=self._name, requests=len(batch))
                results = [exc] * len(batch)
            for pending, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    pending.error = result
                else:
                    pending.result = result
                pending.wake(pending.done.set)
            if stop:
                return


class ThreadedStore:
    """What the database stores share: a thread of their own, opened and closed by each node that uses them.

    Subclasses give ``_run_batch`` (on the thread: one result or exception per request)
    and ``_disconnect`` (on the thread, when it ends).
    """

    def __init__(self, thread_name: str) -> None:
        self.batches = 0
        self._thread = StoreThread(thread_name, self._run_batch, self._disconnect)
        self._opened = 0

    async def open(self) -> None:
        """Start the store's thread (idempotent; counted per user)."""
        self._opened += 1
        self._thread.start()

    async def close(self) -> None:
        """Finish queued writes and close the connection (after the last user closes)."""
        self._opened = max(0, self._opened - 1)
        if self._opened == 0:
            await self._thread.stop()

    async def load(self, namespace: str, key: str) -> Stored | None:
        """The row of ``key``, or None."""
        result: Stored | None = await self._thread.call(Load(namespace, key))
        return result

    async def save(self, namespace: str, key: str, data: bytes, version: int) -> int:
        """Write ``data`` if the row is at ``version``; the new version."""
        result: int = await self._thread.call(Save(namespace, key, data, version))
        return result

    def _run_batch(self, batch: list[Load | Save]) -> list[object]:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError
