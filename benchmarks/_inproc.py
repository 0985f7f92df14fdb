"""The one-process scenarios, on the embedded default (a peer that listens on nothing).

Throughput: ``warmup`` messages (which also spawn every edabus actor) are sent
and handled first; the clock then runs from the first measured publish until
the last measured message has been handled.
"""

from __future__ import annotations

import threading
import time

import anyio
import zenoh

import edabus
from edabus._config import make_config

from ._loops import RawServer, RawSink, edabus_publish, edabus_requests, raw_publish, raw_requests
from ._model import APP, GET_PATTERN, TICK_PATTERN, Sink, misrouted
from ._stats import LatencyRun, ThroughputRun

__all__ = ["edabus_request_latency", "edabus_throughput", "raw_request_latency", "raw_throughput"]


def raw_throughput(messages: int, *, warmup: int, timeout: float) -> ThroughputRun:
    """Raw zenoh-python: puts with BLOCK into one wildcard callback subscriber of the same session."""
    sink = RawSink()
    with zenoh.open(make_config()) as session:
        sub = session.declare_subscriber(TICK_PATTERN, sink.on_sample)
        try:
            warmed = threading.Event()
            sink.tally.arm(warmup, warmed.set)
            raw_publish(session, 0, warmup)
            warmed.wait(timeout)
            done = threading.Event()
            sink.tally.arm(warmup + messages, done.set)
            started = time.perf_counter()
            raw_publish(session, warmup, warmup + messages)
            finished = done.wait(timeout)
        finally:
            sub.undeclare()
    return ThroughputRun(
        messages=messages,
        seconds=(sink.tally.target_time if finished else time.perf_counter()) - started,
        expected=warmup + messages,
        received=sink.tally.total,
        misrouted=misrouted(sink.counts, warmup + messages),
    )


async def edabus_throughput(messages: int, *, warmup: int, timeout: float) -> ThroughputRun:
    """edabus: ``bus.publish`` to keyed `Sink` actors hosted by a node on the same bus."""
    tally = Sink.reset()
    async with edabus.connect() as bus, edabus.Node(bus, [APP]) as node:
        warmed = anyio.Event()
        tally.arm(warmup, warmed.set)
        await edabus_publish(bus, 0, warmup)
        with anyio.move_on_after(timeout):
            await warmed.wait()
        done = anyio.Event()
        tally.arm(warmup + messages, done.set)
        started = time.perf_counter()
        await edabus_publish(bus, warmup, warmup + messages)
        with anyio.move_on_after(timeout):
            await done.wait()
        stats = node.statistics()
    finished = done.is_set()
    counts = {key: actor.count for key, actor in Sink.instances.items()}
    return ThroughputRun(
        messages=messages,
        seconds=(tally.target_time if finished else time.perf_counter()) - started,
        expected=warmup + messages,
        # The node's own counter, checked against the actors' in `misrouted`.
        received=sum(s.handled for s in stats),
        misrouted=misrouted(counts, warmup + messages) + (tally.total != sum(counts.values())),
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
