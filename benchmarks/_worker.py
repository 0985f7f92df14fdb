"""Entry points of the worker processes: ``python -m benchmarks._worker ROLE JSON``.

Roles (JSON arguments in brackets):

- ``router`` [port]: a Zenoh router on tcp/127.0.0.1:port, multicast scouting off.
- ``raw-sink`` / ``edabus-sink`` [endpoint, expected, mark, idle_s]: count ticks;
  report the rate from the ``mark``-th handled message to the ``expected``-th.
- ``raw-pub`` / ``edabus-pub`` [endpoint, start, stop, mixed]: publish ticks once the
  sink is live (both sinks also declare the raw sink's token, so a raw publisher can
  feed an edabus sink; ``mixed`` makes an edabus publisher wait for that token).
- ``raw-server`` / ``edabus-server`` [endpoint]: answer requests until stdin closes.
- ``raw-client`` / ``edabus-client`` [endpoint, requests, warmup, mixed]: time requests
  (the edabus server also declares the raw server's token; ``mixed`` makes an
  edabus client wait for that token).
- ``raw-memory`` / ``edabus-memory`` [count, timeout]: resident memory per item
  (see `benchmarks._memory`).
- ``edabus-node`` [endpoint, node, members, timeout]: one node of a cluster, ready
  once its group sees ``members`` members, up until stdin closes (see `benchmarks._cluster`).

Any role also takes ``cpu``: run on that one CPU only. Every session is a
client of the router, with multicast scouting off, and is closed from the main
thread before the process exits.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import zenoh

import edabus
from edabus._transport._config import make_config
from edabus._transport._credit import DEFAULT_WINDOW

from ._cluster import edabus_node
from ._loops import RawServer, RawSink, edabus_publish, edabus_requests, raw_publish, raw_requests
from ._memory import edabus_memory, raw_memory
from ._model import APP, APP_NAME, GET_PATTERN, TICK_PATTERN, Sink, Tally, misrouted, quiet_logging
from ._procs import say_ready, say_result, wait_stdin_closed

# Liveliness tokens that say "ready" (S105 mistakes the names for secrets).
SINK_TOKEN = "bench/ready/sink"  # noqa: S105
SERVER_TOKEN = "bench/ready/server"  # noqa: S105
_LIVE_TIMEOUT_S = 30.0


def _wait_token(session: zenoh.Session, key: str, timeout: float) -> None:
    """Wait until a liveliness token on ``key`` is alive (the start-up barrier of docs/wire-format.md)."""
    sub = session.liveliness().declare_subscriber(key, zenoh.handlers.FifoChannel(16), history=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sample = sub.handler.try_recv()
            if sample is None:
                time.sleep(0.002)
            elif sample.kind == zenoh.SampleKind.PUT:
                return
        msg = f"no live token on {key!r} within {timeout} s"
        raise TimeoutError(msg)
    finally:
        sub.undeclare()


def _sink_record(tally: Tally, expected: int, mark: int, counts: dict[str, int]) -> dict[str, Any]:
    finished = tally.total >= expected
    return {
        "expected": expected,
        "received": tally.total,
        "messages": expected - mark,
        "seconds": tally.target_time - tally.mark_time if finished else math.nan,
        "done_at": tally.target_wall if finished else math.nan,
        "misrouted": misrouted(counts, expected),
    }


def _client(endpoint: str) -> zenoh.Config:
    return make_config(connect=endpoint)


# -- roles ---------------------------------------------------------------------------------


def router(args: dict[str, Any]) -> None:
    """A Python Zenoh router, up until stdin closes."""
    config = make_config(listen=f"tcp/127.0.0.1:{args['port']}", mode="router")
    with zenoh.open(config):
        say_ready()
        wait_stdin_closed()


def raw_sink(args: dict[str, Any]) -> None:
    """A wildcard callback subscriber that decodes and counts; its token says it is live."""
    expected, mark, idle = int(args["expected"]), int(args["mark"]), float(args["idle_s"])
    sink = RawSink()
    done = threading.Event()
    sink.tally.arm(expected, done.set, mark=mark)
    with zenoh.open(_client(args["endpoint"])) as session:
        sub = session.declare_subscriber(TICK_PATTERN, sink.on_sample)
        token = session.liveliness().declare_token(SINK_TOKEN)
        say_ready()
        last = -1
        while not done.wait(idle) and sink.tally.total != last:
            last = sink.tally.total
        token.undeclare()
        sub.undeclare()
    say_result(_sink_record(sink.tally, expected, mark, sink.counts))


def raw_pub(args: dict[str, Any]) -> None:
    """Publish once the sink is live; stay connected until stdin closes (so no tail is lost)."""
    with zenoh.open(_client(args["endpoint"])) as session:
        _wait_token(session, SINK_TOKEN, _LIVE_TIMEOUT_S)
        start, stop, warmup = int(args["start"]), int(args["stop"]), int(args.get("warmup", 0))
        started = time.perf_counter()
        raw_publish(session, start, start + warmup)
        measured_from = time.time()  # the first measured message leaves now
        raw_publish(session, start + warmup, stop)
        say_result(
            {"published": stop - start, "seconds": time.perf_counter() - started, "measured_from": measured_from}
        )
        wait_stdin_closed()


async def edabus_sink(args: dict[str, Any]) -> None:
    """A node hosting the keyed `Sink` app; its group token says it is live."""
    expected, mark, idle = int(args["expected"]), int(args["mark"]), float(args["idle_s"])
    tally = Sink.reset()
    done = anyio.Event()
    tally.arm(expected, done.set, mark=mark)
    window = int(args.get("window", DEFAULT_WINDOW))
    async with edabus.connect(args["endpoint"]) as bus, edabus.Node(bus, [APP], window=window) as node:
        # The raw token too, so that a raw publisher can feed this sink (a mixed run).
        token = bus._session.liveliness().declare_token(SINK_TOKEN)
        say_ready()
        last = -1
        while not done.is_set() and tally.total != last:
            last = tally.total
            with anyio.move_on_after(idle):
                await done.wait()
        handled = sum(s.handled for s in node.statistics())
        token.undeclare()
    record = _sink_record(tally, expected, mark, {key: actor.count for key, actor in Sink.instances.items()})
    record["handled_by_statistics"] = handled
    say_result(record)


async def edabus_pub(args: dict[str, Any]) -> None:
    """Publish once the group is live, then leave as edabus does: drain, close."""
    async with edabus.connect(args["endpoint"]) as bus:
        if args.get("mixed"):  # a raw sink: wait for its token instead of the group's
            await bus.wait_for_token(SINK_TOKEN, timeout=_LIVE_TIMEOUT_S)
        else:
            await bus.wait_for_group(APP_NAME, timeout=_LIVE_TIMEOUT_S)
        start, stop, warmup = int(args["start"]), int(args["stop"]), int(args.get("warmup", 0))
        started = time.perf_counter()
        await edabus_publish(bus, start, start + warmup)
        measured_from = time.time()  # the first measured message leaves now
        await edabus_publish(bus, start + warmup, stop)
        say_result(
            {"published": stop - start, "seconds": time.perf_counter() - started, "measured_from": measured_from}
        )


def raw_server(args: dict[str, Any]) -> None:
    """A trivial queryable, up until stdin closes."""
    server = RawServer()
    with zenoh.open(_client(args["endpoint"])) as session:
        queryable = session.declare_queryable(GET_PATTERN, server.on_query, complete=True)
        token = session.liveliness().declare_token(SERVER_TOKEN)
        say_ready()
        wait_stdin_closed()
        token.undeclare()
        queryable.undeclare()


def raw_client(args: dict[str, Any]) -> None:
    """Time sequential gets once the server is live."""
    with zenoh.open(_client(args["endpoint"])) as session:
        _wait_token(session, SERVER_TOKEN, _LIVE_TIMEOUT_S)
        run = raw_requests(session, int(args["requests"]), warmup=int(args["warmup"]))
    say_result(
        {"requests": run.requests, "p50_us": run.p50_us, "p99_us": run.p99_us, "mean_us": run.mean_us, "lost": run.lost}
    )


async def edabus_server(args: dict[str, Any]) -> None:
    """A node hosting the keyed `Sink` app, up until stdin closes."""
    Sink.reset()
    async with edabus.connect(args["endpoint"]) as bus, edabus.Node(bus, [APP]):
        # The raw token too, so that a raw client can time this node (a mixed run).
        token = bus._session.liveliness().declare_token(SERVER_TOKEN)
        say_ready()
        await anyio.to_thread.run_sync(wait_stdin_closed)
        token.undeclare()


async def edabus_client(args: dict[str, Any]) -> None:
    """Time sequential ``bus.request`` calls once the group is live."""
    async with edabus.connect(args["endpoint"]) as bus:
        if args.get("mixed"):  # a raw queryable: wait for its token instead of the group's
            await bus.wait_for_token(SERVER_TOKEN, timeout=_LIVE_TIMEOUT_S)
        else:
            await bus.wait_for_group(APP_NAME, timeout=_LIVE_TIMEOUT_S)
        run = await edabus_requests(bus, int(args["requests"]), warmup=int(args["warmup"]))
    say_result(
        {"requests": run.requests, "p50_us": run.p50_us, "p99_us": run.p99_us, "mean_us": run.mean_us, "lost": run.lost}
    )


_SYNC: dict[str, Callable[[dict[str, Any]], None]] = {
    "router": router,
    "raw-sink": raw_sink,
    "raw-pub": raw_pub,
    "raw-server": raw_server,
    "raw-client": raw_client,
    "raw-memory": raw_memory,
}
_ASYNC = {
    "edabus-sink": edabus_sink,
    "edabus-pub": edabus_pub,
    "edabus-server": edabus_server,
    "edabus-client": edabus_client,
    "edabus-memory": edabus_memory,
    "edabus-node": edabus_node,
}
ROLES = sorted([*_SYNC, *_ASYNC])


def main(argv: list[str]) -> int:
    """Run one role: ``ROLE JSON``."""
    if len(argv) != 2 or argv[0] not in ROLES:
        sys.stderr.write(f"usage: python -m benchmarks._worker {{{','.join(ROLES)}}} JSON\n")
        return 2
    role, args = argv[0], json.loads(argv[1])
    if args.get("cpu") is not None:
        os.sched_setaffinity(0, {int(args["cpu"])})
    quiet_logging()
    if role in _SYNC:
        _SYNC[role](args)
    else:
        anyio.run(_ASYNC[role], args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
