"""The flood benchmark's node app and publisher (see `benchmarks.flood`).

The node: ``edabus run benchmarks._flood:app`` with ``EDABUS_FLOOD_WORK`` naming
the handler's work (a key of `WORK`) and, optionally, ``EDABUS_FLOOD_INBOX`` the
node's inbox size. The publisher: ``python -m benchmarks._flood ROUTER COUNT KEYS RAW``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import anyio
import msgspec
import zenoh

import edabus
from edabus._transport._config import make_config

__all__ = ["WORK", "Flood", "app"]

# name: (kind, seconds per message, label)
WORK = {
    "cpu-0.2ms": ("cpu", 0.0002, "0.2 ms CPU"),
    "sleep-1ms": ("sleep", 0.001, "1 ms awaited"),
    "sleep-10ms": ("sleep", 0.01, "10 ms awaited"),
}


class Flood(edabus.Message, key="flood/{sink}/msg"):
    sink: str
    n: int


_kind, _seconds, _ = WORK[os.environ.get("EDABUS_FLOOD_WORK", "cpu-0.2ms")]


class Worker(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.key = key

    @edabus.handler
    async def work(self, msg: Flood) -> None:
        if _kind == "cpu":
            deadline = time.perf_counter() + _seconds
            while time.perf_counter() < deadline:
                pass
        else:
            await anyio.sleep(_seconds)


app = edabus.App("flood")
app.keyed(Worker, key="sink")


async def _publish(router: str, count: int, keys: int) -> float:
    async with edabus.connect(router) as bus:
        await bus.wait_for_group("flood", timeout=20)
        started = time.perf_counter()
        for n in range(count):
            await bus.publish(Flood(sink=f"k{n % keys}", n=n))
        return time.perf_counter() - started


def _publish_raw(router: str, count: int, keys: int) -> float:
    with zenoh.open(make_config(connect=router)) as session:  # a client, multicast off
        publishers = {
            k: session.declare_publisher(f"flood/k{k}/msg", congestion_control=zenoh.CongestionControl.BLOCK)
            for k in range(keys)
        }
        started = time.perf_counter()
        for n in range(count):
            publishers[n % keys].put(msgspec.msgpack.encode({"sink": f"k{n % keys}", "n": n}))
        elapsed = time.perf_counter() - started
        # Zenoh's close can lose a stream's tail: a node's barrier reply comes after what it was sent.
        barrier = session.get(
            "@edabus/node/*/*/barrier", target=zenoh.QueryTarget.ALL, consolidation=zenoh.ConsolidationMode.NONE
        )
        list(barrier)
        return elapsed


if __name__ == "__main__":
    router_arg, count_arg, keys_arg, raw_arg = sys.argv[1:5]
    if raw_arg == "1":
        seconds = _publish_raw(router_arg, int(count_arg), int(keys_arg))
    else:
        seconds = anyio.run(_publish, router_arg, int(count_arg), int(keys_arg))
    print(json.dumps({"elapsed": seconds}), flush=True)
