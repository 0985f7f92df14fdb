"""From Zenoh's threads into the event loop, one wake-up per batch.

Zenoh calls back on its own threads, one sample at a time. `Inbox` queues what
they push and wakes the loop only when the consuming task is waiting, so a
burst costs one wake-up, not one per sample. It is bounded, and it never makes
a Zenoh thread wait (see `Inbox`): the flow control that reaches a publisher
is edabus's own credit (`_credit`), and a publisher on the loop's own thread
waits with `Inbox.wait_room`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

from edabus._logging import get_logger

__all__ = ["DEFAULT_OVERFLOW_LIMIT", "Inbox", "Waker"]

T = TypeVar("T")

log = get_logger(__name__)

DEFAULT_OVERFLOW_LIMIT = 150_000  # (inbox_size + this) / window = 10 flooding edabus publishers
_KEEP_REJECTED = 10_000  # rejected items kept for dead letters at a time; beyond this only counted


class Waker:
    """Runs a function on the current event loop, called from any thread.

    On the loop's own thread (a local put delivers synchronously there) it runs the
    function at once: no self-pipe write, no extra loop iteration.
    """

    __slots__ = ("_call", "_loop_thread")

    def __init__(self) -> None:
        self._loop_thread = threading.get_ident()
        self._call: Callable[[Callable[[], object]], object]
        try:
            self._call = asyncio.get_running_loop().call_soon_threadsafe
        except RuntimeError:  # no asyncio loop: anyio runs on trio
            import trio  # noqa: PLC0415 - trio is optional; imported only when it runs

            self._call = trio.lowlevel.current_trio_token().run_sync_soon

    def __call__(self, fn: Callable[[], object]) -> None:
        if threading.get_ident() == self._loop_thread:
            fn()
            return
        # The loop may have finished (trio's RunFinishedError is a RuntimeError too).
        with contextlib.suppress(RuntimeError):
            self._call(fn)


class Inbox(Generic[T]):
    """A bounded multi-producer, single-consumer queue from threads into one task.

    Pushing never waits: a Zenoh thread held by a full queue holds the whole
    session, and through a router a link held for 5 s is closed with what it
    carried. Up to ``capacity`` items it is a plain queue; beyond it, a publisher
    on the loop's own thread is asked to wait (``on_pressure``, then `wait_room`),
    edabus publishers elsewhere are held back by credit (`_credit`), and what
    still comes is held up to ``overflow_limit`` more. Past that, arrivals are
    rejected: counted, logged once per burst, and (with ``keep_rejected``) kept
    for the loop to dead-letter. Items pushed with ``force`` (membership changes,
    credit checkpoints) are never rejected.
    """

    def __init__(
        self,
        capacity: int,
        *,
        overflow_limit: int = DEFAULT_OVERFLOW_LIMIT,
        on_pressure: Callable[[Inbox[T]], None] | None = None,
        keep_rejected: bool = False,
        name: str = "",
    ) -> None:
        self.capacity = capacity
        self.overflow_limit = overflow_limit
        self.name = name
        self._limit = capacity + overflow_limit
        self._on_pressure = on_pressure
        self._items: deque[T] = deque()
        self._waker = Waker()
        self._loop_thread = threading.get_ident()
        self._consumer_waiting = False
        self._ready = anyio.Event()
        self._room_event: anyio.Event | None = None
        self._closed = False
        self._keep_rejected = keep_rejected
        self._rejected: deque[T] = deque(maxlen=_KEEP_REJECTED)
        self._rejected_ready = anyio.Event()
        self._burst = 0  # rejected since the inbox last had room: logged once per burst
        self.peak = 0
        self.rejected = 0
        self.pushed = 0  # items ever queued (a position: `Checkpoints` waits for `taken` to pass it)
        self.taken = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T, *, force: bool = False) -> None:
        """Queue an item, from any thread, without waiting; rejected past the overflow limit."""
        if self._closed:
            return
        items = self._items
        if len(items) >= self._limit and not force:
            self._reject(item)
            return
        items.append(item)
        self.pushed += 1
        depth = len(items)
        self.peak = max(self.peak, depth)
        if self._consumer_waiting:
            self._consumer_waiting = False
            self._waker(self._ready.set)
        if depth >= self.capacity and self._on_pressure is not None and threading.get_ident() == self._loop_thread:
            self._on_pressure(self)  # a publisher on the loop waits for room

    def extend(self, batch: list[T]) -> None:
        """Queue a batch without waiting (a puller's); what is past the overflow limit is rejected."""
        if self._closed:
            return
        items = self._items
        room = self._limit - len(items)
        if room >= len(batch):
            items.extend(batch)
            self.pushed += len(batch)
        else:
            items.extend(batch[: max(room, 0)])
            self.pushed += max(room, 0)
            for item in batch[max(room, 0) :]:
                self._reject(item)
        self.peak = max(self.peak, len(items))
        if self._consumer_waiting:
            self._consumer_waiting = False
            self._waker(self._ready.set)

    def _reject(self, item: T) -> None:
        self.rejected += 1
        if not self._burst:
            log.warning("inbox.overflow", inbox=self.name, held=len(self._items), limit=self._limit)
        self._burst += 1
        if self._keep_rejected:
            self._rejected.append(item)
            self._waker(self._rejected_ready.set)

    def over_capacity(self) -> bool:
        """Whether the inbox holds at least its capacity."""
        return len(self._items) >= self.capacity

    async def wait_room(self) -> None:
        """Wait (on the loop) until the inbox is below its capacity."""
        while len(self._items) >= self.capacity and not self._closed:
            if self._room_event is None:
                self._room_event = anyio.Event()
            await self._room_event.wait()

    async def get_batch(self, limit: int = 4096) -> list[T]:
        """Wait for at least one item, then take up to ``limit``; [] once closed and empty."""
        items = self._items
        while not items:
            if self._closed:
                return []
            self._ready = anyio.Event()
            self._consumer_waiting = True
            if items or self._closed:
                self._consumer_waiting = False
                continue
            await self._ready.wait()
        pop = items.popleft
        batch = [pop() for _ in range(min(len(items), limit))]
        self.taken += len(batch)
        if len(items) < self.capacity:
            self._after_take()
        return batch

    async def get_rejected(self) -> list[T]:
        """Wait for items rejected in overflow (to dead-letter them); [] once closed."""
        while not self._rejected:
            if self._closed:
                return []
            self._rejected_ready = anyio.Event()
            if self._rejected:
                break
            await self._rejected_ready.wait()
        taken = list(self._rejected)
        self._rejected.clear()  # only the loop thread takes; a push racing here is kept next time
        return taken

    def _after_take(self) -> None:
        """Below capacity again: end an overflow burst, wake publishers waiting for room."""
        if self._burst:
            log.warning("inbox.overflow_ended", inbox=self.name, rejected=self._burst)
            self._burst = 0
        if self._room_event is not None:
            self._room_event.set()
            self._room_event = None

    def close(self) -> None:
        """Stop taking items; wake the consumer and every waiting publisher. Loop thread only."""
        self._closed = True
        self._ready.set()
        self._rejected_ready.set()
        if self._room_event is not None:
            self._room_event.set()
            self._room_event = None

    def drain(self) -> list[T]:
        """Take everything still queued (after close). Loop thread only."""
        items = list(self._items)
        self._items.clear()
        return items
