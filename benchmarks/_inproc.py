"""The one-process scenarios, on the embedded default (a peer that listens on nothing).

Throughput: ``warmup`` messages (which also spawn every edabus actor) are sent
and handled first; the clock then runs from the first measured publish until
the last measured message has been handled. By default the ticks go round-robin
to 1,000 names (keyed `Sink` actors; raw: one wildcard subscriber counting per
name). With ``solo`` they all go to one fixed key, ``bench/solo``: edabus's
`SoloSink` singleton, raw's subscriber on that key, so neither side subscribes
with a wildcard.
"""

from __future__ import annotations

import threading
import time

import anyio
import zenoh

import edabus
from edabus._transport._config import make_config

from ._loops import RawServer, RawSink, edabus_publish, edabus_requests, raw_publish, raw_requests
from ._model import (
    APP,
    GET_PATTERN,
    NAMES,
    SOLO_APP,
    SOLO_KEY,
    TICK_PATTERN,
    Sink,
    Solo,
    SoloSink,
    Tick,
    misrouted,
    tick_key,
)
from ._stats import LatencyRun, ThroughputRun

__all__ = ["edabus_request_latency", "edabus_throughput", "raw_request_latency", "raw_throughput"]


def _solo_key(_name: str) -> str:
    return SOLO_KEY


def raw_throughput(messages: int, *, warmup: int, timeout: float, solo: bool = False) -> ThroughputRun:
    """Raw zenoh-python: puts with BLOCK into one callback subscriber of the same session."""
    names, key = (NAMES[:1], _solo_key) if solo else (NAMES, tick_key)
    sink = RawSink()
    with zenoh.open(make_config()) as session:
        sub = session.declare_subscriber(SOLO_KEY if solo else TICK_PATTERN, sink.on_sample)
        try:
            warmed = threading.Event()
            sink.tally.arm(warmup, warmed.set)
            raw_publish(session, 0, warmup, names, key)
            warmed.wait(timeout)
            done = threading.Event()
            sink.tally.arm(warmup + messages, done.set)
            started = time.perf_counter()
            raw_publish(session, warmup, warmup + messages, names, key)
            finished = done.wait(timeout)
        finally:
            sub.undeclare()
    return ThroughputRun(
        messages=messages,
        seconds=(sink.tally.target_time if finished else time.perf_counter()) - started,
        expected=warmup + messages,
        received=sink.tally.total,
        misrouted=misrouted(sink.counts, warmup + messages, names),
    )


async def edabus_throughput(messages: int, *, warmup: int, timeout: float, solo: bool = False) -> ThroughputRun:
    """edabus: ``bus.publish`` to keyed `Sink` actors (or the `SoloSink`) hosted by a node on the same bus."""
    names, make, app = (NAMES[:1], Solo, SOLO_APP) if solo else (NAMES, Tick, APP)
    tally = Sink.reset()
    SoloSink.last = None
    async with edabus.connect() as bus, edabus.Node(bus, [app]) as node:
        warmed = anyio.Event()
        tally.arm(warmup, warmed.set)
        await edabus_publish(bus, 0, warmup, names, make)
        with anyio.move_on_after(timeout):
            await warmed.wait()
        done = anyio.Event()
        tally.arm(warmup + messages, done.set)
        started = time.perf_counter()
        await edabus_publish(bus, warmup, warmup + messages, names, make)
        with anyio.move_on_after(timeout):
            await done.wait()
        stats = node.statistics()
    finished = done.is_set()
    if solo:
        counts = {names[0]: SoloSink.last.count if SoloSink.last is not None else 0}
    else:
        counts = {key: actor.count for key, actor in Sink.instances.items()}
    return ThroughputRun(
        messages=messages,
        seconds=(tally.target_time if finished else time.perf_counter()) - started,
        expected=warmup + messages,
        # The node's own counter, checked against the actors' in `misrouted`.
        received=sum(s.handled for s in stats),
        misrouted=misrouted(counts, warmup + messages, names) + (tally.total != sum(counts.values())),
    )


def raw_request_latency(requests: int, *, warmup: int) -> LatencyRun:
    """Raw zenoh-python: ``session.get`` to a trivial queryable of the same session."""
    server = RawServer()
    with zenoh.open(make_config()) as session:
        queryable = session.declare_queryable(GET_PATTERN, server.on_query, complete=True)
        try:
            return raw_requests(session, requests, warmup=warmup)
        finally:
            queryable.undeclare()


async def edabus_request_latency(requests: int, *, warmup: int) -> LatencyRun:
    """edabus: ``bus.request`` to keyed `Sink` actors hosted by a node on the same bus."""
    Sink.reset()
    async with edabus.connect() as bus, edabus.Node(bus, [APP]):
        return await edabus_requests(bus, requests, warmup=warmup)
