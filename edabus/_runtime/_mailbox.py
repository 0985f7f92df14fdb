"""`Mailbox`: a bounded FIFO between the node's dispatcher and an actor.

A full mailbox makes `Mailbox.put` wait, which stops the dispatcher, which
fills the node's inbox, which blocks Zenoh's receive path, which slows the
publisher through congestion control BLOCK: memory stays bounded end to end.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import anyio

__all__ = ["Mailbox"]

T = TypeVar("T")
_NONE: tuple[()] = ()  # an empty mailbox's items: nothing allocated


class Mailbox(Generic[T]):
    """A bounded FIFO for one consumer task (or a pool of them)."""

    __slots__ = ("_items", "_not_empty", "_not_full", "capacity", "peak")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            msg = f"mailbox capacity must be at least 1, got {capacity}"
            raise ValueError(msg)
        self.capacity = capacity
        self.peak = 0
        # The deque exists only while items wait: an empty deque costs 760 bytes, and a
        # node may hold 100,000 idle actors.
        self._items: deque[T] = _NONE  # type: ignore[assignment]
        self._not_full: anyio.Event | None = None
        self._not_empty: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        """Whether the mailbox holds its capacity."""
        return len(self._items) >= self.capacity

    def put_nowait(self, item: T) -> None:
        """Append an item; raises `anyio.WouldBlock` when full."""
        items = self._items
        if len(items) >= self.capacity:
            raise anyio.WouldBlock
        if items is _NONE:  # type: ignore[comparison-overlap]
            items = self._items = deque()
        items.append(item)
        self.peak = max(self.peak, len(items))
        if self._not_empty is not None:
            self._not_empty.set()
            self._not_empty = None

    async def put(self, item: T) -> None:
        """Append an item, waiting while the mailbox is full."""
        while len(self._items) >= self.capacity:
            if self._not_full is None:
                self._not_full = anyio.Event()
            await self._not_full.wait()
        self.put_nowait(item)

    def get_nowait(self) -> T:
        """Take the oldest item; raises `anyio.WouldBlock` when empty."""
        if not self._items:
            raise anyio.WouldBlock
        item = self._items.popleft()
        if not self._items:
            self._items = _NONE  # type: ignore[assignment]
        if self._not_full is not None:
            self._not_full.set()
            self._not_full = None
        return item

    def peek(self) -> T:
        """The oldest item, left in place; raises `anyio.WouldBlock` when empty."""
        if not self._items:
            raise anyio.WouldBlock
        return self._items[0]

    async def wait_not_empty(self) -> None:
        """Wait until the mailbox holds an item."""
        while not self._items:
            if self._not_empty is None:
                self._not_empty = anyio.Event()
            await self._not_empty.wait()

    async def get(self) -> T:
        """Take the oldest item, waiting while the mailbox is empty."""
        while not self._items:
            if self._not_empty is None:
                self._not_empty = anyio.Event()
            await self._not_empty.wait()
        return self.get_nowait()

    def drain(self) -> list[T]:
        """Take everything at once (used when a group stops)."""
        items = list(self._items)
        self._items = _NONE  # type: ignore[assignment]
        if self._not_full is not None:
            self._not_full.set()
            self._not_full = None
        return items
