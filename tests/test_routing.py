"""Publisher-side routing: an edabus publisher sends each message to its owner's node alone.

Three nodes and the publishers are sessions of this process, each a client of a
router subprocess, so every message crosses Zenoh as between hosts. What each
node heard is read from its group's counters: ``received`` counts every arrival,
``not_owned`` the ones it let pass, ``forwarded`` the routed ones it passed on.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import anyio
import msgspec
import pytest
import zenoh

import edabus
from edabus._cluster._membership import rendezvous_owner
from edabus._cluster._route import MAX_HOPS
from edabus._model._wire import DeadLetter, Meta, dead_letter_key, encode_meta, route_prefix
from tests.conftest import eventually

NODES = ("r1", "r2", "r3")
KEYS = 60


class Hit(edabus.Message, key="routing/acct/{name}/hit"):
    name: str
    n: int


class Tally(edabus.Actor):
    """Records, per key, which node handled each ``n``, in handling order."""

    seen: ClassVar[dict[str, list[tuple[str, int]]]] = defaultdict(list)

    def __init__(self, name: str) -> None:
        self.name = name

    @edabus.handler
    async def hit(self, msg: Hit) -> None:
        Tally.seen[msg.name].append((self.context.node_id, msg.n))


class Echo(edabus.Actor):
    """A second group that takes the same messages (pub/sub fan-out)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @edabus.handler
    async def hit(self, msg: Hit) -> None:
        pass


def tally_app(*, echo: bool = False) -> edabus.App:
    app = edabus.App("routing")
    app.keyed(Tally, key="name")
    if echo:
        app.keyed(Echo, key="name")
    return app


@pytest.fixture
def anyio_backend() -> str:
    """One backend: what is under test is the routing between sessions."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_tally() -> None:
    Tally.seen.clear()


@contextlib.asynccontextmanager
async def cluster(endpoint: str, app: edabus.App, nodes: Sequence[str] = NODES) -> AsyncIterator[list[edabus.Node]]:
    """``nodes`` nodes hosting ``app`` on the router, returned once each sees all of them in every group."""
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for node_id in nodes:
            bus = await stack.enter_async_context(edabus.connect(endpoint, node_id=node_id))
            started.append(await stack.enter_async_context(edabus.Node(bus, [app])))
        await eventually(lambda: all(len(m.members) == len(nodes) for n in started for m in n.memberships.values()))
        yield started


def counters(nodes: Sequence[edabus.Node], group: str = "Tally") -> dict[str, edabus.SupervisorStatistics]:
    return {node.node_id: node.supervisor(group).statistics() for node in nodes}


def handled_total(nodes: Sequence[edabus.Node], group: str = "Tally") -> int:
    return sum(s.handled for s in counters(nodes, group).values())


async def test_each_node_hears_only_the_messages_it_owns_in_order(router: str) -> None:
    """3,000 messages over 60 keys to three nodes: each heard its own only, each key in order on its owner."""
    n = 3_000
    async with cluster(router, tally_app()) as nodes, edabus.connect(router) as publisher:
        assert publisher._router.plan(Hit) is not None  # it knew the group's members before its first publish
        for i in range(n):
            await publisher.publish(Hit(name=f"k{i % KEYS}", n=i))
        await eventually(lambda: handled_total(nodes) == n)
        stats = counters(nodes)
    for node, s in stats.items():
        assert (s.received, s.not_owned, s.forwarded) == (s.handled, 0, 0), node
    for name, seen in Tally.seen.items():
        assert {node for node, _ in seen} == {rendezvous_owner(NODES, name)}
        assert [i for _, i in seen] == list(range(int(name[1:]), n, KEYS))


async def test_a_raw_publisher_on_the_plain_key_still_reaches_each_owner_once(router: str) -> None:
    """A raw zenoh put on the plain key goes to every node; the owner handles it, the others let it pass."""
    config = zenoh.Config()
    config.insert_json5("mode", '"client"')
    config.insert_json5("connect/endpoints", json.dumps([router]))
    config.insert_json5("scouting/multicast/enabled", "false")
    async with cluster(router, tally_app()) as nodes:
        with zenoh.open(config) as raw:
            for i in range(KEYS):
                payload = msgspec.msgpack.encode({"name": f"k{i}", "n": i})
                raw.put(f"routing/acct/k{i}/hit", payload, congestion_control=zenoh.CongestionControl.BLOCK)
            await eventually(lambda: handled_total(nodes) == KEYS)
        stats = counters(nodes)
    assert [s.received for s in stats.values()] == [KEYS] * 3
    assert sum(s.not_owned for s in stats.values()) == 2 * KEYS
    assert {name: [node for node, _ in seen] for name, seen in Tally.seen.items()} == {
        f"k{i}": [rendezvous_owner(NODES, f"k{i}")] for i in range(KEYS)
    }


async def test_a_message_routed_to_a_node_that_does_not_own_it_is_passed_on_to_the_owner(router: str) -> None:
    """A put on the wrong node's routed key (a lagging view) is handled once, by the owner, one hop later."""
    name = "k7"
    owner = rendezvous_owner(NODES, name)
    wrong = next(node for node in NODES if node != owner)
    async with cluster(router, tally_app()) as nodes, edabus.connect(router) as sender:
        await sender.publish_raw(f"{route_prefix('routing', 'Tally', wrong)}/routing/acct/{name}/hit", _hit(name, 1))
        await eventually(lambda: handled_total(nodes) == 1)
        stats = counters(nodes)
    assert Tally.seen == {name: [(owner, 1)]}
    assert (stats[wrong].forwarded, stats[wrong].handled) == (1, 0)
    assert (stats[owner].forwarded, stats[owner].handled) == (0, 1)


