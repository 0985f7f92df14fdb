"""Flow control across processes: floods, drop policies, a 10 s handler, and group isolation.

Each test hosts the node in this process (connected to a router subprocess) and
floods it from publisher subprocesses. They run on asyncio only: the behaviour
under test is Zenoh's and the node's, and a second backend would double minutes.
"""

from __future__ import annotations

import json
import resource
import subprocess
import time

import anyio
import pytest

import edabus
from tests.cluster.flow_app import Busy, Quick, Stuck
from tests.conftest import Processes

pytestmark = pytest.mark.timeout(120)


def publisher(
    processes: Processes, router: str, *, kind: str, sink: str, count: int, pad: int = 0
) -> subprocess.Popen[bytes]:
    args = ["--connect", router, "--kind", kind, "--sink", sink, "--count", str(count), "--pad", str(pad)]
    return processes.start(["tests/scripts/flood.py", *args])


def result_of(proc: subprocess.Popen[bytes], timeout: float = 90) -> dict[str, float]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-2000:]
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def wait_until(predicate: object, timeout: float) -> None:
    with anyio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110 - cross-process progress
            await anyio.sleep(0.01)


def test_a_flood_to_a_slow_actor_loses_nothing_and_slows_the_publisher(processes: Processes, router: str) -> None:
    """100,000 messages to a 40 µs/message actor: all handled, mailbox and inbox within bounds, publisher slowed."""
    n = 100_000

    async def run() -> tuple[edabus.SupervisorStatistics, float, dict[str, float], int]:
        Busy.handled = 0
        app = edabus.App("flow")
        app.keyed(Busy, key="sink", mailbox_size=100)
        async with edabus.connect(router) as bus, edabus.Node(bus, [app], inbox_size=1000) as node:
            pub = publisher(processes, router, kind="load", sink="s", count=n, pad=2000)
            await wait_until(lambda: Busy.handled > 0, 30)
            started = time.perf_counter()
            await wait_until(lambda: Busy.handled == n, 90)
            received_in = time.perf_counter() - started
            stats = next(s for s in node.statistics() if s.group == "Busy")
            sent = await anyio.to_thread.run_sync(result_of, pub)
        return stats, received_in, sent, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    stats, received_in, sent, max_rss_kib = anyio.run(run)
    print(  # noqa: T201 - the figures for the record (pytest -s shows them)
        f"\nflood: {n} msgs, handled in {received_in:.2f} s ({n / received_in:,.0f}/s), "
        f"publisher {sent['elapsed']:.2f} s, "
        f"mailbox peak {stats.mailbox_peak}, inbox peak {stats.inbox_peak}, stalls {stats.stalls}, "
        f"max RSS {max_rss_kib / 1024:.0f} MiB"
    )
    assert stats.handled == n
    assert stats.dropped == 0
    assert stats.dead_letters == 0
    assert stats.mailbox_peak <= 100
    assert stats.inbox_peak <= 1000
    assert stats.stalls == 0
    # Backpressure reached the publisher: it could not run far ahead of the handler.
    assert sent["elapsed"] >= 0.4 * received_in


def test_drop_newest_counts_exactly_what_was_not_handled(processes: Processes, router: str) -> None:
    """With drop_newest, handled + dropped equals what was sent, and every drop is a dead letter."""
    n = 30_000

    async def run() -> edabus.SupervisorStatistics:
        Busy.handled = 0
        app = edabus.App("flow")
        app.keyed(Busy, key="sink", mailbox_size=50, overflow="drop_newest")
        async with edabus.connect(router) as bus, edabus.Node(bus, [app]) as node:
            sup = node.supervisor("Busy")
            pub = publisher(processes, router, kind="load", sink="d", count=n)
            await anyio.to_thread.run_sync(result_of, pub)
            await wait_until(lambda: sup.statistics().received == n and not sup.busy(), 60)
            return sup.statistics()

    stats = anyio.run(run)
    assert stats.handled + stats.dropped == n
    assert stats.dropped == stats.dead_letters
    assert stats.dropped > 0


def test_a_10_s_handler_loses_nothing_and_other_groups_keep_going(processes: Processes, router: str) -> None:
    """A handler stuck 10 s behind a flood: no transport closes, nothing is lost, another group keeps handling."""
    stalled_msgs, pings = 3_000, 20_000

    async def run() -> tuple[edabus.SupervisorStatistics, float, float]:
        Stuck.handled = Quick.handled = 0
        app = edabus.App("flow")
        app.keyed(Stuck, key="sink", mailbox_size=10)
        app.keyed(Quick, key="sink")
        async with edabus.connect(router) as bus, edabus.Node(bus, [app], inbox_size=100) as node:
            slow_pub = publisher(processes, router, kind="load", sink="stuck", count=stalled_msgs)
            started = time.perf_counter()
            fast_pub = publisher(processes, router, kind="ping", sink="q", count=pings)
            await wait_until(lambda: Quick.handled == pings, 60)
            quick_done = time.perf_counter() - started
            assert Stuck.handled < stalled_msgs  # the other group finished while this one was stuck
            await wait_until(lambda: Stuck.handled == stalled_msgs, 60)
            await anyio.to_thread.run_sync(result_of, slow_pub)
            await anyio.to_thread.run_sync(result_of, fast_pub)
            stats = next(s for s in node.statistics() if s.group == "Stuck")
        return stats, quick_done, pings / quick_done

    stats, quick_done, rate = anyio.run(run)
    print(f"\nstalled group: quick group handled {pings} in {quick_done:.2f} s ({rate:,.0f}/s); stuck stats {stats}")  # noqa: T201
    assert stats.handled == stalled_msgs
    assert stats.dropped == 0
    assert quick_done < Stuck.STALL_S
