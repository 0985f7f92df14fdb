"""From Zenoh's threads into the event loop, one wake-up per batch.

Zenoh calls back on its own threads, one sample at a time. `Inbox` queues what
they push and wakes the loop only when the consuming task is waiting, so a
burst costs one wake-up, not one per sample. It is bounded: a foreign thread
that pushes into a full inbox waits (which backpressures Zenoh, and through
congestion control BLOCK, the publisher); the loop's own thread never waits
(a local put delivers synchronously on the caller's thread), and an async
publisher on the loop waits with `Inbox.wait_room` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio
import structlog

__all__ = ["DEFAULT_OVERFLOW_LIMIT", "DEFAULT_STALL_TIMEOUT", "Inbox", "Waker"]

T = TypeVar("T")

log = structlog.get_logger(__name__)

# A thread blocked on a full inbox re-checks at this period, so close() can never strand it.
_BLOCK_POLL_S = 0.01
# Zenoh closes a link whose sender waited 5 s (block/wait_before_close) or whose receiver was
# silent for its 10 s lease: stop making Zenoh wait well before either.
DEFAULT_STALL_TIMEOUT = 2.0
DEFAULT_OVERFLOW_LIMIT = 50_000
_KEEP_REJECTED = 10_000  # rejected items kept for dead letters; beyond this only counted


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

    A foreign thread (Zenoh's) that pushes into a full inbox waits for room, which
    backpressures the sender, but only while the consumer makes progress: after
    ``stall_timeout`` seconds full without a take, the inbox stops making Zenoh wait
    (a receive path blocked for seconds closes the link) and
    holds up to ``overflow_limit`` more items; past that, arrivals are rejected
    (kept for the loop to dead-letter, and counted). Waiting resumes once the
    consumer has caught up below capacity.
    """

    def __init__(
        self,
        capacity: int,
        *,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        overflow_limit: int = DEFAULT_OVERFLOW_LIMIT,
        on_pressure: Callable[[Inbox[T]], None] | None = None,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.stall_timeout = stall_timeout
        self.overflow_limit = overflow_limit
        self.name = name
        self._on_pressure = on_pressure
        self._items: deque[T] = deque()
        self._waker = Waker()
        self._loop_thread = threading.get_ident()
        self._consumer_waiting = False
        self._ready = anyio.Event()
        self._room = threading.Condition()
        self._blocked = 0
        self._room_event: anyio.Event | None = None
        self._closed = False
        self._clock = clock
        # The stall clock runs from the later of the last take and the moment the inbox was
        # found full: a consumer that was idle (nothing to take) is not stalled by a burst.
        self._last_take = clock()
        self._full_since: float | None = None
        self._overflowing = False
        self._rejected: deque[T] = deque(maxlen=_KEEP_REJECTED)
        self._rejected_ready = anyio.Event()
        self.peak = 0
        self.stalls = 0
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T) -> None:
        """Queue an item; from a foreign thread, wait while the inbox is full (see the class doc)."""
        if self._closed:
            return
        items = self._items
        on_loop = threading.get_ident() == self._loop_thread
        if (
            len(items) >= self.capacity
            and not on_loop
            and not self._wait_for_room()
            and len(items) >= self.capacity + self.overflow_limit
        ):
            self.rejected += 1
            self._rejected.append(item)
            self._waker(self._rejected_ready.set)
            return
        items.append(item)
        depth = len(items)
        self.peak = max(self.peak, depth)
        if self._consumer_waiting:
            self._consumer_waiting = False
            self._waker(self._ready.set)
        if on_loop and depth >= self.capacity and self._on_pressure is not None:
            self._on_pressure(self)  # a publisher on the loop waits for room instead

    def _wait_for_room(self) -> bool:
        """Wait while full and the consumer progresses; False once it has stalled (overflow mode)."""
        if self._overflowing:
            return False
        with self._room:
            self._blocked += 1
            try:
                while len(self._items) >= self.capacity and not self._closed:
                    if self._stalled():
                        return False
                    self._room.wait(_BLOCK_POLL_S)
                return True
            finally:
                self._blocked -= 1

    def _stalled(self) -> bool:
        """Called while full: whether the consumer took nothing for ``stall_timeout`` (then overflow)."""
        now = self._clock()
        if self._full_since is None:
            self._full_since = now
        if now - max(self._last_take, self._full_since) <= self.stall_timeout:
            return False
        self._overflowing = True
        self.stalls += 1
        log.warning("inbox.stalled", inbox=self.name, waited_s=self.stall_timeout, queued=len(self._items))
        return True

    def room(self) -> int:
        """How many items a puller thread may take for this inbox now, without waiting.

        Below capacity: the free room. Full: none while the consumer progresses; once it
        has taken nothing for ``stall_timeout`` (overflow mode, as for `push`), a batch,
        which `extend` holds up to the overflow limit and rejects beyond it.
        """
        free = self.capacity - len(self._items)
        if free > 0:
            return free
        if not self._overflowing and not self._stalled():
            return 0
        return 4096

    def extend(self, batch: list[T]) -> None:
        """Queue a batch without waiting (a puller took what `room` allowed); wake the consumer once."""
        if self._closed:
            return
        items = self._items
        limit = self.capacity + self.overflow_limit
        for item in batch:
            if len(items) >= limit:
                self.rejected += 1
                self._rejected.append(item)
                self._waker(self._rejected_ready.set)
            else:
                items.append(item)
        self.peak = max(self.peak, len(items))
        if self._consumer_waiting:
            self._consumer_waiting = False
            self._waker(self._ready.set)

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
        self._last_take = self._clock()
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
        if len(self._items) < self.capacity:
            self._full_since = None
            if self._overflowing:
                self._overflowing = False
                log.info("inbox.recovered", inbox=self.name)
            if self._blocked:
                with self._room:
                    self._room.notify_all()
            if self._room_event is not None:
                self._room_event.set()
                self._room_event = None

    def close(self) -> None:
        """Stop taking items; wake the consumer and every waiting producer. Loop thread only."""
        self._closed = True
        self._ready.set()
        self._rejected_ready.set()
        if self._room_event is not None:
            self._room_event.set()
            self._room_event = None
        with self._room:
            self._room.notify_all()

    def drain(self) -> list[T]:
        """Take everything still queued (after close). Loop thread only."""
        items = list(self._items)
        self._items.clear()
        return items
