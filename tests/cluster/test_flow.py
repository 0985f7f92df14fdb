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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import zenoh
from structlog.testing import capture_logs

import edabus
import edabus._transport._credit
from edabus._cluster._status import gather_status
from tests.cluster._nodes import NodeProcess, client_config
from tests.cluster.flow_app import Busy, Quick, Sleepy, Stuck, Tick
from tests.conftest import Processes

pytestmark = pytest.mark.timeout(120)
FLOW = "tests.cluster.flow_app:app"


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
    """100,000 messages to a 40 µs/message actor: all handled, mailbox and inbox bounded, publisher slowed."""
    n = 100_000

    async def run() -> tuple[edabus.SupervisorStatistics, float, dict[str, float], int]:
        Busy.handled = 0
        app = edabus.App("flow")
        app.keyed(Busy, key="sink", mailbox_size=100)
        async with edabus.connect(router) as bus, edabus.Node(bus, [app], inbox_size=1000, window=4000) as node:
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
        f"mailbox peak {stats.mailbox_peak}, inbox peak {stats.inbox_peak}, overflow {stats.overflow}, "
        f"max RSS {max_rss_kib / 1024:.0f} MiB"
    )
    assert stats.handled == n
    assert stats.dropped == 0
    assert stats.dead_letters == 0
    assert stats.mailbox_peak <= 100
    assert stats.inbox_peak <= 4_000  # the publisher's window
    assert stats.overflow == 0
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


def flood_to_sleepy(
    processes: Processes, router: str, *, raw: bool, count: int, node_options: dict[str, int]
) -> tuple[edabus.SupervisorStatistics, float, dict[str, float]]:
    """``count`` ticks over 10 keys of 1 ms actors; (the group's statistics, the node's time, the publisher's)."""

    async def run() -> tuple[edabus.SupervisorStatistics, float, dict[str, float]]:
        Sleepy.handled = 0
        app = edabus.App("flow")
        app.keyed(Sleepy, key="sink", mailbox_size=100)
        async with edabus.connect(router) as bus, edabus.Node(bus, [app], **node_options) as node:  # type: ignore[arg-type]
            sup = node.supervisor("Sleepy")

            def stats() -> edabus.SupervisorStatistics:  # the node's: with its inbox's counts
                return next(s for s in node.statistics() if s.group == "Sleepy")

            args = ["--kind", "tick", "--sink", "k", "--keys", "10", "--count", str(count), *(["--raw"] if raw else [])]
            pub = processes.start(["tests/scripts/flood.py", "--connect", router, *args])
            await wait_until(lambda: sup.statistics().received > 0, 30)
            started = time.perf_counter()
            await wait_until(lambda: (s := stats()).handled + s.overflow >= count and not sup.busy(), 90)
            node_time = time.perf_counter() - started
            sent = await anyio.to_thread.run_sync(result_of, pub)
            return stats(), node_time, sent

    return anyio.run(run)


def test_a_flood_from_an_edabus_publisher_to_1_ms_actors_is_all_handled_at_their_pace(
    processes: Processes, router: str
) -> None:
    """20,000 messages to 1 ms actors through a router: every one handled, and the publisher kept to their pace."""
    n = 20_000
    stats, node_time, sent = flood_to_sleepy(processes, router, raw=False, count=n, node_options={"window": 1_000})
    print(f"\ncredit: {n} to 10 x 1 ms actors: node {node_time:.2f} s, publisher {sent['elapsed']:.2f} s; {stats}")  # noqa: T201
    assert stats.handled == n
    assert (stats.overflow, stats.dropped, stats.dead_letters) == (0, 0, 0)
    # It could run at most a window (1,000 here) and ten mailboxes (100 each) ahead of the actors.
    assert sent["elapsed"] >= 0.5 * node_time  # without credit: under 0.1 (it would finish at once)
    assert stats.inbox_peak <= 1_000 + 10


def test_a_flood_from_a_raw_block_publisher_is_handled_or_counted_as_overflow(
    processes: Processes, router: str
) -> None:
    """The same flood from zenoh-python alone (no credit): handled + overflow == sent; overflow dead-lettered."""
    n = 20_000
    options = {"inbox_size": 1_000, "overflow_limit": 1_000}
    with capture_logs() as logs:
        stats, node_time, sent = flood_to_sleepy(processes, router, raw=True, count=n, node_options=options)
    print(f"\nraw: {n} to 10 x 1 ms actors: node {node_time:.2f} s, publisher {sent['elapsed']:.2f} s; {stats}")  # noqa: T201
    assert stats.handled + stats.overflow == n
    assert stats.overflow > 0
    assert 0 < stats.dead_letters <= stats.overflow
    assert stats.inbox_peak <= 2_000
    overflowing = [e for e in logs if e["event"] == "inbox.overflow"]
    assert 1 <= len(overflowing) <= stats.overflow // 100  # once per burst, not per message


class Held(edabus.Actor):
    """Its handlers wait until the test opens the gate."""

    gate: anyio.Event
    handled = 0

    def __init__(self, key: str) -> None:
        self.key = key

    @edabus.handler
    async def tick(self, msg: Tick) -> None:
        await Held.gate.wait()
        Held.handled += 1


