"""Publish COUNT messages of one kind as fast as the bus allows, then print the elapsed time as JSON.

python tests/scripts/flood.py --connect EP --app flow --kind load|ping --sink NAME --count N
"""

from __future__ import annotations

import argparse
import json
import time

import anyio

import edabus
from tests.cluster.flow_app import Load, Ping


async def main(args: argparse.Namespace) -> None:
    kind = {"load": Load, "ping": Ping}[args.kind]
    async with edabus.connect(args.connect) as bus:
        await bus.wait_for_group(args.app, timeout=15)
        started = time.perf_counter()
        pad = {"pad": b"x" * args.pad} if args.pad else {}
        for n in range(args.count):
            await bus.publish(kind(sink=args.sink, n=n, **pad))
        elapsed = time.perf_counter() - started
    print(json.dumps({"elapsed": elapsed, "closed_after": time.perf_counter() - started}), flush=True)  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--connect", required=True)
    parser.add_argument("--app", default="flow")
    parser.add_argument("--kind", default="load")
    parser.add_argument("--sink", default="s")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--pad", type=int, default=0, help="bytes of padding per message (load only)")
    anyio.run(main, parser.parse_args())
