"""The node's remote intake: one channel per group, drained in batches, in wire order with requests."""

from __future__ import annotations

import time

import anyio

import edabus
from edabus._transport._ingest import covering_pattern
from tests.conftest import eventually


class Credit(edabus.Message, key="ingest/acct/{account}/credit"):
    account: str
    amount: int


class Debit(edabus.Message, key="ingest/acct/{account}/debit"):
    account: str
    amount: int


class IngestTotal(edabus.Message, key="ingest/acct/{account}/total"):
    account: str


class Other(edabus.Message, key="ingest/acct/{account}/other"):
    """Under the group's cover, but handled by no type of the group."""

    account: str


class Ledger(edabus.Actor):
    def __init__(self, account: str) -> None:
        self.account = account
        self.trail: list[int] = []

    @edabus.handler
    async def credit(self, msg: Credit) -> None:
        time.sleep(0.0001)  # noqa: ASYNC251 - slower than the stream: the inbox fills, the channel backs up
        self.trail.append(msg.amount)

    @edabus.handler
    async def debit(self, msg: Debit) -> None:
        self.trail.append(-msg.amount)

    @edabus.handler
    async def total(self, msg: IngestTotal) -> list[int]:
        return self.trail


def test_the_cover_of_a_groups_patterns() -> None:
    """Chunk by chunk; none when lengths or first chunks differ (it would take too much)."""
    assert covering_pattern(["a/*/x", "a/*/y"]) == "a/*/*"
    assert covering_pattern(["a/b/*/x"]) == "a/b/*/x"
    assert covering_pattern(["a/*/x", "a/*/x/y"]) is None
    assert covering_pattern(["a/x", "b/x"]) is None


async def test_remote_puts_of_several_types_then_a_request_arrive_in_wire_order(router: str) -> None:
    """From another session through a router: 3,000 credits and debits interleaved, then a request.

    The request sees every put before it, in the order sent, across both types.
    """
    app = edabus.App("ingest")
    app.keyed(Ledger, key="account")
    sent = [(i % 7) + 1 if i % 3 else -((i % 5) + 1) for i in range(3_000)]
    async with (
        edabus.connect(router) as node_bus,
        edabus.Node(node_bus, [app]) as node,
        edabus.connect(router) as client,
    ):
        await client.wait_for_group("ingest")
        for amount in sent:
            await client.publish(Other(account="a"))  # let pass: no type of the group takes it
            message = Credit(account="a", amount=amount) if amount > 0 else Debit(account="a", amount=-amount)
            await client.publish(message)
        with anyio.fail_after(10):
            trail = await client.request(IngestTotal(account="a"), reply_type=list[int])
        assert trail == sent
        plain, _routed = node._intakes[node.supervisor("Ledger")].lanes
        assert plain.passed == len(sent)


async def test_a_parked_puller_is_woken_by_the_next_remote_put(router: str) -> None:
    """With no puts for a while the puller parks; a put from another process wakes it by its lane's bell.

    The parked puller's own re-check is set to a minute, so only a bell can bring
    each put in before the deadline; three rounds show that the puller parks
    again after a bell woke it, and a burst as well as a single put wakes it.
    """
    app = edabus.App("ingest")
    app.keyed(Ledger, key="account")
    async with (
        edabus.connect(router) as node_bus,
        edabus.Node(node_bus, [app]) as node,
        edabus.connect(router) as client,
    ):
        puller = node._puller
        assert puller is not None
        puller.recheck_s = 60.0
        await client.wait_for_group("ingest")
        ledger = node.supervisor("Ledger")
        expected = 0
        for burst in (1, 50, 1):
            await eventually(lambda: puller.asleep)
            rings = puller.rings
            for _ in range(burst):
                await client.publish(Debit(account="b", amount=1))
            expected += burst
            await eventually(lambda: ledger.statistics().handled == expected)  # noqa: B023 - read at once
            assert puller.rings > rings
