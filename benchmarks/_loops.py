"""The work each side does, shared by the one-process runs and the worker processes.

Raw side: `RawSink` (a wildcard callback subscriber that decodes and counts per
name), `RawServer` (a trivial queryable), `raw_publish` and `raw_requests`.
edabus side: `edabus_publish` and `edabus_requests`; the counting is `Sink`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import msgspec
import zenoh

import edabus

from ._model import NAMES, Count, Get, RawCount, RawGet, RawTick, Tally, Tick, get_key, tick_key
from ._stats import LatencyRun, latency_run

__all__ = ["RawServer", "RawSink", "edabus_publish", "edabus_requests", "raw_publish", "raw_requests"]

_BLOCK = zenoh.CongestionControl.BLOCK
REQUEST_TIMEOUT_S = 5.0


class RawSink:
    """What a raw receiver does per sample: decode the msgpack map, count it under its name."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(NAMES, 0)
        self.tally = Tally()
        self._decode = msgspec.msgpack.Decoder(RawTick).decode

    def on_sample(self, sample: zenoh.Sample) -> None:  # Zenoh's callback thread
        msg = self._decode(sample.payload.to_bytes())
        self.counts[msg.name] += 1
        self.tally.hit()


class RawServer:
    """A trivial queryable: decode the request, count it, reply with the count."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(NAMES, 0)
        self._decode = msgspec.msgpack.Decoder(RawGet).decode
        self._encode = msgspec.msgpack.Encoder().encode

    def on_query(self, query: zenoh.Query) -> None:  # Zenoh's callback thread
        try:
            payload = query.payload
            msg = self._decode(payload.to_bytes() if payload is not None else b"")
            self.counts[msg.name] = n = self.counts[msg.name] + 1
            query.reply(query.key_expr, self._encode(RawCount(n=n)))
        finally:
            query.drop()


def raw_publish(
    session: zenoh.Session,
    start: int,
    stop: int,
    names: Sequence[str] = NAMES,
    key: Callable[[str], str] = tick_key,
) -> None:
    """Publish ticks ``start`` to ``stop - 1`` round-robin over ``names``, on ``key(name)``, with BLOCK."""
    encode = msgspec.msgpack.Encoder().encode
    keys = [key(name) for name in names]
    count = len(names)
    put = session.put
    for i in range(start, stop):
        put(keys[i % count], encode(RawTick(name=names[i % count], n=i)), congestion_control=_BLOCK)


async def edabus_publish(
    bus: edabus.Bus,
    start: int,
    stop: int,
    names: Sequence[str] = NAMES,
    make: Callable[..., edabus.Message] = Tick,
) -> None:
    """Publish ``make(name=..., n=i)`` for ``i`` in ``start .. stop - 1``, round-robin over ``names``."""
    count = len(names)
    publish = bus.publish
    for i in range(start, stop):
        await publish(make(name=names[i % count], n=i))


def raw_requests(session: zenoh.Session, count: int, *, warmup: int) -> LatencyRun:
    """``warmup`` then ``count`` sequential gets; each timed until its first reply is decoded."""
    encode = msgspec.msgpack.Encoder().encode
    decode = msgspec.msgpack.Decoder(RawCount).decode
    keys = [get_key(name) for name in NAMES]
    names = len(NAMES)
    times: list[float] = []
    lost = 0
    for i in range(warmup + count):
        name = NAMES[i % names]
        started = time.perf_counter()
        replies = session.get(keys[i % names], payload=encode(RawGet(name=name, n=i)), timeout=REQUEST_TIMEOUT_S)
        try:
            ok = replies.recv().ok  # None: an error reply
        except zenoh.ZError:  # the query ended with no reply
            ok = None
        if ok is not None:
            decode(ok.payload.to_bytes())
        elapsed = time.perf_counter() - started if ok is not None else None
        for _ in replies:  # let the query finish before the next one
            pass
        if i >= warmup:
            if elapsed is None:
                lost += 1
            else:
                times.append(elapsed)
    return latency_run(times, lost=lost)


async def edabus_requests(bus: edabus.Bus, count: int, *, warmup: int) -> LatencyRun:
    """``warmup`` then ``count`` sequential ``bus.request`` calls to the keyed `Sink` actors."""
    names = len(NAMES)
    times: list[float] = []
    lost = 0
    for i in range(warmup + count):
        started = time.perf_counter()
        try:
            await bus.request(Get(name=NAMES[i % names], n=i), reply_type=Count, timeout=REQUEST_TIMEOUT_S)
        except edabus.EdabusError:
            elapsed = None
        else:
            elapsed = time.perf_counter() - started
        if i >= warmup:
            if elapsed is None:
                lost += 1
            else:
                times.append(elapsed)
    return latency_run(times, lost=lost)
