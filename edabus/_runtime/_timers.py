"""Timers: messages an actor schedules to itself, once or periodically.

A timer's message goes through the actor's mailbox like any other, so it is
handled one at a time with the rest. Timers end with their actor (stop,
passivation, restart) and do not keep an idle actor alive, as in Orleans.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from edabus._model._message import Message

__all__ = ["Timer", "Timers"]


class Timer:
    """A scheduled message; `cancel` stops it. Cancelling twice, or after it fired, is harmless."""

    __slots__ = ("_scope", "fired", "interval")

    def __init__(self, interval: float | None) -> None:
        self._scope = anyio.CancelScope()
        self.interval = interval
        self.fired = 0

    @property
    def active(self) -> bool:
        """Whether the timer may still fire."""
        return not self._scope.cancel_called and not (self.interval is None and self.fired)

    def cancel(self) -> None:
        """Stop the timer; a message it already queued is still handled."""
        self._scope.cancel()


Deliver = Callable[["Message"], Awaitable[bool]]
StartTask = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]


class Timers:
    """The timers of one actor instance."""

    __slots__ = ("_check", "_deliver", "_start", "_timers")

    def __init__(self, deliver: Deliver, start: StartTask, check: Callable[[Message], object]) -> None:
        self._deliver = deliver
        self._start = start
        self._check = check
        self._timers: set[Timer] | None = None  # made on the first timer: most actors have none

    def schedule(self, msg: Message, delay: float, interval: float | None) -> Timer:
        """Deliver ``msg`` after ``delay`` seconds, then every ``interval`` seconds if given."""
        if delay < 0 or (interval is not None and interval <= 0):
            msg_text = f"timer delay must be >= 0 and interval > 0 (got {delay}, {interval})"
            raise ValueError(msg_text)
        self._check(msg)  # refuse now a message the actor has no handler for, not when it fires
        timer = Timer(interval)
        if self._timers is None:
            self._timers = set()
        self._timers.add(timer)

        async def run() -> None:
            try:
                with timer._scope:  # noqa: SLF001 - the timer's own scope
                    await anyio.sleep(delay)
                    while await self._deliver(msg):
                        timer.fired += 1
                        if interval is None:
                            return
                        await anyio.sleep(interval)
            finally:
                if self._timers is not None:
                    self._timers.discard(timer)

        self._start(run)
        return timer

    def cancel_all(self) -> None:
        """Cancel every timer (the actor stops)."""
        for timer in list(self._timers or ()):
            timer.cancel()
        self._timers = None

    def __len__(self) -> int:
        return len(self._timers or ())
