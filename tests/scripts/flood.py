"""Publish COUNT messages of one kind as fast as the bus allows, then print the elapsed time as JSON.

python tests/scripts/flood.py --connect EP --app flow --kind load|ping|tick --sink NAME --count N
    [--keys K] [--raw]

Message ``n`` goes to sink NAME, or to ``NAME{n % K}`` with ``--keys K``. ``--raw`` publishes
with zenoh-python alone (a msgpack map, no attachment, congestion control BLOCK), as a
publisher that knows nothing of edabus's credit would.
"""

from __future__ import annotations

import argparse
import json
import time

import anyio
import msgspec
import zenoh

import edabus
from tests.cluster._nodes import client_config
from tests.cluster.flow_app import Load, Ping, Tick


def sink(args: argparse.Namespace, n: int) -> str:
    return f"{args.sink}{n % args.keys}" if args.keys else args.sink


async def main(args: argparse.Namespace) -> None:
    kind = {"load": Load, "ping": Ping, "tick": Tick}[args.kind]
    async with edabus.connect(args.connect) as bus:
        await bus.wait_for_group(args.app, timeout=15)
        started = time.perf_counter()
        pad = {"pad": b"x" * args.pad} if args.pad else {}
        for n in range(args.count):
            await bus.publish(kind(sink=sink(args, n), n=n, **pad))
        elapsed = time.perf_counter() - started
    print(json.dumps({"elapsed": elapsed, "closed_after": time.perf_counter() - started}), flush=True)  # noqa: T201


def raw(args: argparse.Namespace) -> None:
    """The same stream from zenoh-python alone: no edabus metadata, no credit."""
    kind = {"load": Load, "ping": Ping, "tick": Tick}[args.kind]
    with zenoh.open(client_config(args.connect)) as session:
        tokens = session.liveliness().get(f"@edabus/member/{args.app}/**", timeout=15)
        if not any(reply.ok is not None for reply in tokens):
            raise SystemExit(f"no {args.app} group is live")
        publishers: dict[str, zenoh.Publisher] = {}
        started = time.perf_counter()
        for n in range(args.count):
            msg = kind(sink=sink(args, n), n=n)
            key = msg.key()
            publisher = publishers.get(key)
            if publisher is None:
                publisher = publishers[key] = session.declare_publisher(
                    key, congestion_control=zenoh.CongestionControl.BLOCK
                )
            publisher.put(msgspec.msgpack.encode(msg))
        elapsed = time.perf_counter() - started
        # Zenoh's close can lose a stream's tail: a node's barrier reply comes after what it was sent.
        barrier = session.get(
            "@edabus/node/*/*/barrier",
            target=zenoh.QueryTarget.ALL,
            consolidation=zenoh.ConsolidationMode.NONE,
            timeout=60,
        )
        list(barrier)
    print(json.dumps({"elapsed": elapsed, "closed_after": time.perf_counter() - started}), flush=True)  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--connect", required=True)
    parser.add_argument("--app", default="flow")
    parser.add_argument("--kind", default="load")
    parser.add_argument("--sink", default="s")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--pad", type=int, default=0, help="bytes of padding per message (load only)")
    parser.add_argument("--keys", type=int, default=0, help="spread over this many sinks")
    parser.add_argument("--raw", action="store_true", help="publish with zenoh-python alone")
    arguments = parser.parse_args()
    if arguments.raw:
        raw(arguments)
    else:
        anyio.run(main, arguments)
