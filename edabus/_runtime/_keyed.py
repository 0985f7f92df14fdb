"""Keyed and singleton supervisors: one actor per key value, spawned on demand.

Live actors are kept in least-recently-used order. An actor idle longer than
``idle_timeout`` is passivated (``on_stop`` runs); when ``max_actors`` are live,
the least recently used idle one is passivated to make room (and if every one
is busy, the new key waits). A message for a passivated key re-activates it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import anyio

from edabus._exceptions import ActorEscalated, ActorStopped, DefinitionError

from ._batching import take_batch
from ._cell import Cell, Work
from ._mailbox import Mailbox
from ._runners import Runners
from ._supervisor import Supervisor

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup

    from edabus._cluster._membership import Membership
    from edabus._model._envelope import Envelope
    from edabus._model._message import Message
    from edabus._transport._bus import Bus

    from ._actor import Actor
    from ._policy import RestartPolicy
    from ._supervisor import Overflow

__all__ = ["KeyedSupervisor", "SingletonSupervisor"]

DEFAULT_IDLE_TIMEOUT = 600.0
DEFAULT_MAX_ACTORS = 100_000
_QUANTUM = 64  # messages of one actor a runner handles before it serves the next actor
_MAX_ESCALATED = 10_000  # closed keys remembered; the oldest are forgotten (and may re-activate)


class KeyedSupervisor(Supervisor):
    """One actor per value of the message field ``key``, built as ``cls(value)``."""

    kind = "keyed"

    def __init__(
        self,
        app: str,
        name: str,
        actor_cls: type[Actor],
        *,
        key: str,
        mailbox_size: int,
        overflow: Overflow = "backpressure",
        restart: RestartPolicy | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_actors: int = DEFAULT_MAX_ACTORS,
    ) -> None:
        super().__init__(app, name, actor_cls, mailbox_size=mailbox_size, overflow=overflow, restart=restart)
        if max_actors < 1 or (idle_timeout is not None and idle_timeout <= 0):
            msg = f"group {name!r}: max_actors must be >= 1 and idle_timeout > 0 (or None)"
            raise DefinitionError(msg)
        self.key_field = key
        for message_type in self.handlers:
            if key and key not in message_type.__struct_fields__:
                msg = (
                    f"keyed group {name!r}: {actor_cls.__name__} handles {message_type.__name__}, "
                    f"which has no field {key!r} to pick the actor by"
                )
                raise DefinitionError(msg)
        self.idle_timeout = idle_timeout
        self.max_actors = max_actors
        self._cells: OrderedDict[object, Cell] = OrderedDict()
        self._escalated: OrderedDict[object, None] = OrderedDict()
        self._runners: Runners[Cell] = Runners(self._run_cell)
        self._room: anyio.Event | None = None
        self._peak = 0

    def attach(self, bus: Bus, tg: TaskGroup, membership: Membership | None = None) -> None:
        super().attach(bus, tg, membership)
        self._runners.attach(tg)
        if self.idle_timeout is not None:
            tg.start_soon(self._reap_idle, self.idle_timeout)

    def _key_of(self, msg: Message) -> object:
        return getattr(msg, self.key_field)

    def delivers_to(self, msg: Message, key: object) -> bool:
        return type(msg) in self.handlers and self._key_of(msg) == key

    def placement_key(self, msg: Message, envelope: Envelope) -> str:  # noqa: ARG002 - the key decides
        return str(self._key_of(msg))

    def early_placement_key(self, message_type: type[Message], envelope: Envelope) -> str | None:
        template = message_type.__edabus_key__
        if template is None:
            return None
        for name, index in template.field_positions:
            if name == self.key_field:
                chunks = envelope.key.split("/")
                return chunks[index] if len(chunks) == template.chunk_count else None
        return None

    def _cell_placement_key(self, cell: Cell) -> str:
        return str(cell.key)

    def state_key(self, cell: Cell) -> str:
        return self._cell_placement_key(cell)

    def rebalance(self) -> None:
        membership = self.membership
        if membership is None or self._tg is None:
            return
        for cell in list(self._cells.values()):
            if membership.owns(self._cell_placement_key(cell)):
                cell.moving = False
            elif cell.scheduled or cell.mailbox:
                cell.moving = True  # it finishes what it took in, then goes
            else:
                self._tg.start_soon(self._passivate, cell, "rebalanced")

    def refresh(self) -> None:
        if self._tg is None:
            return
        for cell in list(self._cells.values()):
            cell.stale = True  # kept through membership changes, unlike `moving`
            if not (cell.scheduled or cell.mailbox):
                self._tg.start_soon(self._passivate, cell, "resumed")

    def _construct_args(self, cell: Cell) -> tuple[object, ...]:
        return (cell.key,)

    # -- arrivals ----------------------------------------------------------------------------

    def _enqueue_nowait(self, work: Work) -> bool:
        key = self._key_of(work.msg)
        cell = self._cells.get(key)
        if cell is None or cell.stopped:
            return False  # an activation (or a refusal, for an escalated key): `_enqueue`
        mailbox = cell.mailbox
        if len(mailbox) >= mailbox.capacity:
            return False  # the overflow policy: `_enqueue`
        self._cells.move_to_end(key)
        cell.last_used = time.monotonic()
        mailbox.put_nowait(work)
        self._runners.schedule(cell)
        return True

    async def _enqueue(self, work: Work) -> None:
        key = self._key_of(work.msg)
        if key in self._escalated:
            escalated = ActorEscalated(f"{self.actor_cls.__name__}({key!r}) escalated; it takes no messages")
            self.failures.reject(work, escalated)
            return
        cell = self._cells.get(key)
        if cell is None or cell.stopped:
            cell = await self._activate(key)
        else:
            self._cells.move_to_end(key)
        cell.last_used = time.monotonic()
        await self._put(cell.mailbox, work)
        if cell.stopped:  # closed while we waited for room: route again (re-activate, or refuse)
            for queued in cell.mailbox.drain():
                await self._enqueue(queued)
            return
        self._runners.schedule(cell)

    async def _activate(self, key: object) -> Cell:
        while len(self._cells) >= self.max_actors:
            victim = next((c for c in self._cells.values() if not c.scheduled and not c.mailbox), None)
            if victim is not None:
                await self._passivate(victim, "max_actors")
                continue
            self._room = anyio.Event()  # every live actor is busy: wait for one to finish
            await self._room.wait()
        cell = self._cells.get(key)  # another arrival may have activated it while we waited
        if cell is None or cell.stopped:
            cell = self._cells[key] = Cell(key, Mailbox(self.mailbox_size), last_used=time.monotonic())
        return cell

    def _timer_deliver(self, cell: Cell) -> Callable[[Message], Awaitable[bool]]:
        async def deliver(msg: Message) -> bool:
            if cell.stopped:  # (a timer set in on_start may fire before on_start returns: still fine)
                return False
            self.count_timer_message()
            await self._put(cell.mailbox, self.work_for_timer(msg))
            if cell.stopped:
                return False
            self._runners.schedule(cell)
            return True

        return deliver

    # -- running -----------------------------------------------------------------------------

    async def _run_cell(self, cell: Cell) -> int:
        """Handle up to a quantum of one actor's messages (a runner calls this)."""
        handled = 0
        try:
            if cell.instance is None and not cell.stopped and not await self.start_instance(cell):
                self._forget(cell)
                return 0
            mailbox = cell.mailbox
            while mailbox and handled < _QUANTUM and not cell.stopped:
                work = mailbox.get_nowait()
                if work.spec.batch:
                    works = await take_batch(mailbox, work)
                    handled += len(works)
                    if not await self.handle_batch(cell, works):
                        break
                    continue
                handled += 1
                if not await self.handle(cell, work):
                    break
        finally:
            # Only messages keep an actor alive: last_used moves when they arrive, not when
            # timer messages run (as Orleans timers, unlike reminders, keep no grain active).
            cell.scheduled = False
            if cell.mailbox and not cell.stopped:
                self._runners.schedule(cell)
            elif (cell.moving or cell.stale) and not cell.stopped and self._tg is not None:
                self._tg.start_soon(self._passivate, cell, "resumed" if cell.stale else "rebalanced")
            elif self._room is not None:
                self._room.set()
                self._room = None
        return handled

    def _forget(self, cell: Cell) -> None:
        if self._cells.get(cell.key) is cell:
            del self._cells[cell.key]
        if self._room is not None:
            self._room.set()
            self._room = None

    async def after_stop(self, cell: Cell) -> None:
        self._forget(cell)

    def close_escalated(self, cell: Cell, exc: ActorEscalated) -> None:
        self.close_cell(cell, exc)
        self._forget(cell)
        self._escalated[cell.key] = None
        while len(self._escalated) > _MAX_ESCALATED:
            self._escalated.popitem(last=False)

    # -- passivation -------------------------------------------------------------------------

    async def _passivate(self, cell: Cell, reason: str) -> None:
        if cell.stopped:
            return
        self._forget(cell)
        cell.stopped = True
        self.counters.passivated += 1
        await self.stop_instance(cell, "actor.passivated", reason=reason)

    async def _reap_idle(self, idle_timeout: float) -> None:
        """Passivate actors idle longer than ``idle_timeout``, oldest first."""
        tick = min(1.0, idle_timeout / 4)
        while True:
            await anyio.sleep(tick)
            deadline = time.monotonic() - idle_timeout
            expired = []
            for cell in self._cells.values():
                if cell.last_used > deadline:
                    break
                if not cell.scheduled and not cell.mailbox:
                    expired.append(cell)
            for cell in expired:
                if not cell.scheduled and not cell.mailbox and self._cells.get(cell.key) is cell:
                    await self._passivate(cell, "idle")

    # -- node stop, statistics ---------------------------------------------------------------

    async def stop(self) -> None:
        cells, self._cells = self._cells, OrderedDict()
        for cell in cells.values():
            self.close_cell(cell, ActorStopped(f"group {self.name!r} stopped"))
            await self.stop_instance(cell)

    def busy(self) -> bool:
        return any(cell.scheduled or cell.mailbox for cell in self._cells.values())

    def live_keys(self) -> list[str]:
        return ["" if c.key is None else str(c.key) for c in self._cells.values() if c.instance is not None]

    def _live_and_depth(self) -> tuple[int, int, int]:
        live = depth = peak = 0
        for cell in self._cells.values():
            live += cell.instance is not None
            depth += len(cell.mailbox)
            peak = max(peak, cell.mailbox.peak)
        self._peak = max(self._peak, peak)
        return live, depth, self._peak


class SingletonSupervisor(KeyedSupervisor):
    """Exactly one actor for the whole group, built as ``cls()`` on the first message."""

    kind = "singleton"

    def __init__(
        self,
        app: str,
        name: str,
        actor_cls: type[Actor],
        *,
        mailbox_size: int,
        overflow: Overflow = "backpressure",
        restart: RestartPolicy | None = None,
    ) -> None:
        super().__init__(
            app,
            name,
            actor_cls,
            key="",
            mailbox_size=mailbox_size,
            overflow=overflow,
            restart=restart,
            idle_timeout=None,
            max_actors=1,
        )

    def _key_of(self, msg: Message) -> object:  # noqa: ARG002 - one actor, whatever the message
        return None

    def placement_key(self, msg: Message, envelope: Envelope) -> str:  # noqa: ARG002 - one owner
        return self.name  # by group name, so several singleton groups spread over the nodes

    def _cell_placement_key(self, cell: Cell) -> str:  # noqa: ARG002 - one owner
        return self.name

    def early_placement_key(self, message_type: type[Message], envelope: Envelope) -> str | None:  # noqa: ARG002
        return self.name

    def _construct_args(self, cell: Cell) -> tuple[object, ...]:  # noqa: ARG002 - a singleton takes no key
        return ()
