"""The node's puller: the thread that moves every lane's remote puts into its group's inbox.

A Zenoh `FifoChannel` cannot wake anyone, so the puller polls the lanes: while
puts keep coming it sleeps 50 µs between empty polls, doubling to 1 ms. But
each wake-up needs the GIL, and a thread that waits for the GIL while the event
loop is busy can starve for tens of milliseconds: the loop lets the GIL go at
each select and takes it straight back, and pays a futex wake for the waiter
every time. Polling kept the loop in that state: an in-process request took 86
to 94 µs instead of 54 to 58, though no remote put came at all.

So after a few empty polls (`PARK_AFTER_POLLS`) the puller parks, and it
starts parked: it sleeps on a `threading.Event`, holding no GIL and needing
none, until a put comes. What rings is a bell per lane: a callback subscriber
on the lane's key expression, declared only while the puller is parked (a twin
of the lane's subscriber, so Zenoh sends no new declaration). No put is left
unheard: the puller clears ``wake``, declares the bells, and only then polls
every lane once more; a put that came before a bell existed is in its lane's
channel, one after it rings. The bells are undeclared as soon as the puller
wakes, so a stream of puts costs them nothing. (A bell thread blocked in a
channel's ``recv`` would not do: zenoh-python's ``recv`` takes the GIL every
100 ms to check for signals.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import zenoh

from edabus._logging import get_logger

if TYPE_CHECKING:
    from ._ingest import Lane

__all__ = ["Puller"]

log = get_logger(__name__)

IDLE_MIN_S = 0.00005
IDLE_MAX_S = 0.001
PARK_AFTER_POLLS = 4  # this many empty polls in a row (about 1 ms, if the GIL is free): park
RECHECK_S = 30.0  # a guard: a parked puller polls this often even if no bell rings


class Puller:
    """Moves every lane's remote puts into its group's inbox, in batches; parks when none come."""

    def __init__(self, session: zenoh.Session, lanes: list[Lane], name: str) -> None:
        self._session = session
        self._lanes = lanes
        self.wake = threading.Event()
        self.stopping = False
        self.asleep = False  # parked, bells declared, lanes empty: only a put (or the re-check) wakes it
        self.parks = 0  # statistics, for tests and tuning
        self.rings = 0
        self.recheck_s = RECHECK_S
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start pulling."""
        if self._lanes:
            self._thread.start()

    def stop(self) -> Callable[[], None]:
        """Ask the thread to end; returns a blocking join (quick: a parked puller wakes at once)."""
        self.stopping = True
        self.wake.set()
        return self._join

    def _join(self) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        lanes = self._lanes
        idle = IDLE_MIN_S
        empty = PARK_AFTER_POLLS  # start parked: no put can have come yet
        try:
            while not self.stopping:
                if empty >= PARK_AFTER_POLLS:
                    self._park()
                    idle = IDLE_MIN_S
                    empty = 0
                moved = 0
                for lane in lanes:
                    moved += lane.pump()
                if moved:
                    idle = IDLE_MIN_S
                    empty = 0
                    continue
                empty += 1
                time.sleep(idle)
                idle = min(idle * 2, IDLE_MAX_S)
        except Exception:  # pragma: no cover - a bug here must be seen, not end the node silently
            log.exception("ingest.puller_failed")

    def _park(self) -> None:
        """Sleep without the GIL until a bell rings (see the module doc for why nothing is missed)."""
        wake = self.wake
        wake.clear()
        if self.stopping:
            return

        def ring(_sample: zenoh.Sample) -> None:  # Zenoh's thread
            wake.set()

        bells: list[zenoh.Subscriber[None]] = []
        try:
            for lane in self._lanes:  # one by one: those declared are undeclared below
                bells.append(  # noqa: PERF401
                    self._session.declare_subscriber(
                        lane.key_expr,
                        zenoh.handlers.Callback(ring, indirect=False),
                        allowed_origin=zenoh.Locality.REMOTE,
                    )
                )
            self.parks += 1
            if sum(lane.pump() for lane in self._lanes) == 0:
                self.asleep = True
                if wake.wait(self.recheck_s) and not self.stopping:
                    self.rings += 1
        except zenoh.ZError:
            return  # the session closed under us: the node is stopping
        finally:
            self.asleep = False
            for bell in bells:
                bell.undeclare()
