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
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

__all__ = ["Inbox", "Waker"]

T = TypeVar("T")

# A thread blocked on a full inbox re-checks at this period, so close() can never strand it.
_BLOCK_POLL_S = 0.1


class Waker:
    """Runs a function on the current event loop, called from any thread."""

    __slots__ = ("_call",)

    def __init__(self) -> None:
        self._call: Callable[[Callable[[], object]], object]
        try:
            self._call = asyncio.get_running_loop().call_soon_threadsafe
        except RuntimeError:  # no asyncio loop: anyio runs on trio
            import trio  # noqa: PLC0415 - trio is optional; imported only when it runs

            self._call = trio.lowlevel.current_trio_token().run_sync_soon

    def __call__(self, fn: Callable[[], object]) -> None:
        # The loop may have finished (trio's RunFinishedError is a RuntimeError too).
        with contextlib.suppress(RuntimeError):
            self._call(fn)


class Inbox(Generic[T]):
    """A bounded multi-producer, single-consumer queue from threads into one task."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._waker = Waker()
        self._loop_thread = threading.get_ident()
        self._consumer_waiting = False
        self._ready = anyio.Event()
        self._room = threading.Condition()
        self._blocked = 0
        self._room_event: anyio.Event | None = None
        self._closed = False
        self.peak = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T) -> None:
        """Queue an item; from a foreign thread, wait while the inbox is full."""
        if self._closed:
            return
        items = self._items
        items.append(item)
        if self._consumer_waiting:
            self._consumer_waiting = False
            self._waker(self._ready.set)
        if len(items) >= self.capacity:
            self.peak = max(self.peak, len(items))
            if threading.get_ident() != self._loop_thread:
                self._wait_for_room()

    def _wait_for_room(self) -> None:
        with self._room:
            self._blocked += 1
            try:
                while len(self._items) >= self.capacity and not self._closed:
                    self._room.wait(_BLOCK_POLL_S)
            finally:
                self._blocked -= 1

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
        self._after_take()
        return batch

    def _after_take(self) -> None:
        if len(self._items) < self.capacity:
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
        if self._room_event is not None:
            self._room_event.set()
            self._room_event = None
        with self._room:
            self._room.notify_all()
