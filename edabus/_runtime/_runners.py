"""Runners: a few tasks that run whichever actors have work, instead of a task per message.

An actor with queued messages is *scheduled*: put once on the ready queue. A
runner takes it, handles up to a quantum of its messages, and puts it back if
more wait. A runner that finds the queue still non-empty after taking an actor
wakes (or spawns) another, so an actor whose handler awaits (a request, a
sleep) never holds up the others; a runner that goes idle while enough others
already are (`_IDLE_KEEP`) exits.
Tasks are spawned when concurrency grows, not per message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["Runners", "Schedulable"]

_IDLE_KEEP = 8  # idle runners kept for the next burst; one that finds this many idle exits
_CHECKPOINT_EVERY = 256  # messages a runner handles before it lets other tasks run


class Schedulable(Protocol):
    """What runners need of an actor: whether it sits on the ready queue (or in hand)."""

    scheduled: bool


T = TypeVar("T", bound=Schedulable)


class Runners(Generic[T]):
    """The ready queue of one group and the tasks that drain it."""

    def __init__(self, run: Callable[[T], Awaitable[int]], *, max_runners: int = 10_000) -> None:
        self._run = run
        self._max = max_runners
        self._ready: deque[T] = deque()
        self._idle: deque[anyio.Event] = deque()
        self._count = 0
        self._starting = 0
        self._woken = 0
        self._tg: TaskGroup | None = None

    def attach(self, tg: TaskGroup) -> None:
        """Runners live in this task group."""
        self._tg = tg

    @property
    def running(self) -> int:
        """How many runner tasks exist."""
        return self._count

    def schedule(self, item: T) -> None:
        """Queue an actor that has work, unless it is queued or in hand already."""
        if item.scheduled:
            return
        item.scheduled = True
        self._ready.append(item)
        self._kick()

    def _kick(self) -> None:
        """Make sure some runner will look at the ready queue soon."""
        if self._starting or self._woken:
            return
        if self._idle:
            self._woken += 1
            self._idle.popleft().set()
        elif self._count < self._max and self._tg is not None:
            self._count += 1
            self._starting += 1
            self._tg.start_soon(self._runner)

    async def _runner(self) -> None:
        self._starting -= 1
        handled = 0
        try:
            while True:
                if not self._ready:
                    if not await self._wait_for_work():
                        return
                    continue
                item = self._ready.popleft()
                if self._ready:
                    self._kick()  # this actor's handler may await: let another runner take the rest
                handled += await self._run(item)
                if handled >= _CHECKPOINT_EVERY:
                    handled = 0
                    await anyio.lowlevel.checkpoint()
        finally:
            self._count -= 1

    async def _wait_for_work(self) -> bool:
        """Idle until woken; False when this runner should exit (enough others idle already).

        No deadline is armed: an idle wait is one event, which matters when every
        request makes the runner idle once (in-process request/reply).
        """
        if len(self._idle) >= _IDLE_KEEP:
            return False
        event = anyio.Event()
        self._idle.append(event)
        await event.wait()
        self._woken -= 1
        return True
