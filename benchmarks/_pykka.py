"""Pykka next to edabus in one process: `pykka.ThreadingActor` counters told or asked the same messages.

Pykka is optional (``pip install -e '.[bench]'``): the suite imports this module
only when pykka is installed, and its columns say "-" otherwise. Each actor is
a thread with its own queue; a tell is ``ref.tell(RawTick(...))``, an ask
``ref.ask(RawGet(...))``, answered with a `RawCount`. Like the edabus side, the
message is built per send, actors are started and warmed up before the clock,
and the run checks that each actor got exactly its share.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from typing import Any

import pykka

from ._loops import REQUEST_TIMEOUT_S
from ._model import NAMES, RawCount, RawGet, RawTick, misrouted
from ._stats import LatencyRun, ThroughputRun, latency_run

__all__ = ["ask_latency", "tell_throughput"]

_REPORT = object()  # asks an actor for its count (not itself counted)


class Progress:
    """Counts handled messages over all actors (from their threads) and notes when a target is reached."""

    def __init__(self) -> None:
        self.arm(-1)

    def arm(self, target: int) -> None:
        """Count afresh; set `done` when ``target`` more messages have been handled."""
        self._count = itertools.count(1)  # next() on it is atomic under the GIL: no lock needed
        self.target = target
        self.done = threading.Event()
        self.done_at = 0.0

    def hit(self) -> None:
        """One more message handled (any actor's thread)."""
        if next(self._count) == self.target:
            self.done_at = time.perf_counter()
            self.done.set()


class Counter(pykka.ThreadingActor):
    """One counter per name: what a keyed `Sink` actor does, as a Pykka actor."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.count = 0
        self._progress = progress

    def on_receive(self, message: Any) -> Any:
        if message is _REPORT:
            return self.count
        self.count += 1
        self._progress.hit()
        return RawCount(n=self.count) if isinstance(message, RawGet) else None


def _start(actors: int, progress: Progress) -> list[pykka.ActorRef[Counter]]:
    return [Counter.start(progress) for _ in range(actors)]


def _stop(refs: Sequence[pykka.ActorRef[Counter]], timeout: float) -> None:
    """Stop every actor and wait for their threads' last message."""
    futures = [ref.stop(block=False) for ref in refs]
    pykka.get_all(futures, timeout=timeout)


def _ask(ref: pykka.ActorRef[Counter], message: object, timeout: float) -> Any:
    """``ref.ask`` blocking for the answer (typed as a future or a value: with block=True, the value)."""
    return ref.ask(message, timeout=timeout)


def _tell(refs: Sequence[pykka.ActorRef[Counter]], names: Sequence[str], start: int, stop: int) -> None:
    count = len(refs)
    for i in range(start, stop):
        refs[i % count].tell(RawTick(name=names[i % count], n=i))


def tell_throughput(actors: int, messages: int, *, warmup: int, timeout: float) -> ThroughputRun:
    """``actor_ref.tell`` round-robin to ``actors`` (1 to 1,000) counters; timed until the last is handled."""
    names = NAMES[:actors]
    progress = Progress()
    refs = _start(actors, progress)
    try:
        progress.arm(warmup)
        _tell(refs, names, 0, warmup)
        progress.done.wait(timeout)
        progress.arm(messages)
        started = time.perf_counter()
        _tell(refs, names, warmup, warmup + messages)
        finished = progress.done.wait(timeout)
        seconds = (progress.done_at if finished else time.perf_counter()) - started
        counts = {name: int(_ask(ref, _REPORT, timeout)) for name, ref in zip(names, refs, strict=True)}
    finally:
        _stop(refs, timeout)
    return ThroughputRun(
        messages=messages,
        seconds=seconds,
        expected=warmup + messages,
        received=sum(counts.values()),
        misrouted=misrouted(counts, warmup + messages, names),
    )


def ask_latency(actors: int, requests: int, *, warmup: int) -> LatencyRun:
    """``warmup`` then ``requests`` sequential ``actor_ref.ask`` calls, round-robin over ``actors`` counters."""
    progress = Progress()
    refs = _start(actors, progress)
    times: list[float] = []
    lost = 0
    try:
        for i in range(warmup + requests):
            name = NAMES[i % actors]
            started = time.perf_counter()
            try:
                reply = _ask(refs[i % actors], RawGet(name=name, n=i), REQUEST_TIMEOUT_S)
            except pykka.Timeout:
                elapsed = None
            else:
                elapsed = time.perf_counter() - started if isinstance(reply, RawCount) else None
            if i >= warmup:
                if elapsed is None:
                    lost += 1
                else:
                    times.append(elapsed)
    finally:
        _stop(refs, REQUEST_TIMEOUT_S)
    return latency_run(times, lost=lost)
