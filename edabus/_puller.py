"""The node's puller: the thread that moves every lane's remote puts into its group's inbox.

A Zenoh `FifoChannel` cannot wake anyone, so the puller polls the lanes: while
puts keep coming it sleeps 50 µs between empty polls, doubling to 1 ms. But
each wake-up needs the GIL, and while a thread waits for it, every time the
busy event loop lets the GIL go (at each select) it also has to wake that
thread, which rarely wins it back before the loop does: for up to the 5 ms
switch interval the loop pays a futex wake per iteration. Polling every 1 ms
kept the loop in that state: an in-process request took 86–94 µs instead of
54–58 µs, though no remote put came at all.

So after `PARK_AFTER_S` without a put the puller parks, and sleeps without the
GIL until a put comes. What wakes it is a bell per lane: a second subscriber on
the lane's key expression with a `RingChannel` of one sample (Rust only: nothing
runs in Python per put) and a thread blocked in its ``recv``. Bells listen only
while the puller is parked, so a stream of puts costs them nothing; each rings
at most once per park. No put is left unheard:

1. The puller, under the shared condition: clears ``wake``, marks itself parked,
   and waits until every bell listens.
2. A bell that sees the puller parked drops what its ring holds, marks itself
   listening and waits in ``recv``. A put after that drop fills the ring and
   wakes the bell, which (under the condition) marks itself not listening and
   sets ``wake``: always after the puller cleared it.
3. The puller polls every lane once more, now that every bell listens: a put
   that came before a bell's drop is in its lane's channel. Only then it waits
   for ``wake`` (at most `RECHECK_S`, a guard, not the mechanism).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
import zenoh

if TYPE_CHECKING:
    from ._ingest import Lane

__all__ = ["Puller"]

log = structlog.get_logger(__name__)

IDLE_MIN_S = 0.00005
IDLE_MAX_S = 0.001
PARK_AFTER_S = 0.01  # this long without a put (and no inbox full): park
RECHECK_S = 1.0  # a parked puller polls this often even if no bell rings


class _Bell:
    """Rings the puller's ``wake`` when a put comes to one lane while the puller is parked."""

    def __init__(self, session: zenoh.Session, key_expr: str, puller: Puller, name: str) -> None:
        self._sub = session.declare_subscriber(
            key_expr, zenoh.handlers.RingChannel(1), allowed_origin=zenoh.Locality.REMOTE
        )
        self._puller = puller
        self.listening = False  # guarded by the puller's condition
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def undeclare(self) -> None:
        """End a ``recv`` in progress (it raises); the thread then exits."""
        self._sub.undeclare()

    def _run(self) -> None:
        handler = self._sub.handler  # never `recv` on the subscriber itself (ZENOH_NOTES §8)
        puller = self._puller
        cond = puller.cond
        try:
            while True:
                with cond:
                    while not (puller.parked or puller.stopping):
                        cond.wait()
                    if puller.stopping:
                        return
                    while handler.try_recv() is not None:
                        pass  # rung while the puller was awake: it has seen those puts
                    self.listening = True
                    cond.notify_all()
                handler.recv()
                with cond:
                    self.listening = False
                    puller.wake.set()
                    puller.rings += 1
                    cond.notify_all()
        except zenoh.ZError:
            return  # undeclared, or the session closed


class Puller:
    """Moves every lane's remote puts into its group's inbox, in batches; parks when none come."""

    def __init__(self, session: zenoh.Session, lanes: list[Lane], name: str) -> None:
        self._lanes = lanes
        self.cond = threading.Condition()
        self.wake = threading.Event()
        self.parked = False
        self.stopping = False
        self.parks = 0  # statistics, for tests and tuning
        self.rings = 0
        self.recheck_s = RECHECK_S
        self._bells = [_Bell(session, lane.key_expr, self, f"{name}:bell{i}") for i, lane in enumerate(lanes)]
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def asleep(self) -> bool:
        """Parked with every bell listening: only a put (or the re-check) wakes it now."""
        with self.cond:
            return self.parked and all(bell.listening for bell in self._bells)

    def start(self) -> None:
        """Start pulling."""
        if self._lanes:
            for bell in self._bells:
                bell.thread.start()
            self._thread.start()

    def stop(self) -> Callable[[], None]:
        """Ask the threads to end; returns a blocking join (quick: nothing waits on the wire)."""
        with self.cond:
            self.stopping = True
            self.wake.set()
            self.cond.notify_all()
        return self._join

    def _join(self) -> None:
        for bell in self._bells:
            bell.undeclare()
        for thread in (self._thread, *(bell.thread for bell in self._bells)):
            if thread.is_alive():
                thread.join(timeout=5.0)

    def _run(self) -> None:
        lanes = self._lanes
        idle = IDLE_MIN_S
        busy = time.monotonic()
        try:
            while not self.stopping:
                moved = 0
                stalled = False
                for lane in lanes:
                    moved += lane.pump()
                    stalled = stalled or lane.stalled
                if moved:
                    idle = IDLE_MIN_S
                    busy = time.monotonic()
                    continue
                if stalled:
                    busy = time.monotonic()  # a full inbox: its lane may hold puts, so poll on
                # Real time, not the sleeps' sum: waking from a sleep waits for the GIL,
                # up to 5 ms (the switch interval) while the loop is busy.
                elif time.monotonic() - busy >= PARK_AFTER_S:
                    self._park()
                    idle = IDLE_MIN_S
                    busy = time.monotonic()
                    continue
                time.sleep(idle)  # nothing queued (or no room for it): poll again soon
                idle = min(idle * 2, IDLE_MAX_S)
        except Exception:  # pragma: no cover - a bug here must be seen, not end the node silently
            log.exception("ingest.puller_failed")

    def _park(self) -> None:
        """Sleep without the GIL until a bell rings (see the module doc for why nothing is missed)."""
        cond = self.cond
        with cond:
            self.wake.clear()
            self.parked = True
            self.parks += 1
            cond.notify_all()
            while not self.stopping and not all(bell.listening for bell in self._bells):
                cond.wait(1.0)
        try:
            if sum(lane.pump() for lane in self._lanes) == 0:
                self.wake.wait(self.recheck_s)
        finally:
            with cond:
                self.parked = False
