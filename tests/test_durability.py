"""Durable state and at-least-once delivery in one process: real Zenoh, real SQLite.

The multi-process scenarios (kill -9 under a reliable stream, a router restart,
PostgreSQL) are in tests/cluster/test_durability.py.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import msgspec
import pytest
import zenoh
from structlog.testing import capture_logs

import edabus
from edabus._cluster._membership import rendezvous_owner
from edabus._durability._persistence import Durability
from edabus._model._wire import Meta, encode_meta
from tests.conftest import eventually


class Put(edabus.Message, key="vault/{account}/put", reliable=True):
    account: str
    amount: int
    fail: bool = False
    grow: int = 0


class Peek(edabus.Message, key="vault/{account}/peek"):
    account: str


class Holdings(msgspec.Struct):
    balance: int = 0
    puts: int = 0
    notes: list[str] = []


class Vault(edabus.Actor):
    state: Holdings

    def __init__(self, account: str) -> None:
        self.account = account

    @edabus.handler
    async def put(self, msg: Put) -> None:
        self.state.balance += msg.amount
        self.state.puts += 1
        self.state.notes.extend("x" * 100 for _ in range(msg.grow))
        if msg.fail:
            raise ValueError("refused by the handler")

    @edabus.handler
    async def peek(self, msg: Peek) -> Holdings:
        return self.state


class Needy(msgspec.Struct):
    required: int


class NeedyVault(edabus.Actor):
    state: Needy

    @edabus.handler
    async def put(self, msg: Put) -> None: ...


def vault_app(store: edabus.StateStore, **options: object) -> edabus.App:
    app = edabus.App("vault", store=store)
    app.keyed(Vault, key="account", **options)  # type: ignore[arg-type]
    return app


@pytest.fixture
def sqlite(tmp_path: Path) -> edabus.SQLiteStore:
    return edabus.SQLiteStore(tmp_path / "state.db")


@pytest.fixture
async def bus() -> AsyncIterator[edabus.Bus]:
    async with edabus.connect(ack_timeout=2.0) as opened:
        yield opened


async def peek(bus: edabus.Bus, account: str) -> Holdings:
    return await bus.request(Peek(account=account), reply_type=Holdings)


async def test_state_survives_passivation_and_a_node_restart(bus: edabus.Bus, sqlite: edabus.SQLiteStore) -> None:
    """Balances come back from SQLite after idle passivation and in a new node."""
    app = vault_app(sqlite, idle_timeout=0.05)
    async with edabus.Node(bus, [app]) as node:
        for i in range(30):
            await bus.publish(Put(account=f"a{i % 3}", amount=i))
        await bus.wait_delivered(timeout=10)
        sup = node.supervisor("Vault")
        await eventually(lambda: sup.statistics().passivated >= 3)
        assert [(await peek(bus, f"a{k}")).balance for k in range(3)] == [135, 145, 155]
    async with edabus.Node(bus, [vault_app(sqlite)]):
        assert (await peek(bus, "a1")) == Holdings(balance=145, puts=10)


def raw_put(session: zenoh.Session, account: str, *, sender: str, seq: int, base: int) -> str:
    """A reliable put as any process may send it: a query with seq and base; 'ack' or the error type."""
    meta = encode_meta(Meta(type="Put", id=seq, sender=sender, seq=seq, base=base))
    payload = msgspec.msgpack.encode({"amount": 1})
    for reply in session.get(f"vault/{account}/put", payload=payload, attachment=meta, timeout=5.0):
        if reply.ok is not None:
            return "ack"
        return str(msgspec.msgpack.decode(reply.err.payload.to_bytes())["type"])  # type: ignore[union-attr]
    return "none"


async def test_the_same_message_id_twice_is_applied_once(bus: edabus.Bus) -> None:
    """(sender, seq) delivered twice: both acknowledged, applied once; one ahead of its turn is refused."""
    async with edabus.Node(bus, [vault_app(edabus.MemoryStore())]) as node:
        answers = [
            await anyio.to_thread.run_sync(
                functools.partial(raw_put, bus._session, "d", sender="outside", seq=seq, base=base)
            )
            for seq, base in ((1, 1), (1, 1), (3, 3), (5, 4), (2, 2))
        ]
        # 1 again is a duplicate; base 3 says 2 was acknowledged; 5 comes before 4; 2 is old.
        assert answers == ["ack", "ack", "ack", "OutOfOrder", "ack"]
        assert await peek(bus, "d") == Holdings(balance=2, puts=2)
        durability = node.supervisor("Vault").hook(Durability)
        assert durability is not None
        assert durability.duplicates == 2


async def test_an_oversized_state_is_refused_and_nothing_is_truncated(bus: edabus.Bus) -> None:
    """A change that makes the state too large fails with StateTooLarge; the saved state stays."""
    store = edabus.MemoryStore()
    async with edabus.Node(bus, [vault_app(store, max_state_size=2_000)]):
        await bus.publish(Put(account="big", amount=5))
        await bus.wait_delivered(timeout=5)
        with capture_logs() as logs:
            await bus.publish(Put(account="big", amount=7, grow=50))  # about 5 KB of notes
            await bus.wait_delivered(timeout=5)  # answered: refused, which is final
        assert bus.outbox.failed == 1
        assert bus.outbox.acked == 1
        assert await peek(bus, "big") == Holdings(balance=5, puts=1)
    refused = [e for e in logs if e["event"] == "actor.state_not_saved"]
    assert refused
    assert "StateTooLarge" in refused[0]["error"]
    assert "over max_state_size 2,000" in refused[0]["error"]


async def test_a_stale_writer_is_refused_and_stopped_then_reloads(bus: edabus.Bus, sqlite: edabus.SQLiteStore) -> None:
    """Another activation writes the row behind this one's back: its save fails, it stops, the message is resent."""
    async with edabus.Node(bus, [vault_app(sqlite)]) as node:
        await bus.publish(Put(account="s", amount=1))
        await bus.wait_delivered(timeout=5)
        row = await sqlite.load("vault/Vault", "s")
        assert row is not None
        other = Holdings(balance=100, puts=1)  # what an overlapping activation elsewhere saved
        record = msgspec.msgpack.encode([other, {}])  # a row: [state, {sender|key: last seq}]
        await sqlite.save("vault/Vault", "s", record, row.version)
        with capture_logs() as logs:
            await bus.publish(Put(account="s", amount=10))
            await bus.wait_delivered(timeout=5)
        assert await peek(bus, "s") == Holdings(balance=110, puts=2)
        assert node.supervisor("Vault").hook(Durability).stale == 1  # type: ignore[union-attr]
    events = [e["event"] for e in logs]
    assert "actor.state_not_saved" in events
    assert any(e.get("reason") == "StaleStateError" for e in logs if e["event"] == "actor.stopped")