@asynccontextmanager
async def held_group(router: str) -> AsyncIterator[tuple[edabus.Node, edabus.Bus]]:
    """A `Held` group behind a 10-message window on a node, and a publisher that knows its credit."""
    Held.gate, Held.handled = anyio.Event(), 0
    app = edabus.App("held")
    app.keyed(Held, key="sink", mailbox_size=1)
    async with (
        edabus.connect(router) as node_bus,
        edabus.Node(node_bus, [app], window=10, inbox_size=5) as node,
        edabus.connect(router) as bus,
    ):
        await bus.wait_for_group("held", timeout=10)
        with anyio.fail_after(10):
            while not bus._router.windows(Tick):  # noqa: ASYNC110 - the catalog comes by itself
                await anyio.sleep(0.01)
        yield node, bus


async def publish_until_refused(bus: edabus.Bus, timeout: float) -> int:
    """Publish ticks until one gets no credit within ``timeout``; how many went out (at most 100)."""
    sent = 0

    async def publish() -> None:
        nonlocal sent
        for n in range(100):
            await bus.publish(Tick(sink="s", n=n), timeout=timeout)
            sent += 1

    with pytest.raises(edabus.PublishTimeout, match=r"Tick not sent: no credit from held/Held/"):
        await publish()
    return sent


async def test_a_publisher_out_of_credit_waits_then_times_out_and_resumes(router: str) -> None:
    """A stuck group withholds credit: publish waits, then raises PublishTimeout (not sent); it resumes after."""
    async with held_group(router) as (node, bus):
        sent = await publish_until_refused(bus, timeout=0.5)
        assert 10 <= sent < 100  # a window's worth went out before the wait
        Held.gate.set()
        for n in range(sent, sent + 50):
            await bus.publish(Tick(sink="s", n=n), timeout=10)
        sup = node.supervisor("Held")
        with anyio.fail_after(20):
            while Held.handled < sent + 50:  # noqa: ASYNC110 - another bus's progress
                await anyio.sleep(0.01)
        assert sup.statistics().received == sent + 50  # the timed-out message was never sent


def test_a_publisher_held_by_credit_goes_on_when_a_node_is_killed_or_joins(
    processes: Processes, router: str, tmp_path: Path
) -> None:
    """A flood held back by two nodes' credit: one is killed (-9), another joins; the publisher never hangs."""
    first, second = (NodeProcess(processes, router, tmp_path / f"{n}.log", target=FLOW, node_id=n) for n in "ab")
    for node in (first, second):
        node.wait_until_up("flow")
    n = 60_000

    async def run() -> tuple[dict[str, float], dict[str, int]]:
        # Ten keys of 1 ms actors (about 9,000/s at most): the flood lasts several seconds.
        args = ["--kind", "tick", "--sink", "k", "--keys", "10", "--count", str(n)]
        pub = processes.start(["tests/scripts/flood.py", "--connect", router, *args])
        async with edabus.connect(router) as bus:

            async def handled() -> dict[str, int]:
                status = await gather_status(bus, timeout=1.0)
                return {node.node: sum(g.handled for g in node.groups) for node in status.nodes if node.groups}

            with anyio.fail_after(30):
                while sum((await handled()).values()) < n // 4:  # noqa: ASYNC110 - other processes' progress
                    await anyio.sleep(0.05)
            assert pub.poll() is None  # still held back: the actors are slower than the publisher
            first.proc.kill()
            third = NodeProcess(processes, router, tmp_path / "c.log", target=FLOW, node_id="c")
            await anyio.to_thread.run_sync(third.wait_until_up, "flow")
            sent = await anyio.to_thread.run_sync(result_of, pub, 90)
            with anyio.fail_after(30):
                while sum((await handled()).values()) < n // 2:  # noqa: ASYNC110 - other processes' progress
                    await anyio.sleep(0.05)
            return sent, await handled()

    sent, final = anyio.run(run)
    print(f"\ncredit across a kill and a join: publisher {sent['elapsed']:.2f} s; handled {final}")  # noqa: T201
    assert final.get("c", 0) > 0  # the joiner took its share (6 of the 10 keys), and got credit for them


async def test_a_stranger_answering_credit_checkpoints_lifts_no_flow_control(
    router: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raw queryable on ``@edabus/credit/**`` that answers every checkpoint at once frees no credit.

    Only the session of the group's proven member may answer its checkpoints: a
    publisher that took the stranger's word would flood a stuck group. (Zenoh's
    default consolidation holds the stranger's reply until the checkpoint's
    timeout, shortened here, and then hands it over as the answer.)
    """
    monkeypatch.setattr(edabus._transport._credit, "CHECKPOINT_TIMEOUT", 0.5)
    answered = 0

    def answer(query: zenoh.Query) -> None:  # the stranger: "all taken in"
        nonlocal answered
        answered += 1
        query.reply(query.key_expr, b"")

    with zenoh.open(client_config(router)) as stranger:
        stranger.declare_queryable("@edabus/credit/**", answer)
        async with held_group(router) as (_, bus):
            sent = await publish_until_refused(bus, timeout=3)
            assert 10 <= sent <= 30  # what the node itself frees (15-20 here); the stranger would free all 100
            assert answered > 0  # the stranger did answer
            Held.gate.set()
