"""A cluster: three edabus nodes (processes) hosting the keyed `Sink` app, fed through a router.

Each node is a worker (role ``edabus-node``) that says it is ready once its
group sees all the members, so placement has settled before the first message.
The publisher is this process, an edabus client of the same router: it sends
``warmup`` ticks round-robin over the 1,000 names, then ``rounds`` rounds of
``messages``; after each it drains (every node has taken in what was sent) and
reads every node's `SupervisorStatistics` from ``@edabus/node/{app}/*/stats`` until the
handled counts add up and the inboxes are empty.

Per round and node: ``received`` (every arrival, ``not_owned`` included) over
``handled``. A node that saw only the messages it owns scores 1.0; a node that
sees every message while owning a third scores 3.0. The figure is the highest
node's, and the handled counts must add up to what was sent (lost, or twice).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import anyio
import msgspec

import edabus

from ._loops import edabus_publish
from ._model import APP, APP_NAME, Sink
from ._procs import Worker, say_ready, wait_stdin_closed
from ._stats import ClusterRun

__all__ = ["cluster_rounds", "edabus_node"]

GROUP = "Sink"
_START_TIMEOUT_S = 60.0
_POLL_S = 0.05
_stats_decoder = msgspec.msgpack.Decoder(list[edabus.SupervisorStatistics])


async def edabus_node(args: dict[str, Any]) -> None:
    """Worker role: a node with id ``node`` hosting `APP`; ready once its group sees ``members`` members."""
    Sink.reset()
    members, timeout = int(args["members"]), float(args["timeout"])
    async with edabus.connect(args["endpoint"], node_id=args["node"]) as bus, edabus.Node(bus, [APP]) as node:
        membership = node.memberships[node.supervisor(GROUP)]
        complete = anyio.Event()

        def check() -> None:
            if len(membership.members) >= members:
                complete.set()

        membership.on_change(check)
        check()
        with anyio.fail_after(timeout):
            await complete.wait()
        say_ready()
        await anyio.to_thread.run_sync(wait_stdin_closed)


Counters = dict[str, tuple[int, int, int]]  # node: (received, handled, inbox + mailbox depth)


async def _read(bus: edabus.Bus) -> Counters:
    """Every node's counters for the `Sink` group, by node id."""
    counters: Counters = {}
    for reply in await bus.query(f"@edabus/node/{APP_NAME}/*/stats", timeout=5.0):
        if reply.ok is None:
            continue
        for stats in _stats_decoder.decode(reply.ok.payload.to_bytes()):
            if stats.app == APP_NAME and stats.group == GROUP:
                counters[stats.node] = (stats.received, stats.handled, stats.inbox_depth + stats.mailbox_depth)
    return counters


async def _settled(bus: edabus.Bus, nodes: int, handled: int, idle_s: float) -> Counters:
    """Poll until ``nodes`` nodes answer, their handled counts reach ``handled``, nothing waits, nothing moves.

    Unchanged over two reads: a dispatcher may still hold a batch it took from an
    empty inbox. Gives up (returning what it read) when nothing moved for ``idle_s`` seconds.
    """
    last: Counters = {}
    moved = time.monotonic()
    while True:
        counters = await _read(bus)
        if (
            counters == last
            and len(counters) == nodes
            and sum(h for _, h, _ in counters.values()) >= handled
            and not any(depth for _, _, depth in counters.values())
        ):
            return counters
        if counters != last:
            last, moved = counters, time.monotonic()
        elif time.monotonic() - moved > idle_s:
            return counters
        await anyio.sleep(_POLL_S)


async def _rounds(
    endpoint: str, nodes: int, messages: int, *, warmup: int, rounds: int, idle_s: float
) -> list[ClusterRun]:
    runs = []
    async with edabus.connect(endpoint) as bus:
        await bus.wait_for_group(APP_NAME, timeout=_START_TIMEOUT_S)
        await edabus_publish(bus, 0, warmup)
        await bus.drain()
        base = await _settled(bus, nodes, warmup, idle_s)
        sent = warmup
        for _ in range(rounds):
            started = time.perf_counter()
            await edabus_publish(bus, sent, sent + messages)
            await bus.drain()
            total = sum(h for _, h, _ in base.values()) + messages
            after = await _settled(bus, nodes, total, idle_s)
            seconds = time.perf_counter() - started
            sent += messages
            runs.append(
                ClusterRun(
                    messages=messages,
                    seconds=seconds,
                    received={n: after[n][0] - base.get(n, (0, 0, 0))[0] for n in after},
                    handled={n: after[n][1] - base.get(n, (0, 0, 0))[1] for n in after},
                )
            )
            base = after
    return runs


def cluster_rounds(
    endpoint: str, messages: int, *, nodes: int = 3, warmup: int, rounds: int, idle_s: float
) -> list[ClusterRun]:
    """Start ``nodes`` node workers on the router at ``endpoint``; publish and count ``rounds`` rounds."""
    args = {"endpoint": endpoint, "members": nodes, "timeout": _START_TIMEOUT_S}
    with contextlib.ExitStack() as stack:
        workers = [stack.enter_context(Worker("edabus-node", args | {"node": f"bench-node-{i}"})) for i in range(nodes)]
        try:
            for worker in workers:
                worker.wait_ready(_START_TIMEOUT_S)
            return anyio.run(lambda: _rounds(endpoint, nodes, messages, warmup=warmup, rounds=rounds, idle_s=idle_s))
        finally:
            for worker in workers:  # all at once: one by one, each would hand its keys to the rest
                worker.ask_to_stop()
