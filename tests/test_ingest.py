"""The node's remote intake: one channel per group, drained in batches, in wire order with requests."""

from __future__ import annotations

import time

import anyio

import edabus
from edabus._ingest import covering_pattern


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
