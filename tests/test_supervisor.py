"""Supervisors: keyed, singleton and pool groups spawning actors on demand and serving them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import msgspec
import pytest
from structlog.testing import capture_logs

import edabus
from edabus._model._wire import DeadLetter
from tests.conftest import eventually


class Add(edabus.Message, key="sup/counter/{name}/add"):
    name: str
    n: int


class Get(edabus.Message, key="sup/counter/{name}/get"):
    name: str


class Total(edabus.Message):
    name: str
    total: int
    seen: list[int]


class Boom(edabus.Message, key="sup/counter/{name}/boom"):
    name: str


class Stall(edabus.Message, key="sup/counter/{name}/stall"):
    name: str


events: list[tuple[str, str]] = []
final_totals: dict[str, int] = {}
concurrency = {"now": 0, "max": 0}


class Counter(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.name = key
        self.total = 0
        self.seen: list[int] = []

    async def on_start(self) -> None:
        events.append(("start", self.name))

    async def on_stop(self) -> None:
        events.append(("stop", self.name))
        final_totals[self.name] = self.total

    @edabus.handler
    async def add(self, msg: Add) -> None:
        concurrency["now"] += 1
        concurrency["max"] = max(concurrency["max"], concurrency["now"])
        await anyio.lowlevel.checkpoint()  # yield: a second message must still wait for this one
        self.total += msg.n
        self.seen.append(msg.n)
        concurrency["now"] -= 1

    @edabus.handler
    async def get(self, msg: Get) -> Total:
        return Total(name=self.name, total=self.total, seen=self.seen)

    @edabus.handler
    def boom(self, msg: Boom) -> int:
        raise ValueError(f"boom on {self.name}")

    @edabus.handler
    async def stall(self, msg: Stall) -> None:
        await anyio.sleep_forever()


@pytest.fixture(autouse=True)
def _reset() -> None:
    events.clear()
    final_totals.clear()
    concurrency.update(now=0, max=0)


@asynccontextmanager
async def hosting(*apps: edabus.App) -> AsyncIterator[tuple[edabus.Bus, edabus.Node]]:
    async with edabus.connect() as bus, edabus.Node(bus, apps, stop_timeout=1.0) as node:
        yield bus, node


def counters_app() -> edabus.App:
    app = edabus.App("sup")
    app.keyed(Counter, key="name")
    return app


async def test_keyed_actors_spawn_on_demand_one_per_key() -> None:
    """Each new key value spawns its own actor, once; on_stop runs when the node stops."""
    with capture_logs() as logs:
        async with hosting(counters_app()) as (bus, node):
            for i in range(30):
                await bus.publish(Add(name=f"k{i % 3}", n=i))
            for name in ("k0", "k1", "k2"):
                total = await bus.request(Get(name=name), reply_type=Total)
                assert total.total == sum(i for i in range(30) if f"k{i % 3}" == name)
            assert node.supervisor("Counter").statistics().live_actors == 3
    spawned = [e for e in logs if e["event"] == "actor.spawned"]
    assert sorted(e["key"] for e in spawned) == ["k0", "k1", "k2"]
    assert all(e["group"] == "Counter" and e["app"] == "sup" for e in spawned)
    keys = ("k0", "k1", "k2")
    assert sorted(events) == sorted([("start", k) for k in keys] + [("stop", k) for k in keys])


async def test_one_message_at_a_time_in_arrival_order() -> None:
    """An actor handles its messages one at a time, in the order they were published."""
    async with hosting(counters_app()) as (bus, _):
        for i in range(500):
            await bus.publish(Add(name="solo", n=i))
        total = await bus.request(Get(name="solo"), reply_type=Total)
    assert total.seen == list(range(500))
    assert concurrency["max"] == 1


async def test_a_stopping_node_finishes_what_it_took_in() -> None:
    """Messages already taken in when the node stops are handled before on_stop runs."""
    async with hosting(counters_app()) as (bus, _):
        for i in range(300):
            await bus.publish(Add(name=f"s{i % 3}", n=1))
    assert final_totals == {"s0": 100, "s1": 100, "s2": 100}


async def test_actors_of_different_keys_run_concurrently() -> None:
    """A stalled actor does not hold up another key of the same group."""
    async with hosting(counters_app()) as (bus, _):
        await bus.publish(Stall(name="stuck"))
        await bus.publish(Add(name="free", n=5))
        with anyio.fail_after(5):
            total = await bus.request(Get(name="free"), reply_type=Total)
    assert total.total == 5


async def test_request_reply_and_remote_error() -> None:
    """A request returns the handler's value; a handler that raises gives RemoteError with its type."""
    async with hosting(counters_app()) as (bus, _):
        await bus.publish(Add(name="a", n=2))
        with pytest.raises(edabus.RemoteError, match="boom on a") as info:
            await bus.request(Boom(name="a"))
        assert info.value.type_name == "ValueError"
        reply = await bus.request(Get(name="a"))  # no reply_type: found from the reply's type name
    assert reply == Total(name="a", total=2, seen=[2])


async def test_request_to_a_stuck_handler_times_out() -> None:
    """A request whose handler never returns raises RequestTimeout after its timeout."""
    async with hosting(counters_app()) as (bus, _):
        with anyio.fail_after(5), pytest.raises(edabus.RequestTimeout):
            await bus.request(Stall(name="s"), timeout=0.3)


