"""Activation: messages that each wake a new keyed actor, against messages to actors already live.

One process, one node, the `Idle` group (``max_actors`` far above the keys, no
idle timeout, so nothing is passivated). Warm-up activates the 1,000 existing
keys; then ``keys`` messages go round-robin to those 1,000 ("existing keys"), and
``keys`` messages to ``keys`` names never seen before ("new keys"), each of which
activates an actor. Both are timed from the first publish until the last message
is handled, in the same run, so the ratio of the two rates is what activation costs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio

import edabus

from ._loops import edabus_publish
from ._model import IDLE_APP, NAMES, Idle, Tally, Touch, fresh_names
from ._stats import ThroughputRun

__all__ = ["EXISTING", "NEW", "activation"]

EXISTING = "existing keys"
NEW = "new keys"


async def _phase(bus: edabus.Bus, tally: Tally, names: Sequence[str], count: int, timeout: float) -> ThroughputRun:
    """Publish ``count`` touches round-robin over ``names``; the rate until all are handled."""
    before = tally.total
    done = anyio.Event()
    tally.arm(before + count, done.set)
    started = time.perf_counter()
    await edabus_publish(bus, 0, count, names, Touch)
    with anyio.move_on_after(timeout):
        await done.wait()
    finished = done.is_set()
    return ThroughputRun(
        messages=count,
        seconds=(tally.target_time if finished else time.perf_counter()) - started,
        expected=count,
        received=tally.total - before,
    )


async def activation(keys: int, *, warmup: int, timeout: float) -> dict[str, ThroughputRun]:
    """One run: the rate to the 1,000 existing keys and the rate to ``keys`` new ones."""
    tally = Idle.reset()
    new_names = fresh_names("new", keys)  # before the clock
    async with edabus.connect() as bus, edabus.Node(bus, [IDLE_APP]) as node:
        await _phase(bus, tally, NAMES, warmup, timeout)
        existing = await _phase(bus, tally, NAMES, keys, timeout)
        new = await _phase(bus, tally, new_names, keys, timeout)
        (stats,) = node.statistics()
    # Every new key must have activated an actor, and none may have been passivated.
    wrong_actors = abs(stats.live_actors - (len(NAMES) + keys)) + stats.passivated
    wrong_count = abs(stats.handled - (warmup + 2 * keys))
    return {
        EXISTING: existing,
        NEW: ThroughputRun(
            messages=new.messages,
            seconds=new.seconds,
            expected=new.expected,
            received=new.received,
            misrouted=wrong_actors + wrong_count,
        ),
    }
