"""The wire contract, seen from a raw zenoh session that runs no edabus code."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import anyio
import msgspec
import pytest
import zenoh

import edabus
from edabus._cluster._status import gather_status
from tests.conftest import eventually, free_port


class Credit(edabus.Message, key="wire/acct/{acct}/credit"):
    acct: str
    amount: int


class Ask(edabus.Message, key="wire/acct/{acct}/ask"):
    acct: str


class Owed(edabus.Message):
    acct: str
    amount: int


class Ledger(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.acct = key
        self.amount = 0

    @edabus.handler
    async def credit(self, msg: Credit) -> None:
        self.amount += msg.amount

    @edabus.handler
    async def ask(self, msg: Ask) -> Owed:
        if self.amount < 0:
            raise ValueError("negative")
        return Owed(acct=self.acct, amount=self.amount)


def raw_session(endpoint: str) -> zenoh.Session:
    """A plain zenoh client session, multicast off: what an outside tool would open."""
    cfg = zenoh.Config()
    cfg.insert_json5("mode", '"peer"')
    cfg.insert_json5("scouting/multicast/enabled", "false")
    cfg.insert_json5("listen/endpoints", "[]")
    cfg.insert_json5("connect/endpoints", json.dumps([endpoint]))
    return zenoh.open(cfg)


@pytest.fixture
def endpoint() -> str:
    return f"tcp/127.0.0.1:{free_port()}"


@pytest.fixture
async def node(endpoint: str) -> AsyncIterator[edabus.Node]:
    app = edabus.App("wire")
    app.keyed(Ledger, key="acct")
    async with edabus.connect(listen=endpoint) as bus, edabus.Node(bus, [app]) as hosted:
        yield hosted


@pytest.fixture
def raw(endpoint: str, node: edabus.Node) -> Iterator[zenoh.Session]:  # noqa: ARG001 - the node listens first
    session = raw_session(endpoint)
    try:
        yield session
    finally:
        session.close()


def wait_for_member(session: zenoh.Session) -> None:
    """The start-up barrier an outside publisher uses: a live member token of the group."""
    sub = session.liveliness().declare_subscriber(
        "@edabus/member/wire/**", zenoh.handlers.FifoChannel(16), history=True
    )
    try:
        while sub.handler.recv().kind != zenoh.SampleKind.PUT:
            pass
    finally:
        sub.undeclare()


async def test_a_bare_msgpack_map_from_raw_zenoh_reaches_the_actor(node: edabus.Node, raw: zenoh.Session) -> None:
    """A raw put of a msgpack map, with no attachment, is decoded by key and handled."""
    await anyio.to_thread.run_sync(wait_for_member, raw)
    for amount in (5, 7):
        raw.put(
            "wire/acct/r1/credit",
            msgspec.msgpack.encode({"acct": "r1", "amount": amount}),
            congestion_control=zenoh.CongestionControl.BLOCK,
        )
    raw.put(  # key fields may be left out: the key carries them
        "wire/acct/r1/credit",
        msgspec.msgpack.encode({"amount": 30}),
        congestion_control=zenoh.CongestionControl.BLOCK,
    )
    stats = node.supervisor("Ledger")
    await eventually(lambda: stats.statistics().handled == 3)
    owed = await node.bus.request(Ask(acct="r1"), reply_type=Owed)
    assert owed.amount == 42


async def test_a_raw_query_gets_a_msgpack_reply_naming_its_type(raw: zenoh.Session) -> None:
    """A raw session.get is a request: the reply payload is the msgpack map, the attachment names the type."""
    await anyio.to_thread.run_sync(wait_for_member, raw)

    def ask() -> list[zenoh.Reply]:
        return list(raw.get("wire/acct/q1/ask", payload=msgspec.msgpack.encode({}), timeout=5))

    replies = await anyio.to_thread.run_sync(ask)
    assert len(replies) == 1
    ok = replies[0].ok
    assert ok is not None
    assert msgspec.msgpack.decode(ok.payload.to_bytes()) == {"acct": "q1", "amount": 0}
    assert ok.attachment is not None
    assert msgspec.msgpack.decode(ok.attachment.to_bytes())["type"] == "Owed"


async def test_garbage_from_raw_zenoh_is_dead_lettered(node: edabus.Node, raw: zenoh.Session) -> None:
    """A raw put that does not decode is dead-lettered with its raw bytes; the actor goes on."""
    await anyio.to_thread.run_sync(wait_for_member, raw)
    async with node.bus.subscribe("@edabus/deadletter/wire/**") as letters:
        raw.put("wire/acct/g1/credit", b"\x93garbage", congestion_control=zenoh.CongestionControl.BLOCK)
        raw.put(
            "wire/acct/g1/credit",
            msgspec.msgpack.encode({"amount": 3}),
            congestion_control=zenoh.CongestionControl.BLOCK,
        )
        with anyio.fail_after(5):
            letter = msgspec.msgpack.decode((await anext(letters)).payload, type=edabus.DeadLetter)
    assert letter.payload == b"\x93garbage"
    assert letter.key == "wire/acct/g1/credit"
    # The good put travels the raw session's link, the request does not: wait for it to land.
    await eventually(lambda: node.supervisor("Ledger").statistics().handled == 1)
    owed = await node.bus.request(Ask(acct="g1"), reply_type=Owed)
    assert owed.amount == 3


async def test_statistics_are_readable_from_a_raw_session(node: edabus.Node, raw: zenoh.Session) -> None:
    """Any process can read a node's group statistics with a query, replied on the node's own key."""
    await anyio.to_thread.run_sync(wait_for_member, raw)
    await node.bus.publish(Credit(acct="s1", amount=2))
    await eventually(lambda: node.supervisor("Ledger").statistics().handled == 1)

    def ask() -> list[zenoh.Reply]:
        return list(raw.get("@edabus/node/*/*/stats", timeout=5))

    replies = [r for r in await anyio.to_thread.run_sync(ask) if r.ok is not None]
    assert len(replies) == 1
    ok = replies[0].ok
    assert ok is not None
    assert str(ok.key_expr) == f"@edabus/node/{node.apps[0].name}/{node.node_id}/stats"
    records = msgspec.msgpack.decode(ok.payload.to_bytes(), type=list[edabus.SupervisorStatistics])
    assert [(r.group, r.handled, r.node) for r in records] == [("Ledger", 1, node.node_id)]


async def test_a_node_of_two_apps_answers_for_each_app_on_its_own_keys(router: str) -> None:
    """Per-app tool keys: each app's catalog, statistics and live actors hold that app's groups only."""
    ledgers, tellers = edabus.App("ledgers"), edabus.App("tellers")
    ledgers.keyed(Ledger, key="acct")
    tellers.keyed(Ledger, key="acct", name="Teller")
    async with (
        edabus.connect(router) as node_bus,
        edabus.Node(node_bus, [ledgers, tellers]) as node,
        edabus.connect(router) as bus,
    ):
        await bus.wait_for_group("ledgers", timeout=10)
        await bus.wait_for_group("tellers", timeout=10)
        await bus.publish(Credit(acct="t1", amount=1))  # both apps' groups take it
        await eventually(lambda: all(sup.statistics().handled == 1 for sup in node.supervisors.values()))
        catalogs = {}
        for app in ("ledgers", "tellers"):
            (reply,) = await bus.query(f"@edabus/node/{app}/{node.node_id}/catalog")
            assert reply.ok is not None
            catalogs[app] = {
                (e["app"], e["group"]) for e in msgspec.msgpack.decode(reply.ok.payload.to_bytes())["entries"]
            }
        assert catalogs == {"ledgers": {("ledgers", "Ledger")}, "tellers": {("tellers", "Teller")}}
        status = await gather_status(bus, timeout=5.0, actors=True)
        (mine,) = [n for n in status.nodes if n.node == node.node_id]
        assert [(s.app, s.group) for s in mine.groups] == [("ledgers", "Ledger"), ("tellers", "Teller")]
        assert status.actors == {"ledgers/Ledger": {"t1": (node.node_id,)}, "tellers/Teller": {"t1": (node.node_id,)}}