async def test_a_failing_handler_is_logged_and_the_actor_goes_on() -> None:
    """A handler exception is logged and dead-lettered; the same actor handles the next message."""
    with capture_logs() as logs:
        async with hosting(counters_app()) as (bus, node):
            await bus.publish(Add(name="f", n=1))
            await bus.publish(Boom(name="f"))
            await bus.publish(Add(name="f", n=2))
            total = await bus.request(Get(name="f"), reply_type=Total)
            stats = node.supervisor("Counter").statistics()
    assert total.total == 3
    assert stats.failed == 1
    assert stats.dead_letters == 1
    assert len([e for e in logs if e["event"] == "actor.spawned"]) == 1  # the same instance went on
    failed = [e for e in logs if e["event"] == "actor.failed"]
    assert failed[0]["key"] == "f"


async def test_garbage_payload_is_dead_lettered_and_the_actor_keeps_going() -> None:
    """A payload that does not decode is counted, logged and dead-lettered; good messages still flow."""
    with capture_logs() as logs:
        async with hosting(counters_app()) as (bus, node), bus.subscribe("@edabus/deadletter/**") as letters:
            await bus.publish(Add(name="g", n=1))
            bus._put("sup/counter/g/add", b"\xc1 not msgpack")
            bus._put("sup/counter/g/add", msgspec.msgpack.encode({"n": "many"}))
            await bus.publish(Add(name="g", n=2))
            total = await bus.request(Get(name="g"), reply_type=Total)
            with anyio.fail_after(5):
                dead = [msgspec.msgpack.decode((await anext(letters)).payload, type=DeadLetter) for _ in range(2)]
            stats = node.supervisor("Counter").statistics()
    assert total.total == 3
    assert stats.dead_letters == 2
    assert stats.received == 5
    assert {d.key for d in dead} == {"sup/counter/g/add"}
    assert {d.error_type for d in dead} == {"DecodeError"}
    assert dead[0].payload == b"\xc1 not msgpack"
    assert (dead[0].app, dead[0].group, dead[0].node) == ("sup", "Counter", bus.node_id)
    assert len([e for e in logs if e["event"] == "message.dead_lettered"]) == 2


async def test_a_deposit_published_before_a_request_is_handled_first() -> None:
    """Arrivals keep wire order across message types: publish then request sees the published effect."""
    async with hosting(counters_app()) as (bus, _):
        for i in range(50):
            await bus.publish(Add(name=f"o{i}", n=i))
            total = await bus.request(Get(name=f"o{i}"), reply_type=Total)
            assert total.total == i


class Note(edabus.Message, key="sup/notes/{topic}"):
    topic: str
    text: str


class CountNotes(edabus.Message, key="sup/notes-count"):
    pass


instances: list[object] = []


class Journal(edabus.Actor):
    def __init__(self) -> None:
        instances.append(self)
        self.count = 0

    @edabus.handler
    async def note(self, msg: Note) -> None:
        self.count += 1

    @edabus.handler
    async def how_many(self, msg: CountNotes) -> int:
        return self.count


async def test_singleton_is_one_instance_for_every_key() -> None:
    """A singleton group runs exactly one actor, whatever keys its messages arrive on."""
    instances.clear()
    app = edabus.App("notes")
    app.singleton(Journal)
    async with hosting(app) as (bus, node):
        for i in range(20):
            await bus.publish(Note(topic=f"t{i}", text="x"))
        assert await bus.request(CountNotes(), reply_type=int) == 20
        assert node.supervisor("Journal").statistics().live_actors == 1
    assert len(instances) == 1


class Job(edabus.Message, key="sup/jobs/{job}"):
    job: int


running = {"now": 0, "max": 0}
handled_jobs: list[int] = []


class Worker(edabus.Actor):
    @edabus.handler
    async def work(self, msg: Job) -> int:
        running["now"] += 1
        running["max"] = max(running["max"], running["now"])
        await anyio.sleep(0.01)  # simulated work, so that jobs overlap
        running["now"] -= 1
        handled_jobs.append(msg.job)
        return msg.job * 2


async def test_pool_spreads_work_over_at_most_size_workers() -> None:
    """A pool runs at most `size` workers, each job handled once, several at a time."""
    running.update(now=0, max=0)
    handled_jobs.clear()
    app = edabus.App("jobs")
    app.pool(Worker, size=4)
    async with hosting(app) as (bus, node):
        for job in range(40):
            await bus.publish(Job(job=job))
        await eventually(lambda: len(handled_jobs) == 40)
        stats = node.supervisor("Worker").statistics()
        assert await bus.request(Job(job=100), reply_type=int) == 200
    assert sorted(handled_jobs) == [*range(40), 100]
    assert running["max"] == 4
    assert stats.live_actors == 4


class Relay(edabus.Message, key="sup/relay/{name}"):
    name: str
    n: int


class Forwarder(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.key = key

    @edabus.handler
    async def relay(self, msg: Relay) -> int:
        await self.publish(Add(name=msg.name, n=msg.n))
        total = await self.request(Get(name=msg.name), reply_type=Total)
        return int(total.total)


async def test_an_actor_publishes_and_requests_without_references() -> None:
    """Inside a handler an actor publishes to and requests from another group by message alone."""
    app = counters_app()
    app.keyed(Forwarder, key="name")
    async with hosting(app) as (bus, _):
        assert await bus.request(Relay(name="r", n=4), reply_type=int) == 4
        assert await bus.request(Relay(name="r", n=5), reply_type=int) == 9


async def test_an_actor_is_a_plain_class_without_a_bus() -> None:
    """Handlers are ordinary methods: call them in a unit test; the bus is refused clearly."""
    counter = Counter("unit")
    await counter.add(Add(name="unit", n=3))
    assert (await counter.get(Get(name="unit"))).total == 3
    with pytest.raises(edabus.NotAttachedError, match="Counter is not running"):
        await counter.publish(Add(name="x", n=1))
