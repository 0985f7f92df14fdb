"""Messages and actors shared by the flow-control tests and their publisher script."""

from __future__ import annotations

import time

import anyio

import edabus


class Load(edabus.Message, key="flow/{sink}/load"):
    sink: str
    n: int
    pad: bytes = b""  # makes messages big enough that socket buffers cannot hide a flood


class Ping(edabus.Message, key="flow/{sink}/ping"):
    sink: str
    n: int


class Busy(edabus.Actor):
    """Spends ``WORK_S`` of CPU on each message, like a real handler that computes."""

    WORK_S = 40e-6
    handled = 0

    def __init__(self, key: str) -> None:
        self.key = key

    @edabus.handler
    def load(self, msg: Load) -> None:
        deadline = time.perf_counter() + self.WORK_S
        while time.perf_counter() < deadline:
            pass
        Busy.handled += 1


class Stuck(edabus.Actor):
    """Its first message takes ``STALL_S`` seconds (awaiting, as a slow I/O call would)."""

    STALL_S = 10.0
    handled = 0

    def __init__(self, key: str) -> None:
        self.first = True

    @edabus.handler
    async def load(self, msg: Load) -> None:
        if self.first:
            self.first = False
            await anyio.sleep(self.STALL_S)
        Stuck.handled += 1


class Quick(edabus.Actor):
    handled = 0

    def __init__(self, key: str) -> None:
        self.key = key

    @edabus.handler
    def ping(self, msg: Ping) -> None:
        Quick.handled += 1


class Tick(edabus.Message, key="flow/{sink}/tick"):
    sink: str
    n: int


class Sleepy(edabus.Actor):
    """Awaits ``WORK_S`` per message, as a database write or an HTTP call would."""

    WORK_S = 0.001
    handled = 0

    def __init__(self, key: str) -> None:
        self.key = key

    @edabus.handler
    async def tick(self, msg: Tick) -> None:
        await anyio.sleep(self.WORK_S)
        Sleepy.handled += 1


app = edabus.App("flow")
app.keyed(Sleepy, key="sink", mailbox_size=100)
