"""What both sides of every benchmark move: the same bytes, the same counting.

A tick carries a 32-byte name and an int. edabus publishes it on
``bench/tick/{name}`` as a `Tick`; the raw side publishes the same msgpack map
(`RawTick`) on the same key, without edabus's attachment. Either way each of
the 1,000 names owns a counter: a keyed `Sink` actor, or an entry of a dict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ClassVar

import msgspec
import structlog

import edabus

__all__ = [
    "APP",
    "APP_NAME",
    "GET_PATTERN",
    "KEY_COUNT",
    "NAMES",
    "TICK_PATTERN",
    "Count",
    "Get",
    "RawCount",
    "RawGet",
    "RawTick",
    "Sink",
    "Tally",
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
APP_NAME = "bench"


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
        self._on_target: Callable[[], object] | None = None

    def arm(self, target: int, on_target: Callable[[], object], *, mark: int = -1) -> None:
        """Call ``on_target`` once ``total`` reaches ``target`` (now, if it has already)."""
        self.mark = mark
        self.target = target
        self._on_target = on_target
        if self.total >= target:
            self.target_time = time.perf_counter()
            on_target()

    def hit(self) -> None:
        """One more message handled."""
        self.total = total = self.total + 1
        if total == self.mark:
            self.mark_time = time.perf_counter()
        if total == self.target:
            self.target_time = time.perf_counter()
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


def misrouted(counts: dict[str, int], total: int) -> int:
    """How many names got a count other than their share of ticks ``0 .. total - 1``."""
    rounds, extra = divmod(total, KEY_COUNT)
    return sum(counts.get(name, 0) != rounds + (i < extra) for i, name in enumerate(NAMES))


def quiet_logging() -> None:
    """Keep edabus's info events (one per spawned actor) off stdout, as an application would."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
