"""Supervision: restart policies, escalation, overflow, passivation and timers, on a real bus."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import msgspec
import pytest
from structlog.testing import capture_logs

import edabus
from edabus._runtime._policy import RestartWindow
from tests.conftest import eventually


class Op(edabus.Message, key="sv/{name}/op"):
    name: str
    n: int = 0
    fail: str = ""  # an exception class name to raise


class Peek(edabus.Message, key="sv/{name}/peek"):
    name: str


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


lifecycle: list[tuple[str, str, int]] = []
instance_ids = iter(range(1, 1_000_000))


class Worker(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.key = key
        self.id = next(instance_ids)
        self.seen: list[int] = []

    async def on_start(self) -> None:
        lifecycle.append(("start", self.key, self.id))

    async def on_stop(self) -> None:
        lifecycle.append(("stop", self.key, self.id))

    @edabus.handler
    async def op(self, msg: Op) -> None:
        if msg.fail == "Flaky":
            raise Flaky(f"flaky {msg.n}")
        if msg.fail == "Fatal":
            raise Fatal(f"fatal {msg.n}")
        if msg.fail == "ValueError":
            raise ValueError(f"bad {msg.n}")
        self.seen.append(msg.n)

    @edabus.handler
    async def peek(self, msg: Peek) -> list[int]:
        return [self.id, *self.seen]


@pytest.fixture(autouse=True)
def _reset() -> None:
    lifecycle.clear()


class FakeTime:
    """A clock and a sleep the test controls: sleeps are recorded and advance the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


@asynccontextmanager
async def hosting(app: edabus.App) -> AsyncIterator[tuple[edabus.Bus, edabus.Node]]:
    async with edabus.connect() as bus, edabus.Node(bus, [app], stop_timeout=2.0) as node:
        yield bus, node


def worker_app(**options: object) -> edabus.App:
    app = edabus.App("sv")
    app.keyed(Worker, key="name", **options)  # type: ignore[arg-type]
    return app


async def peek(bus: edabus.Bus, name: str) -> list[int]:
    return list(await bus.request(Peek(name=name), reply_type=list[int]))


