"""What both sides of every benchmark move: the same bytes, the same counting.

A tick carries a 32-byte name and an int. edabus publishes it on
``bench/tick/{name}`` as a `Tick`; the raw side publishes the same msgpack map
(`RawTick`) on the same key, without edabus's attachment. Either way each of
the 1,000 names owns a counter: a keyed `Sink` actor, or an entry of a dict.

Row 1's one actor is `SoloSink`, a singleton on the fixed key ``bench/solo``
(`Solo` messages). The activation and memory rows use `Idle`, a keyed actor with no state of its
own, in `IDLE_APP`, whose ``max_actors`` is far above the keys they activate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import ClassVar

import msgspec
import structlog

import edabus

__all__ = [
    "APP",
    "APP_NAME",
    "GET_PATTERN",
    "IDLE_APP",
    "KEY_COUNT",
    "MAX_IDLE_ACTORS",
    "NAMES",
    "SOLO_APP",
    "SOLO_KEY",
    "TICK_PATTERN",
    "Count",
    "Get",
    "Idle",
    "RawCount",
    "RawGet",
    "RawTick",
    "Sink",
    "Solo",
    "SoloSink",
    "Tally",
    "Touch",
    "fresh_names",
    "get_key",
    "misrouted",
    "quiet_logging",
    "tick_key",
]

KEY_COUNT = 1000
NAME_BYTES = 32
# "sink0042xxxxxxxxxxxxxxxxxxxxxxxx": 32 ASCII characters, so 32 bytes on the wire.
NAMES: tuple[str, ...] = tuple(f"sink{i:04d}".ljust(NAME_BYTES, "x") for i in range(KEY_COUNT))
TICK_PATTERN = "bench/tick/*"
GET_PATTERN = "bench/get/*"
SOLO_KEY = "bench/solo"
APP_NAME = "bench"


def fresh_names(prefix: str, count: int) -> list[str]:
    """``count`` distinct 32-byte names that start with ``prefix`` (none of them in `NAMES`)."""
    return [f"{prefix}{i:09d}".ljust(NAME_BYTES, "x") for i in range(count)]


def tick_key(name: str) -> str:
    """The key a tick for ``name`` travels on (what `Tick.key()` gives)."""
    return f"bench/tick/{name}"


def get_key(name: str) -> str:
    """The key a request for ``name`` travels on (what `Get.key()` gives)."""
    return f"bench/get/{name}"


class Tick(edabus.Message, key="bench/tick/{name}"):
    """One message of the throughput benchmarks."""

    name: str
    n: int


class Get(edabus.Message, key="bench/get/{name}"):
    """A request for the count of one name."""

    name: str
    n: int


class Count(edabus.Message):
    """The reply to `Get`."""

    n: int


class RawTick(msgspec.Struct):
    """`Tick`'s payload, as a raw publisher writes it: the same msgpack map."""

    name: str
    n: int


class RawGet(msgspec.Struct):
    """`Get`'s payload, for the raw queryable."""

    name: str
    n: int


class RawCount(msgspec.Struct):
    """`Count`'s payload, from the raw queryable."""

    n: int


class Tally:
    """Counts handled messages; notes when the count reaches a mark and a target.

    The raw sides call `hit` from Zenoh's callback thread and the edabus side from
    the event loop: one writer either way, so no lock.
    """

    def __init__(self) -> None:
        self.total = 0
        self.mark = -1
        self.mark_time = 0.0
        self.target = -1
        self.target_time = 0.0
        self.target_wall = 0.0  # time.time() at the target: comparable with a publisher's, same host
        self._on_target: Callable[[], object] | None = None

    def arm(self, target: int, on_target: Callable[[], object], *, mark: int = -1) -> None:
        """Call ``on_target`` once ``total`` reaches ``target`` (now, if it has already)."""
        self.mark = mark
        self.target = target
        self._on_target = on_target
        if self.total >= target:
            self.target_time = time.perf_counter()
            self.target_wall = time.time()
            on_target()

    def hit(self) -> None:
        """One more message handled."""
        self.total = total = self.total + 1
        if total == self.mark:
            self.mark_time = time.perf_counter()
        if total == self.target:
            self.target_time = time.perf_counter()
            self.target_wall = time.time()
            if self._on_target is not None:
                self._on_target()


class Sink(edabus.Actor):
    """One counter per name: the keyed actor of every edabus benchmark."""

    tally: ClassVar[Tally] = Tally()
    instances: ClassVar[dict[str, Sink]] = {}

    def __init__(self, key: str) -> None:
        self.count = 0
        Sink.instances[key] = self

    @classmethod
    def reset(cls) -> Tally:
        """Forget every instance and start a fresh tally (before each run)."""
        cls.instances = {}
        cls.tally = Tally()
        return cls.tally

    @edabus.handler
    async def tick(self, msg: Tick) -> None:
        self.count += 1
        Sink.tally.hit()

    @edabus.handler
    async def get(self, msg: Get) -> Count:
        self.count += 1
        return Count(n=self.count)


APP = edabus.App(APP_NAME)
APP.keyed(Sink, key="name")


class Solo(edabus.Message, key=SOLO_KEY):
    """A tick for the one actor of row 1: the same two fields, on one fixed key."""

    name: str
    n: int


class SoloSink(edabus.Actor):
    """The one actor: a singleton counting into `Sink`'s tally (the latest instance is kept, to read its count)."""

    last: ClassVar[SoloSink | None] = None

    def __init__(self) -> None:
        self.count = 0
        SoloSink.last = self

    @edabus.handler
    async def tick(self, msg: Solo) -> None:
        self.count += 1
        Sink.tally.hit()


SOLO_APP = edabus.App("bench-solo")
SOLO_APP.singleton(SoloSink)


class Touch(edabus.Message, key="bench/touch/{name}"):
    """A tick for `Idle`: the same two fields, on keys of their own."""

    name: str
    n: int


class Idle(edabus.Actor):
    """A keyed actor with no state of its own: what an idle actor costs is edabus's alone."""

    tally: ClassVar[Tally] = Tally()

    def __init__(self, key: str) -> None:
        pass  # keeps nothing, not even its key (the supervisor holds that)

    @classmethod
    def reset(cls) -> Tally:
        """Start a fresh tally (before each run)."""
        cls.tally = Tally()
        return cls.tally

    @edabus.handler
    async def touch(self, msg: Touch) -> None:
        Idle.tally.hit()


MAX_IDLE_ACTORS = 2_000_000  # far above any run's keys: no actor is passivated to make room
IDLE_APP = edabus.App("bench-idle")
IDLE_APP.keyed(Idle, key="name", max_actors=MAX_IDLE_ACTORS, idle_timeout=None)


def misrouted(counts: dict[str, int], total: int, names: Sequence[str] = NAMES) -> int:
    """How many of ``names`` got a count other than their share of ticks ``0 .. total - 1``, round-robin."""
    rounds, extra = divmod(total, len(names))
    return sum(counts.get(name, 0) != rounds + (i < extra) for i, name in enumerate(names))


def quiet_logging() -> None:
    """Keep edabus's info events (one per spawned actor) off stdout, as an application would."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