async def test_a_message_passed_on_too_often_is_dead_lettered_with_the_reason(router: str) -> None:
    """Views that keep disagreeing cannot bounce a message for ever: after MAX_HOPS it is a dead letter."""
    name = "k7"
    wrong = next(node for node in NODES if node != rendezvous_owner(NODES, name))
    async with (
        cluster(router, tally_app()) as nodes,
        edabus.connect(router) as sender,
        sender.subscribe(dead_letter_key("routing", "Tally")) as letters,
    ):
        await sender.wait_for_group("routing", "Tally")
        attachment = encode_meta(Meta(type="Hit", id=1, sender="outsider", hops=MAX_HOPS))
        sender._put(f"{route_prefix('routing', 'Tally', wrong)}/routing/acct/{name}/hit", _hit(name, 1), attachment)
        with anyio.fail_after(10):
            letter = msgspec.msgpack.decode((await anext(aiter(letters))).payload, type=DeadLetter)
        stats = counters(nodes)
    assert (letter.error_type, letter.node, letter.key) == ("NoRouteError", wrong, f"routing/acct/{name}/hit")
    assert "disagree on its owner" in letter.error
    assert sum(s.handled for s in stats.values()) == 0
    assert Tally.seen == {}


async def test_two_groups_each_get_their_copy_and_a_subscriber_hears_each_message_once(router: str) -> None:
    """Fan-out holds: both groups handle every message; `Bus.subscribe` on the plain key hears each once."""
    n = 300
    async with (
        cluster(router, tally_app(echo=True)) as nodes,
        edabus.connect(router) as publisher,
        edabus.connect(router) as watcher,
        watcher.subscribe("routing/acct/*/hit") as heard,
    ):
        await eventually(lambda: (plan := publisher._router.plan(Hit)) is not None and len(plan) == 2)
        await watcher.query("@edabus/node/*/*/barrier")  # answered after the router knew our subscribers
        for i in range(n):
            await publisher.publish(Hit(name=f"k{i % KEYS}", n=i))
        numbers = []
        with anyio.fail_after(10):
            async for envelope in heard:
                numbers.append(msgspec.msgpack.decode(envelope.payload, type=Hit).n)
                if len(numbers) == n:
                    break
        await eventually(lambda: handled_total(nodes, "Tally") == handled_total(nodes, "Echo") == n)
        echo = counters(nodes, "Echo")
    assert sorted(numbers) == list(range(n))
    assert all(s.not_owned == 0 for s in echo.values())


async def test_without_routing_or_with_one_member_messages_go_on_the_plain_key(router: str) -> None:
    """``routing=False``, or a group on one node: the plain key, where any raw subscriber hears them."""
    async with cluster(router, tally_app(), nodes=NODES[:1]) as nodes, edabus.connect(router) as publisher:
        assert publisher._router.plan(Hit) is None  # one member: a plain put reaches it once already
    async with (
        cluster(router, tally_app()) as nodes,
        edabus.connect(router, routing=False) as publisher,
    ):
        assert publisher._router.plan(Hit) is None
        for i in range(KEYS):
            await publisher.publish(Hit(name=f"k{i}", n=i))
        await eventually(lambda: handled_total(nodes) == KEYS)
        stats = counters(nodes)
    assert [s.received for s in stats.values()] == [KEYS] * 3


async def test_a_publisher_follows_a_node_that_joins_and_one_that_leaves(router: str) -> None:
    """Members change while one publisher keeps its bus: every message lands once, each key in order."""
    async with cluster(router, tally_app(), nodes=NODES[:2]) as nodes, edabus.connect(router) as publisher:

        async def send(start: int, stop: int) -> None:
            for i in range(start, stop):
                await publisher.publish(Hit(name=f"k{i % KEYS}", n=i))
            await eventually(lambda: _handled() == stop)

        def members() -> int:
            plan = publisher._router.plan(Hit)
            return 0 if plan is None else len(plan[0].prefixes)  # one per member

        await send(0, 300)
        async with edabus.connect(router, node_id="r3") as bus, edabus.Node(bus, [tally_app()]) as third:
            await eventually(lambda: members() == 3)
            await eventually(lambda: all(len(m.members) == 3 for n in [*nodes, third] for m in n.memberships.values()))
            await send(300, 600)
            stats = third.supervisor("Tally").statistics()
            assert stats.received == stats.handled > 0  # it heard its share, and only that
        await eventually(lambda: members() == 2)
        await send(600, 900)
    assert sorted(i for seen in Tally.seen.values() for _, i in seen) == list(range(900))  # each once
    for name, seen in Tally.seen.items():
        assert [i for _, i in seen] == sorted(i for _, i in seen), name  # in order, across the changes


def _handled() -> int:
    return sum(len(seen) for seen in Tally.seen.values())


def _hit(name: str, n: int) -> bytes:
    return msgspec.msgpack.encode({"name": name, "n": n})
