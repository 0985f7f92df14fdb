"""Runners: tasks spawn as handlers await, and those beyond the idle ones kept exit."""

from __future__ import annotations

import anyio
import pytest

import edabus._runtime._runners
from edabus._runtime._runners import Runners
from tests.conftest import eventually


class Item:
    def __init__(self) -> None:
        self.scheduled = False


async def test_runners_grow_while_handlers_wait_then_shrink_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five actors whose handlers wait take five runners; idle, all but the kept one exit; work still runs."""
    monkeypatch.setattr(edabus._runtime._runners, "_IDLE_KEEP", 1)
    gate = anyio.Event()
    handled: list[Item] = []

    async def run(item: Item) -> int:
        await gate.wait()
        handled.append(item)
        item.scheduled = False
        return 1

    runners: Runners[Item] = Runners(run)
    async with anyio.create_task_group() as tg:
        runners.attach(tg)
        items = [Item() for _ in range(5)]
        for item in items:
            runners.schedule(item)
        await eventually(lambda: runners.running == 5)
        gate.set()
        await eventually(lambda: len(handled) == 5)
        await eventually(lambda: runners.running == 1)
        late = Item()
        runners.schedule(late)  # the one left still takes work
        await eventually(lambda: late in handled)
        assert runners.running == 1
        tg.cancel_scope.cancel()
