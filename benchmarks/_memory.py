"""Memory per idle keyed actor, each figure measured in a fresh worker process.

edabus (role ``edabus-memory``): one process on the embedded default hosts the
`Idle` group (no state of its own, nothing passivated). Warm-up activates
``WARM_KEYS`` actors by the same path; then, after a ``gc.collect()``, the
resident set size (VmRSS) is read, ``count`` more actors are activated by one
message each (sent in chunks of ``CHUNK``, each handled before the next, so
that few messages are in flight at once), and VmRSS is read again. The growth
over ``count`` is what one more idle actor costs, the publisher's side included.

Raw (role ``raw-memory``): the floor, a dict of ``count`` trivial Python objects
under 32-byte string keys, measured the same way.
"""

from __future__ import annotations

import gc
import resource
from pathlib import Path
from typing import Any

import anyio

import edabus

from ._loops import edabus_publish
from ._model import IDLE_APP, Idle, Tally, Touch, fresh_names
from ._procs import Worker, say_result
from ._stats import MemoryRun

__all__ = ["edabus_memory", "per_item", "raw_memory"]

WARM_KEYS = 5_000
CHUNK = 1_000
_START_TIMEOUT_S = 60.0


def rss_bytes() -> int:
    """The resident set size of this process now (VmRSS), or its peak where /proc is missing."""
    try:
        with Path("/proc/self/status").open() as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _settled_rss() -> int:
    gc.collect()
    return rss_bytes()


async def _activate(bus: edabus.Bus, tally: Tally, names: list[str], timeout: float) -> None:
    """One message per name, ``CHUNK`` at a time, each chunk handled before the next is sent."""
    for start in range(0, len(names), CHUNK):
        chunk = names[start : start + CHUNK]
        done = anyio.Event()
        tally.arm(tally.total + len(chunk), done.set)
        await edabus_publish(bus, 0, len(chunk), chunk, Touch)
        with anyio.move_on_after(timeout):
            await done.wait()


async def edabus_memory(args: dict[str, Any]) -> None:
    """Worker role: VmRSS before and after activating ``count`` idle actors."""
    count, timeout = int(args["count"]), float(args["timeout"])
    tally = Idle.reset()
    warm, fresh = fresh_names("warm", WARM_KEYS), fresh_names("mem", count)  # before the first reading
    async with edabus.connect() as bus, edabus.Node(bus, [IDLE_APP]) as node:
        await _activate(bus, tally, warm, timeout)
        before = _settled_rss()
        await _activate(bus, tally, fresh, timeout)
        after = _settled_rss()
        (stats,) = node.statistics()
    say_result({"count": count, "rss_before": before, "rss_after": after, "live": stats.live_actors - WARM_KEYS})


class Trivial:
    """The raw reference's object: an instance of an empty class."""


def raw_memory(args: dict[str, Any]) -> None:
    """Worker role: VmRSS before and after building a dict of ``count`` trivial objects."""
    count = int(args["count"])
    warm = {f"warm{i:09d}".ljust(32, "x"): Trivial() for i in range(WARM_KEYS)}
    before = _settled_rss()
    table = {f"raw{i:09d}".ljust(32, "x"): Trivial() for i in range(count)}
    after = _settled_rss()
    say_result({"count": count, "rss_before": before, "rss_after": after, "live": len(table) + len(warm) - WARM_KEYS})


def per_item(side: str, count: int, *, timeout: float) -> MemoryRun:
    """One run in a fresh worker: ``side`` is ``"edabus"`` (idle actors) or ``"raw"`` (a dict of objects)."""
    with Worker(f"{side}-memory", {"count": count, "timeout": timeout}) as worker:
        record = worker.result(_START_TIMEOUT_S + count / 1000.0 + timeout)
    return MemoryRun(
        count=int(record["count"]),
        rss_before=int(record["rss_before"]),
        rss_after=int(record["rss_after"]),
        live=int(record["live"]),
    )