async def test_reliable_messages_wait_for_an_owner_and_arrive_once_in_order(
    bus: edabus.Bus, sqlite: edabus.SQLiteStore
) -> None:
    """Published with no node up, kept and resent; once a node starts, each is applied once, in order."""
    for i in range(20):
        await bus.publish(Put(account="late", amount=i))
    assert bus.outbox.unacked == 20
    order: list[int] = []

    class Recorder(Vault):
        @edabus.handler
        async def put(self, msg: Put) -> None:
            order.append(msg.amount)
            await super().put(msg)

    app = edabus.App("vault", store=sqlite)
    app.keyed(Recorder, key="account", name="Vault")
    async with edabus.Node(bus, [app]):
        await bus.wait_delivered(timeout=10)
        assert order == list(range(20))
        assert await peek(bus, "late") == Holdings(balance=190, puts=20)
    assert bus.outbox.resent > 0


async def test_a_handler_error_is_final_and_not_resent(bus: edabus.Bus) -> None:
    """A reliable message whose handler raises is answered with the error once, not sent again."""
    async with edabus.Node(bus, [vault_app(edabus.MemoryStore())]) as node:
        await bus.publish(Put(account="f", amount=1, fail=True))
        await bus.publish(Put(account="f", amount=2))
        await eventually(lambda: bus.outbox.unacked == 0)
        stats = node.supervisor("Vault").statistics()
    assert (bus.outbox.acked, bus.outbox.failed, bus.outbox.resent) == (1, 1, 0)
    assert (stats.received, stats.failed, stats.dead_letters) == (2, 1, 1)


async def test_save_every_saves_less_often_and_still_acknowledges(bus: edabus.Bus) -> None:
    """save_every=50: far fewer saves than messages; every message acknowledged; nothing lost."""
    store = edabus.MemoryStore()
    async with edabus.Node(bus, [vault_app(store, save_every=50)]) as node:
        for _ in range(500):
            await bus.publish(Put(account="b", amount=1))
        await bus.wait_delivered(timeout=10)
        durability = node.supervisor("Vault").hook(Durability)
        assert durability is not None
        assert durability.saves < 500
        assert await peek(bus, "b") == Holdings(balance=500, puts=500)
    assert store.rows["vault/Vault", "b"].version == durability.saves


def test_declaring_state_needs_a_store_and_a_key() -> None:
    """Mistakes in declaring persistent state fail when the group is declared, naming the problem."""
    with pytest.raises(edabus.DefinitionError, match="no store="):
        edabus.App("x").keyed(Vault, key="account")
    with pytest.raises(edabus.DefinitionError, match="needs keyed or singleton"):
        edabus.App("x", store=edabus.MemoryStore()).pool(Vault, size=2)

    with pytest.raises(edabus.DefinitionError, match="must have a default for every field"):
        edabus.App("x", store=edabus.MemoryStore()).keyed(NeedyVault, key="account")
    with pytest.raises(edabus.DefinitionError, match="reliable=True needs a key="):

        class Keyless(edabus.Message, reliable=True):
            n: int