# -- the policy on its own --------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    """Without jitter the waits are backoff, 2x, 4x ... capped at max_backoff."""
    policy = edabus.RestartPolicy(backoff=0.1, max_backoff=0.5, jitter=0.0)
    assert [policy.delay_for(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_jitter_stays_within_its_band() -> None:
    """With jitter j every wait lies within [1-j, 1+j] of the nominal wait."""
    policy = edabus.RestartPolicy(backoff=1.0, max_backoff=100.0, jitter=0.25, rng=random.Random(7))  # noqa: S311 - jitter, not crypto
    for attempt in range(1, 6):
        nominal = 2.0 ** (attempt - 1)
        assert 0.75 * nominal <= policy.delay_for(attempt) <= 1.25 * nominal


def test_the_window_slides_with_the_clock() -> None:
    """max_restarts within `within` seconds; older restarts fall out of the window."""
    fake = FakeTime()
    window = RestartWindow(edabus.RestartPolicy(max_restarts=2, within=10.0, clock=fake.clock))
    assert [window.attempt(), window.attempt(), window.attempt()] == [1, 2, None]
    fake.now = 10.5
    assert window.attempt() == 1


def test_the_most_specific_exception_class_decides() -> None:
    """Decide maps classes; the nearest class in the MRO wins, else the default."""
    policy = edabus.RestartPolicy(decide={Exception: "restart", ValueError: "stop"}, default="resume")
    assert policy.directive_for(UnicodeDecodeError("utf-8", b"", 0, 1, "x")) == "stop"
    assert policy.directive_for(KeyError("k")) == "restart"
    assert policy.directive_for(KeyboardInterrupt()) == "resume"


def test_a_bad_directive_fails_at_declaration() -> None:
    """A typo in a directive is a DefinitionError, not a surprise at run time."""
    with pytest.raises(edabus.DefinitionError, match="must be one of"):
        edabus.RestartPolicy(decide={ValueError: "retsart"})  # type: ignore[dict-item]


# -- the decisions, on a bus ------------------------------------------------------------------


async def test_resume_keeps_the_instance_and_dead_letters_the_message() -> None:
    """Resume (the default): the same instance goes on; the failed message is a dead letter."""
    async with hosting(worker_app()) as (bus, node), bus.subscribe("@edabus/deadletter/**") as letters:
        await bus.publish(Op(name="r", n=1))
        await bus.publish(Op(name="r", n=2, fail="ValueError"))
        await bus.publish(Op(name="r", n=3))
        seen = await peek(bus, "r")
        with anyio.fail_after(5):
            letter = msgspec.msgpack.decode((await anext(letters)).payload, type=edabus.DeadLetter)
        stats = node.supervisor("Worker").statistics()
    assert seen[1:] == [1, 3]
    assert [e for e in lifecycle if e[0] == "start"] == [("start", "r", seen[0])]
    assert (letter.error_type, letter.error, letter.key) == ("ValueError", "bad 2", "sv/r/op")
    assert (stats.failed, stats.restarts, stats.dead_letters) == (1, 0, 1)


async def test_restart_builds_a_new_instance_that_gets_the_queued_messages() -> None:
    """Restart: on_stop of the old, a new instance, and the messages behind the failure reach it."""
    fake = FakeTime()
    policy = edabus.RestartPolicy(
        decide={Flaky: "restart"}, backoff=0.5, jitter=0.0, clock=fake.clock, sleep=fake.sleep
    )
    with capture_logs() as logs:
        async with hosting(worker_app(restart=policy)) as (bus, node):
            await bus.publish(Op(name="q", n=1))
            await bus.publish(Op(name="q", n=2, fail="Flaky"))
            for n in (3, 4, 5):
                await bus.publish(Op(name="q", n=n))
            seen = await peek(bus, "q")
            stats = node.supervisor("Worker").statistics()
    first, second = [e[2] for e in lifecycle if e[0] == "start"][:2]
    assert seen == [second, 3, 4, 5]
    assert lifecycle.index(("stop", "q", first)) < lifecycle.index(("start", "q", second))
    assert fake.slept == [0.5]
    assert stats.restarts == 1
    restarted = [e for e in logs if e["event"] == "actor.restarted"]
    assert restarted[0]["attempt"] == 1
    assert restarted[0]["backoff"] == 0.5


async def test_backoff_grows_then_the_bound_escalates_and_other_keys_go_on() -> None:
    """Restarts back off 2x each time; the (max+1)th failure escalates; the node serves other keys."""
    fake = FakeTime()
    policy = edabus.RestartPolicy(
        default="restart", max_restarts=3, within=60.0, backoff=0.1, jitter=0.0, clock=fake.clock, sleep=fake.sleep
    )
    async with (
        hosting(worker_app(restart=policy)) as (bus, node),
        bus.subscribe("@edabus/escalation/**") as escalations,
        bus.subscribe("@edabus/deadletter/**") as letters,
    ):
        for n in range(4):
            await bus.publish(Op(name="bad", n=n, fail="Flaky"))
        with anyio.fail_after(5):
            event = msgspec.msgpack.decode((await anext(escalations)).payload, type=edabus.Escalation)
        with pytest.raises(edabus.RemoteError) as refused:
            await bus.request(Op(name="bad", n=9))
        await bus.publish(Op(name="good", n=1))
        assert (await peek(bus, "good"))[1:] == [1]
        with anyio.fail_after(5):
            dead = [msgspec.msgpack.decode((await anext(letters)).payload, type=edabus.DeadLetter) for _ in range(5)]
        stats = node.supervisor("Worker").statistics()
    assert fake.slept == pytest.approx([0.1, 0.2, 0.4])
    assert (event.key, event.error_type, event.restarts, event.app, event.group) == ("bad", "Flaky", 3, "sv", "Worker")
    assert refused.value.type_name == "ActorEscalated"
    assert [d.error_type for d in dead] == ["Flaky"] * 4 + ["ActorEscalated"]
    assert (stats.restarts, stats.escalations) == (3, 1)


async def test_stop_dead_letters_the_queue_and_the_key_comes_back_fresh() -> None:
    """Stop: the actor stops, what was queued behind it is dead-lettered, the next message re-activates."""
    policy = edabus.RestartPolicy(decide={Fatal: "stop"})
    async with hosting(worker_app(restart=policy)) as (bus, node):
        await bus.publish(Op(name="s", n=1, fail="Fatal"))
        await bus.publish(Op(name="s", n=2))  # queued behind the failure, or re-activates: either way not lost
        await eventually(lambda: node.supervisor("Worker").statistics().dead_letters >= 1)
        await bus.publish(Op(name="s", n=3))
        seen = await peek(bus, "s")
        stats = node.supervisor("Worker").statistics()
    starts = [e for e in lifecycle if e[0] == "start"]
    assert len(starts) == 2
    assert seen[0] == starts[1][2]
    assert 3 in seen
    assert stats.handled + stats.dead_letters == stats.received  # nothing vanished


async def test_a_failure_on_one_key_leaves_the_others_alone() -> None:
    """A handler failing on one key only: other keys see every message, the failure is dead-lettered."""
    async with hosting(worker_app()) as (bus, node):
        for n in range(30):
            await bus.publish(Op(name=f"k{n % 3}", n=n, fail="ValueError" if n % 3 == 0 else ""))
        for name in ("k1", "k2"):
            assert (await peek(bus, name))[1:] == [n for n in range(30) if f"k{n % 3}" == name]
        assert await peek(bus, "k0") != []
        stats = node.supervisor("Worker").statistics()
    assert stats.dead_letters == 10
    assert stats.failed == 10


# -- overflow ---------------------------------------------------------------------------------


class Slow(edabus.Message, key="ov/{name}/slow"):
    name: str
    n: int


gate: dict[str, anyio.Event] = {}
handled_slow: list[int] = []


class Gated(edabus.Actor):
    """Holds its first message until the test opens the gate, so its mailbox fills."""

    def __init__(self, key: str) -> None:
        self.key = key

    @edabus.handler
    async def slow(self, msg: Slow) -> None:
        if msg.n == 0:
            await gate["open"].wait()
        handled_slow.append(msg.n)


@pytest.mark.parametrize(("overflow", "survivors"), [("drop_newest", [0, 1, 2, 3]), ("drop_oldest", [0, 7, 8, 9])])
async def test_drop_policies_count_and_dead_letter_what_they_drop(overflow: str, survivors: list[int]) -> None:
    """With a full mailbox, drop_newest drops arrivals and drop_oldest the oldest queued; each drop is a dead letter."""
    gate["open"] = anyio.Event()
    handled_slow.clear()
    app = edabus.App("ov")
    app.keyed(Gated, key="name", mailbox_size=3, overflow=overflow)  # type: ignore[arg-type]
    async with hosting(app) as (bus, node):
        await bus.publish(Slow(name="g", n=0))
        sup = node.supervisor("Gated")
        await eventually(lambda: sup.statistics().mailbox_depth == 0 and sup.statistics().live_actors == 1)
        for n in range(1, 10):
            await bus.publish(Slow(name="g", n=n))
        await eventually(lambda: sup.statistics().received == 10)
        gate["open"].set()
        await eventually(lambda: len(handled_slow) == len(survivors))
        stats = sup.statistics()
    assert handled_slow == survivors
    assert stats.dropped == 10 - len(survivors) == stats.dead_letters
    assert stats.mailbox_peak == 3


async def test_backpressure_keeps_the_mailbox_at_its_bound_and_loses_nothing() -> None:
    """The default waits instead of dropping: every message handled, no mailbox above its size."""
    gate["open"] = anyio.Event()
    handled_slow.clear()
    app = edabus.App("ov")
    app.keyed(Gated, key="name", mailbox_size=3)
    async with hosting(app) as (bus, node), anyio.create_task_group() as tg:
        sup = node.supervisor("Gated")

        async def flood() -> None:
            for n in range(200):
                await bus.publish(Slow(name="b", n=n))

        tg.start_soon(flood)
        await eventually(lambda: sup.statistics().mailbox_depth == 3)
        gate["open"].set()
        await eventually(lambda: len(handled_slow) == 200)
        stats = sup.statistics()
    assert handled_slow == list(range(200))
    assert stats.mailbox_peak <= 3
    assert stats.dropped == 0


# -- passivation ------------------------------------------------------------------------------


async def test_idle_actors_are_passivated_and_come_back_on_the_next_message() -> None:
    """An actor idle past idle_timeout is stopped (on_stop runs); a new message re-activates it."""
    with capture_logs() as logs:
        async with hosting(worker_app(idle_timeout=0.2)) as (bus, node):
            await bus.publish(Op(name="idle", n=1))
            first = (await peek(bus, "idle"))[0]
            await eventually(lambda: ("stop", "idle", first) in lifecycle, timeout=5)
            assert node.supervisor("Worker").statistics().live_actors == 0
            await bus.publish(Op(name="idle", n=2))
            second = await peek(bus, "idle")
            stats = node.supervisor("Worker").statistics()
    assert second[0] != first
    assert second[1:] == [2]
    assert stats.passivated >= 1
    passivated = [e for e in logs if e["event"] == "actor.passivated"]
    assert passivated[0]["reason"] == "idle"
    assert passivated[0]["key"] == "idle"


counted: dict[str, int] = {}
live_now = {"n": 0, "max": 0}


class Tally(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.key = key
        live_now["n"] += 1
        live_now["max"] = max(live_now["max"], live_now["n"])

    async def on_stop(self) -> None:
        live_now["n"] -= 1

    @edabus.handler
    def op(self, msg: Op) -> None:
        counted[msg.name] = counted.get(msg.name, 0) + 1


@pytest.mark.timeout(120)
async def test_max_actors_bounds_live_actors_over_100k_keys() -> None:
    """100,000 distinct keys through max_actors=1000: never more than 1,000 live, every message handled."""
    counted.clear()
    live_now.update(n=0, max=0)
    app = edabus.App("many")
    app.keyed(Tally, key="name", max_actors=1000)
    with capture_logs():  # 200k lifecycle events: keep them off the terminal
        async with hosting(app) as (bus, node):
            for i in range(100_000):
                await bus.publish(Op(name=f"key{i}"))
            sup = node.supervisor("Tally")
            await eventually(lambda: sup.statistics().handled == 100_000, timeout=60)
            stats = sup.statistics()
    assert len(counted) == 100_000
    assert set(counted.values()) == {1}
    assert live_now["max"] <= 1000
    assert stats.live_actors <= 1000
    assert stats.passivated >= 99_000


# -- regressions found in review ----------------------------------------------------------------


class Boom(edabus.Message, key="rg/{name}/boom"):
    name: str
    n: int = 0


builds = {"n": 0}


class BrittleRestart(edabus.Actor):
    """Builds fine once; every rebuild (a restart) fails in __init__."""

    def __init__(self, key: str) -> None:
        builds["n"] += 1
        if builds["n"] > 1:
            raise RuntimeError("cannot rebuild")

    @edabus.handler
    async def boom(self, msg: Boom) -> int:
        if msg.n < 0:
            raise Flaky("fail")
        return builds["n"]


async def test_a_constructor_failing_during_a_restart_leaves_the_node_serving() -> None:
    """If the restarted instance cannot be built, its messages fail and the node keeps going."""
    builds["n"] = 0
    app = edabus.App("rg")
    app.keyed(BrittleRestart, key="name", restart=edabus.RestartPolicy(default="restart", backoff=0.0))
    async with hosting(app) as (bus, node):
        await bus.publish(Boom(name="b", n=-1))
        await eventually(lambda: builds["n"] == 2)
        with pytest.raises(edabus.RemoteError):  # the next build fails too, reported to the requester
            await bus.request(Boom(name="b", n=1))
        with pytest.raises(edabus.RemoteError):
            await bus.request(Boom(name="other", n=1))
        assert node.supervisor("BrittleRestart").statistics().restarts == 1


pool_stops: list[int] = []


class Member(edabus.Actor):
    async def on_stop(self) -> None:
        pool_stops.append(1)

    @edabus.handler
    async def boom(self, msg: Boom) -> None:
        await anyio.sleep(0.01)


async def test_pool_workers_get_on_stop_when_the_node_stops() -> None:
    """Every pool worker that started also stops (on_stop runs) at node stop."""
    pool_stops.clear()
    app = edabus.App("rg")
    app.pool(Member, size=3)
    async with hosting(app) as (bus, node):
        for n in range(12):
            await bus.publish(Boom(name="p", n=n))
        await eventually(lambda: node.supervisor("Member").statistics().handled == 12)
        workers = node.supervisor("Member").statistics().live_actors
    assert workers == 3
    assert len(pool_stops) == 3


failures_seen: list[tuple[str, str]] = []


class Hooked(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.key = key

    async def on_failure(self, exc: BaseException, msg: edabus.Message) -> None:
        failures_seen.append((type(exc).__name__, type(msg).__name__))

    @edabus.handler
    async def op(self, msg: Op) -> None:
        raise Fatal("always")


async def test_on_failure_sees_the_exception_and_the_message() -> None:
    """The on_failure hook runs with the exception and the message that raised it."""
    failures_seen.clear()
    app = edabus.App("hk")
    app.keyed(Hooked, key="name")
    async with hosting(app) as (bus, _):
        with pytest.raises(edabus.RemoteError, match="always"):
            await bus.request(Op(name="h"))
    assert failures_seen == [("Fatal", "Op")]


class Ask(edabus.Message, key="sv/{name}/ask"):
    name: str
    target: str = ""  # whom to ask in turn; "" answers at once


class Answer(edabus.Message):
    text: str


class Asker(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.name = key

    @edabus.handler
    async def ask(self, msg: Ask) -> Answer:
        if not msg.target:
            return Answer(text=f"{self.name} answers")
        try:
            reply = await self.request(Ask(name=msg.target), reply_type=Answer, timeout=30)
        except edabus.SelfRequestError as exc:
            return Answer(text=f"refused: {exc}")
        return Answer(text=f"{self.name} heard: {reply.text}")


class Loop(edabus.Actor):
    @edabus.handler
    async def ask(self, msg: Ask) -> Answer:
        try:
            await self.request(msg, reply_type=Answer, timeout=30)
        except edabus.SelfRequestError as exc:
            return Answer(text=f"refused: {exc}")
        return Answer(text="answered")


async def test_a_request_an_actor_sends_to_itself_fails_at_once(bus: edabus.Bus) -> None:
    """Its handler is busy with the current message: refused now, not after its 30 s timeout; others are asked."""
    app = edabus.App("sv")
    app.keyed(Asker, key="name")
    async with edabus.Node(bus, [app]):
        with anyio.fail_after(5):
            assert (await bus.request(Ask(name="a", target="b"), reply_type=Answer)).text == "a heard: b answers"
            reply = await bus.request(Ask(name="a", target="a"), reply_type=Answer)
    assert reply.text.startswith("refused: Asker('a') sent a request to itself (Ask)")


@pytest.mark.parametrize("kind", ["singleton", "pool"])
async def test_a_singleton_or_a_pool_of_one_requesting_itself_fails_at_once(bus: edabus.Bus, kind: str) -> None:
    """The one actor (or the one worker) that would answer is the one asking."""
    app = edabus.App("sv")
    if kind == "singleton":
        app.singleton(Loop)
    else:
        app.pool(Loop, size=1)
    async with edabus.Node(bus, [app]):
        with anyio.fail_after(5):
            reply = await bus.request(Ask(name="x"), reply_type=Answer)
    assert reply.text.startswith("refused: Loop")  # a pool's worker says which one: Loop(0)
    assert "sent a request to itself (Ask)" in reply.text
