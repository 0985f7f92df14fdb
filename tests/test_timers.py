"""Timers: messages an actor sends itself, once or every interval; they end with the actor."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

import edabus
from tests.conftest import eventually


class Start(edabus.Message, key="tm/{name}/start"):
    name: str
    every: float = 0.0
    once: float = 0.0


class Tick(edabus.Message, key="tm/{name}/tick"):
    name: str


class Cancel(edabus.Message, key="tm/{name}/cancel"):
    name: str


class Count(edabus.Message, key="tm/{name}/count"):
    name: str


ticks: dict[str, int] = {}


class Clock(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.key = key
        self.timer: edabus.Timer | None = None

    @edabus.handler
    async def start(self, msg: Start) -> None:
        if msg.every:
            self.timer = self.schedule_every(msg.every, Tick(name=self.key))
        else:
            self.timer = self.schedule_once(msg.once, Tick(name=self.key))

    @edabus.handler
    async def tick(self, msg: Tick) -> None:
        ticks[self.key] = ticks.get(self.key, 0) + 1

    @edabus.handler
    async def cancel(self, msg: Cancel) -> bool:
        assert self.timer is not None
        self.timer.cancel()
        return not self.timer.active

    @edabus.handler
    async def count(self, msg: Count) -> int:
        return ticks.get(self.key, 0)


@pytest.fixture(autouse=True)
def _reset() -> None:
    ticks.clear()


def clock_app(**options: object) -> edabus.App:
    app = edabus.App("tm")
    app.keyed(Clock, key="name", **options)  # type: ignore[arg-type]
    return app


async def test_a_one_shot_timer_fires_once() -> None:
    """schedule_once delivers its message once, through the mailbox."""
    async with edabus.connect() as bus, edabus.Node(bus, [clock_app()]):
        await bus.publish(Start(name="a", once=0.01))
        await eventually(lambda: ticks.get("a") == 1)
        with anyio.fail_after(0.2), pytest.raises(TimeoutError):
            await eventually(lambda: ticks.get("a", 0) > 1, timeout=0.15)
        assert await bus.request(Count(name="a"), reply_type=int) == 1


async def test_a_periodic_timer_repeats_until_cancelled() -> None:
    """schedule_every repeats; cancel stops it and the count stays put."""
    async with edabus.connect() as bus, edabus.Node(bus, [clock_app()]):
        await bus.publish(Start(name="p", every=0.01))
        await eventually(lambda: ticks.get("p", 0) >= 3)
        assert await bus.request(Cancel(name="p"), reply_type=bool) is True
        settled = await bus.request(Count(name="p"), reply_type=int)
        with pytest.raises(TimeoutError):
            await eventually(lambda: ticks.get("p", 0) > settled, timeout=0.1)


async def test_timers_end_with_the_actor() -> None:
    """A passivated actor's timers stop: no tick arrives after on_stop."""
    async with edabus.connect() as bus, edabus.Node(bus, [clock_app(idle_timeout=0.3)]) as node:
        await bus.publish(Start(name="x", every=1.0))  # first tick after 1 s; idle timeout at 0.3 s
        sup = node.supervisor("Clock")
        await eventually(lambda: sup.statistics().passivated == 1, timeout=5)
        with pytest.raises(TimeoutError):
            await eventually(lambda: "x" in ticks, timeout=1.2)
        assert sup.statistics().live_actors == 0


async def test_bad_timer_arguments_are_refused() -> None:
    """A negative delay or a zero interval is a ValueError, and so is a message the actor cannot handle."""

    class Other(edabus.Message, key="tm/other"):
        pass

    class Probe(edabus.Actor):
        def __init__(self, key: str) -> None:
            self.errors: list[str] = []

        @edabus.handler
        async def start(self, msg: Start) -> list[str]:
            attempts: list[Callable[[], edabus.Timer]] = [
                lambda: self.schedule_once(-1.0, Tick(name="q")),
                lambda: self.schedule_every(0.0, Tick(name="q")),
                lambda: self.schedule_once(0.0, Other()),
            ]
            for attempt in attempts:
                try:
                    attempt()
                except ValueError as exc:
                    self.errors.append(str(exc))
            return self.errors

        @edabus.handler
        async def tick(self, msg: Tick) -> None:
            pass

    app = edabus.App("tm2")
    app.keyed(Probe, key="name")
    async with edabus.connect() as bus, edabus.Node(bus, [app]):
        errors = await bus.request(Start(name="q"), reply_type=list[str])
    assert len(errors) == 3
    assert all("timer delay" in e for e in errors[:2])
    assert "no handler for Other" in errors[2]


async def test_a_periodic_timer_does_not_keep_its_actor_alive() -> None:
    """Only messages keep an actor alive: one with a fast timer is still passivated when idle."""
    async with edabus.connect() as bus, edabus.Node(bus, [clock_app(idle_timeout=0.3)]) as node:
        await bus.publish(Start(name="busy", every=0.02))
        await bus.publish(Count(name="other"))
        sup = node.supervisor("Clock")
        await eventually(lambda: sup.statistics().passivated == 2, timeout=5)
        fired = ticks.get("busy", 0)
        assert fired >= 3