async def test_a_forgotten_lane_is_not_taken_for_an_old_one(bus: edabus.Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender forgets idle keys beyond a bound; a forgotten key's next message is still applied."""
    monkeypatch.setattr("edabus._transport._outbox._LANES_KEPT", 2)
    async with edabus.Node(bus, [vault_app(edabus.MemoryStore())]):
        for account in ("a", "b", "c", "a", "b", "c", "a"):
            await bus.publish(Put(account=account, amount=1))
            await bus.wait_delivered(timeout=5)
        assert [(await peek(bus, account)).balance for account in "abc"] == [3, 2, 2]


class Held(edabus.Message, key="vault/{account}/held", reliable=True):
    account: str
    amount: int


release = anyio.Event()


class SlowVault(Vault):
    """A vault whose `Held` deposits wait for the test's release before they finish."""

    @edabus.handler
    async def held(self, msg: Held) -> None:
        self.state.balance += msg.amount
        await release.wait()


async def test_overlapping_activations_in_a_rebalance_the_stale_writer_is_refused(router: str, tmp_path: Path) -> None:
    """A key moves to a joining node while its old activation is mid-handler: the old one's save is refused.

    Node a holds the key's actor inside a handler; node b joins and now owns the key;
    a deposit reaches b, which activates the key and saves. When a's handler ends, its
    save finds the version moved: a's instance is stopped, and its message is resent to b.
    """
    global release  # noqa: PLW0603 - a fresh event per run (the test runs on two backends)
    release = anyio.Event()
    key = next(f"k{i}" for i in range(100) if rendezvous_owner(("a", "b"), f"k{i}") == "b")
    db = tmp_path / "state.db"

    def app() -> edabus.App:
        made = edabus.App("vault", store=edabus.SQLiteStore(db))
        made.keyed(SlowVault, key="account", name="Vault")
        return made

    with capture_logs() as logs:
        async with (
            edabus.connect(router, ack_timeout=2.0) as client,
            edabus.connect(router, node_id="a") as bus_a,
            edabus.Node(bus_a, [app()]) as node_a,
        ):
            await client.wait_for_group("vault", "Vault")
            await client.publish(Held(account=key, amount=1))  # a takes it and waits inside the handler
            sup_a = node_a.supervisor("Vault")
            await eventually(lambda: sup_a.live_keys() == [key])
            async with edabus.connect(router, node_id="b") as bus_b, edabus.Node(bus_b, [app()]) as node_b:
                await eventually(lambda: set(node_a.memberships[sup_a].members) == {"a", "b"})
                await client.publish(Put(account=key, amount=10))  # now b's: b activates the key too
                durability_b = node_b.supervisor("Vault").hook(Durability)
                assert durability_b is not None
                # b has saved the key's new state (not only received the deposit): a's save comes after.
                await eventually(lambda: durability_b.saves >= 1)
                release.set()  # a's handler ends; its save must be refused
                await client.wait_delivered(timeout=10)
                assert await peek(client, key) == Holdings(balance=11, puts=1)
                durability_a = sup_a.hook(Durability)
                assert durability_a is not None
                assert durability_a.stale == 1
    refused = [e for e in logs if e["event"] == "actor.state_not_saved"]
    assert [e["group"] for e in refused] == ["Vault"]
    assert "StaleStateError" in refused[0]["error"]


async def test_a_reliable_message_on_an_explicit_key_is_kept_until_acknowledged(
    bus: edabus.Bus, sqlite: edabus.SQLiteStore
) -> None:
    """``publish(msg, key=...)`` of a reliable type goes through the outbox too: kept, then applied once."""
    await bus.publish(Put(account="explicit", amount=7), key="vault/explicit/put")
    assert bus.outbox.unacked == 1  # no node yet: kept
    async with edabus.Node(bus, [vault_app(sqlite)]):
        await bus.wait_delivered(timeout=10)
        assert await peek(bus, "explicit") == Holdings(balance=7, puts=1)


class Forward(edabus.Message, key="relay/{account}/forward"):
    account: str
    amount: int


class Relay(edabus.Actor):
    def __init__(self, account: str) -> None:
        self.account = account

    @edabus.handler
    async def forward(self, msg: Forward) -> None:
        await self.publish(Put(account=msg.account, amount=msg.amount))


async def test_a_reliable_message_published_by_a_handler_is_kept_until_acknowledged(
    router: str, sqlite: edabus.SQLiteStore
) -> None:
    """An actor's ``self.publish`` of a reliable type is at least once too: sent before its group is up, kept."""
    relay = edabus.App("relay")
    relay.keyed(Relay, key="account")
    async with edabus.connect(router, ack_timeout=2.0) as bus, edabus.Node(bus, [relay]) as node:
        await bus.publish(Forward(account="relayed", amount=9))
        sup = node.supervisor("Relay")
        await eventually(lambda: sup.statistics().handled == 1)
        assert bus.outbox.unacked == 1  # no vault node yet: kept, not lost
        async with edabus.connect(router) as other, edabus.Node(other, [vault_app(sqlite)]):
            await bus.wait_delivered(timeout=10)
            assert await peek(bus, "relayed") == Holdings(balance=9, puts=1)
