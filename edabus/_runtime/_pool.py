"""The pool supervisor: up to ``size`` interchangeable workers sharing one mailbox.

Workers are spawned as work queues up, never more than ``size``; each message
goes to one free worker. Restarts are counted for the whole pool: a failing
worker is replaced until the pool's bound is exhausted, and then the pool
escalates and takes no more messages.
"""

from __future__ import annotations

import itertools
import zlib
from typing import TYPE_CHECKING

from edabus._exceptions import ActorEscalated, ActorStopped, DefinitionError

from ._batching import take_batch
from ._cell import Cell, Work
from ._mailbox import Mailbox
from ._policy import RestartWindow
from ._supervisor import Supervisor

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edabus._model._envelope import Envelope
    from edabus._model._message import Message

    from ._actor import Actor
    from ._policy import RestartPolicy
    from ._supervisor import Overflow

__all__ = ["PoolSupervisor"]


class PoolSupervisor(Supervisor):
    """``size`` interchangeable ``cls()`` workers; each message goes to one free worker."""

    kind = "pool"
    routed_to_any = True

    def __init__(
        self,
        app: str,
        name: str,
        actor_cls: type[Actor],
        *,
        size: int,
        mailbox_size: int,
        overflow: Overflow = "backpressure",
        restart: RestartPolicy | None = None,
    ) -> None:
        super().__init__(app, name, actor_cls, mailbox_size=mailbox_size, overflow=overflow, restart=restart)
        if size < 1:
            msg = f"pool group {name!r}: size must be at least 1, got {size}"
            raise DefinitionError(msg)
        self.size = size
        self._queue: Mailbox[Work] = Mailbox(mailbox_size)
        self._workers: list[Cell] = []
        self._pool_window = RestartWindow(self.policy)
        self._escalated = False
        self._starting = 0
        self._idle = 0
        self._indexes = itertools.count()

    def delivers_to(self, msg: Message, key: object) -> bool:  # noqa: ARG002 - pool workers have no key
        return self.size == 1 and type(msg) in self.handlers

    def restart_window(self, cell: Cell) -> RestartWindow:  # noqa: ARG002 - restarts count pool-wide
        return self._pool_window

    def reset_restarts(self, cell: Cell) -> None:  # noqa: ARG002 - restarts count pool-wide
        self._pool_window = RestartWindow(self.policy)

    def _enqueue_nowait(self, work: Work) -> bool:
        if self._escalated or self._queue.full():
            return False
        self._queue.put_nowait(work)
        self._grow()
        return True

    async def _enqueue(self, work: Work) -> None:
        if self._escalated:
            self.failures.reject(work, ActorEscalated(f"pool {self.name!r} escalated; it takes no messages"))
            return
        await self._put(self._queue, work)
        self._grow()

    def _grow(self) -> None:
        """Spawn while more messages wait than idle (or starting) workers can take, up to size."""
        while len(self._queue) > self._idle and len(self._workers) + self._starting < self.size:
            self._starting += 1
            self._idle += 1
            assert self._tg is not None  # noqa: S101 - attach() runs before any message
            self._tg.start_soon(self._worker, Cell(next(self._indexes), self._queue))

    def placement_key(self, msg: Message, envelope: Envelope) -> str:  # noqa: ARG002 - by message id
        """Each message goes to one node: by its id (sender and number), else by its bytes."""
        meta = envelope.meta
        if meta.id:
            return f"{meta.sender}/{meta.id}"
        return f"{envelope.key}/{zlib.crc32(envelope.payload)}"

    def early_placement_key(self, message_type: type[Message], envelope: Envelope) -> str | None:  # noqa: ARG002
        return self.placement_key(None, envelope)  # type: ignore[arg-type]  # the id is in the metadata

    def _timer_deliver(self, cell: Cell) -> Callable[[Message], Awaitable[bool]]:
        async def deliver(msg: Message) -> bool:  # a pool worker's timer message goes to any worker
            if cell.stopped or self._escalated:
                return False
            self.count_timer_message()
            await self._put(self._queue, self.work_for_timer(msg))
            return True

        return deliver

    async def _worker(self, cell: Cell) -> None:
        try:
            started = await self.start_instance(cell)
        finally:
            self._starting -= 1
        if not started:
            self._idle -= 1
            if not self._workers:  # nobody else will take the queue
                self.reject_queued(ActorStopped(f"pool {self.name!r}: no worker could start"))
            return
        self._workers.append(cell)
        try:
            while not cell.stopped and not self._escalated:
                work = await self._queue.get()
                self._idle -= 1
                try:
                    if work.spec.batch:
                        if not await self.handle_batch(cell, await take_batch(self._queue, work)):
                            break
                    elif not await self.handle(cell, work):
                        break
                finally:
                    self._idle += 1
        finally:
            self._idle -= 1
        # Left the loop by a directive or an escalation (a cancelled worker is stopped by stop()).
        await self.stop_instance(cell)
        self._workers.remove(cell)
        if not self._escalated:
            self._grow()  # a stopped worker is replaced if work is waiting

    def close_cell(self, cell: Cell, exc: Exception) -> None:  # noqa: ARG002 - the queue is shared
        """A pool worker shares the queue: closing one leaves the queue to the others (or a new one)."""
        cell.stopped = True

    def reject_queued(self, exc: Exception) -> None:
        """Fail everything waiting in the pool's queue."""
        for work in self._queue.drain():
            self.failures.reject(work, exc)

    def close_escalated(self, cell: Cell, exc: ActorEscalated) -> None:
        self._escalated = True
        cell.stopped = True
        self.reject_queued(exc)

    async def stop(self) -> None:
        self.reject_queued(ActorStopped(f"group {self.name!r} stopped"))
        workers, self._workers = self._workers, []
        for cell in workers:
            cell.stopped = True
            await self.stop_instance(cell)

    def live_keys(self) -> list[str]:
        return [str(cell.key) for cell in self._workers]

    def busy(self) -> bool:
        return bool(self._queue) or self._idle < len(self._workers) + self._starting

    def _live_and_depth(self) -> tuple[int, int, int]:
        return len(self._workers), len(self._queue), self._queue.peak
