"""An actor with stored state publishes its reliable messages only once what its handler changed is saved.

A handler that raises publishes none of them; nor does one whose save fails; and
the receiver of one always finds the sender's new state already in the store.
"""

from __future__ import annotations

import anyio
import msgspec
import pytest

import edabus
from tests.conftest import eventually


class Start(edabus.Message, key="held/{name}/start", reliable=True):
    name: str
    fail: bool = False


class Forwarded(edabus.Message, key="held/{name}/forwarded", reliable=True):
    name: str
    n: int


class Count(msgspec.Struct):
    n: int = 0


class StoredRow(msgspec.Struct, array_like=True):
    """A row as durability writes it: the state, then the duplicate window."""

    state: Count
    seen: dict[str, int] = {}


class FlakyStore(edabus.MemoryStore):
    """A memory store whose saves fail while ``failing`` is set, and take ``delay`` seconds (a slow database)."""

    failing = False
    delay = 0.0

    async def save(self, namespace: str, key: str, data: bytes, version: int) -> int:
        await anyio.sleep(self.delay)
        if self.failing:
            msg = "the database is down"
            raise OSError(msg)
        return await super().save(namespace, key, data, version)


class Source(edabus.Actor):
    state: Count

    def __init__(self, name: str) -> None:
        self.name = name

    @edabus.handler
    async def start(self, msg: Start) -> None:
        self.state.n += 1
        await self.publish(Forwarded(name=self.name, n=self.state.n))
        if msg.fail:
            raise ValueError("after publishing")


class Sink(edabus.Actor):
    """Notes each forwarded message, with the sender's state in the store as it arrives."""

    store: edabus.MemoryStore
    heard: list[tuple[int, int]]  # (the message's n, the stored n when it came)

    def __init__(self, name: str) -> None:
        self.name = name

    @edabus.handler
    async def forwarded(self, msg: Forwarded) -> None:
        row = await Sink.store.load("held/Source", msg.name)
        stored = msgspec.msgpack.decode(row.data, type=StoredRow).state.n if row is not None else 0
        Sink.heard.append((msg.n, stored))


@pytest.fixture
def store() -> FlakyStore:
    store = FlakyStore()
    Sink.store, Sink.heard = store, []
    return store


def chain(store: FlakyStore) -> edabus.App:
    app = edabus.App("held", store=store)
    app.keyed(Source, key="name")
    app.keyed(Sink, key="name")
    return app


async def test_a_published_message_follows_the_saved_state(store: FlakyStore) -> None:
    store.delay = 0.05  # a message sent before the save would arrive while it is under way
    async with edabus.connect() as bus, edabus.Node(bus, [chain(store)]):
        for _ in range(3):
            await bus.publish(Start(name="k"))
        await bus.wait_delivered(timeout=10)
        await eventually(lambda: len(Sink.heard) == 3)
    assert [n for n, _ in Sink.heard] == [1, 2, 3]
    assert all(stored >= n for n, stored in Sink.heard), Sink.heard  # saved before it was sent


async def test_a_handler_that_raises_publishes_nothing(store: FlakyStore) -> None:
    async with edabus.connect() as bus, edabus.Node(bus, [chain(store)]) as node:
        await bus.publish(Start(name="k", fail=True))
        await eventually(lambda: node.supervisor("Source").statistics().failed == 1)
        await bus.publish(Start(name="k"))  # on the same lane: what the first published would come first
        await bus.wait_delivered(timeout=10)
        await eventually(lambda: len(Sink.heard) >= 1)
    assert [n for n, _ in Sink.heard] == [2]  # the second handler's only (the state kept the first's change)


async def test_a_handler_whose_save_fails_publishes_nothing(store: FlakyStore) -> None:
    async with edabus.connect() as bus, edabus.Node(bus, [chain(store)]) as node:
        store.failing = True
        await bus.publish(Start(name="k"))
        await eventually(lambda: node.supervisor("Source").statistics().handled >= 1)
        store.failing = False  # the start is resent (its save failed); its handler runs again
        await bus.wait_delivered(timeout=10)
        await eventually(lambda: len(Sink.heard) >= 1)
    assert [n for n, _ in Sink.heard] == [1]  # once: from the run whose save went through
