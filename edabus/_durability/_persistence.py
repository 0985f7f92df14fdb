"""Durable actor state and the duplicate window of reliable messages.

An actor declares persistent state by annotating ``state`` with a msgspec
Struct whose fields all have defaults::

    class Account(edabus.Actor):
        state: Balance

Its group (keyed or singleton, given a ``store=``) then loads the state before
the actor's first message after each activation and saves it after messages
that changed it, conditionally on the version it loaded (`StateStore`). Replies,
and the acknowledgements of reliable messages, leave only once the change they
follow is saved: a caller that got an answer can rely on it.

Reliable messages carry their sender's sequence number per key (`Meta.seq`) and
the lowest one not yet acknowledged (`Meta.base`). Per sender and key, the actor
remembers the last one it applied, saved with its state: an older number is a
duplicate (acknowledged again, not handled), a number past the next one is out
of order (refused, so the sender resends from its oldest unacknowledged one).
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

import msgspec

from edabus._exceptions import DefinitionError, OutOfOrder, StaleStateError, StateStoreError, StateTooLarge
from edabus._logging import get_logger
from edabus._transport._replies import reply, reply_error

if TYPE_CHECKING:
    from edabus._runtime._actor import Actor
    from edabus._runtime._cell import Cell, Work
    from edabus._runtime._supervisor import Supervisor

    from ._store import StateStore

__all__ = ["DEFAULT_MAX_STATE_SIZE", "SEEN_LIMIT", "Durability", "Verdict", "state_type_of"]

log = get_logger(__name__)

DEFAULT_MAX_STATE_SIZE = 1 << 20  # 1 MiB
SEEN_LIMIT = 10_000  # (sender, key) pairs an actor remembers; the oldest are forgotten


class _Record(msgspec.Struct, array_like=True):
    """A row's bytes: the user's state (msgpack) and the last applied sequence per sender and key."""

    state: msgspec.Raw
    seen: dict[str, int] = {}


_record_decoder = msgspec.msgpack.Decoder(_Record)
_encoder = msgspec.msgpack.Encoder()


def state_type_of(actor_cls: type) -> type[msgspec.Struct] | None:
    """The Struct an actor class annotates ``state`` with, or None; checked at group definition."""
    try:
        hints = typing.get_type_hints(actor_cls)
    except (NameError, TypeError):
        hints = {}
        for klass in reversed(actor_cls.__mro__):
            hints.update(getattr(klass, "__annotations__", {}))
    state_type = hints.get("state")
    if isinstance(state_type, str):
        msg = (
            f"{actor_cls.__name__}.state is annotated {state_type!r}, which does not resolve: "
            "define the state Struct at module level"
        )
        raise DefinitionError(msg)
    if not (isinstance(state_type, type) and issubclass(state_type, msgspec.Struct)):
        return None
    try:
        state_type()
    except TypeError as exc:
        msg = f"{actor_cls.__name__}.state: {state_type.__name__} must have a default for every field ({exc})"
        raise DefinitionError(msg) from exc
    return state_type


class Verdict:
    """What to do with a numbered arrival."""

    APPLY = 0
    DUPLICATE = 1
    GAP = 2


class Durability:
    """The persistent state and duplicate window of one group's actors.

    Args:
        namespace: the store's namespace for the group, ``"app/group"``.
        store: where state is kept; None keeps the duplicate window in memory only.
        state_type: the actors' state Struct; None if they declare none.
        max_state_size: the largest encoded state saved; larger is `StateTooLarge`.
        save_every: changed messages an actor may handle before its state is saved
            (it is saved sooner whenever its mailbox runs empty).
        ordered: check sequence numbers (a pool, whose workers share a mailbox, does not).

    """

    def __init__(
        self,
        namespace: str,
        *,
        store: StateStore | None,
        state_type: type[msgspec.Struct] | None,
        max_state_size: int = DEFAULT_MAX_STATE_SIZE,
        save_every: int = 1,
        ordered: bool = True,
    ) -> None:
        self.namespace = namespace
        self.ordered = ordered
        self.store = store
        self.state_type = state_type
        self.max_state_size = max_state_size
        self.save_every = save_every
        self.saves = 0
        self.duplicates = 0
        self.stale = 0

    # -- activation ---------------------------------------------------------------------------

    async def load(self, cell: Cell, instance: Actor, key: str) -> None:
        """Give a new instance its saved state (or a fresh one) and the cell its window."""
        cell.deferred = None
        cell.unsaved = 0
        if self.store is None or self.state_type is None:
            if self.state_type is not None:
                instance.state = self.state_type()  # type: ignore[attr-defined]
            if cell.seen is None:
                cell.seen = {}
            return
        try:
            row = await self.store.load(self.namespace, key)
        except Exception as exc:
            msg = f"loading the state of {self.namespace} {key!r} failed: {exc!r}"
            raise StateStoreError(msg) from exc
        if row is None:
            cell.version, cell.seen, cell.saved = 0, {}, None
            instance.state = self.state_type()  # type: ignore[attr-defined]
            return
        record = _record_decoder.decode(row.data)
        cell.version, cell.seen, cell.saved = row.version, dict(record.seen), bytes(record.state)
        instance.state = msgspec.msgpack.decode(record.state, type=self.state_type)  # type: ignore[attr-defined]

    # -- arrivals -----------------------------------------------------------------------------

    def verdict(self, cell: Cell, work: Work) -> int:
        """Apply, duplicate or out of order; a message applied is noted in the window."""
        if not self.ordered:
            return Verdict.APPLY
        meta = work.envelope.meta
        if meta.seq <= 0 or not meta.sender:
            return Verdict.APPLY
        seen = cell.seen
        if seen is None:
            seen = cell.seen = {}
        name = f"{meta.sender}|{work.envelope.key}"
        # The sender saw everything below base acknowledged: never wait for one of those.
        last = max(seen.pop(name, 0), meta.base - 1)
        if meta.seq <= last:
            seen[name] = last
            self.duplicates += 1
            return Verdict.DUPLICATE
        if meta.seq > last + 1:
            seen[name] = last
            return Verdict.GAP
        seen[name] = meta.seq
        cell.seen_changed = True
        while len(seen) > SEEN_LIMIT:
            del seen[next(iter(seen))]
        return Verdict.APPLY

    def admit(self, cell: Cell, works: list[Work]) -> list[Work]:
        """The works to handle; duplicates wait for an acknowledgement, early ones are refused."""
        todo = []
        for work in works:
            verdict = self.verdict(cell, work)
            if verdict == Verdict.APPLY:
                todo.append(work)
            elif verdict == Verdict.DUPLICATE:
                self.defer(cell, work, None)  # acknowledged again, once what came before is saved
            else:
                self.refuse_gap(work)
        return todo

    def refuse_gap(self, work: Work) -> None:
        """Tell the sender it must resend from its oldest unacknowledged message."""
        meta = work.envelope.meta
        if work.query is not None:
            reply_error(work.query, OutOfOrder(f"{work.envelope.key}: seq {meta.seq} came before an earlier one"))
            work.query.drop()

    def defer(self, cell: Cell, work: Work, result: Any) -> None:
        """Hold a request's reply until the state it follows is saved."""
        if work.query is not None:
            if cell.deferred is None:
                cell.deferred = []
            cell.deferred.append((work.query, result))

    # -- handling -----------------------------------------------------------------------------

    async def handle(self, sup: Supervisor, cell: Cell, works: list[Work]) -> bool:
        """The group's `handle` for these actors: drop duplicates, run, save, then reply.

        False when the cell takes no more messages (a failure stopped it, or a save failed).
        """
        instance = cell.instance
        assert instance is not None  # noqa: S101 - started before any message is handled
        todo = self.admit(cell, works)
        if todo:
            results = await sup.call(cell, instance, todo)
            if isinstance(results, Exception):
                going_on = await sup.failed(cell, instance, todo, results)
                for work in todo:
                    if work.query is not None:
                        work.query.drop()
                return going_on and await self._save_due(sup, cell, instance)
            for work, result in zip(todo, results, strict=True):
                self.defer(cell, work, result)
        return await self._save_due(sup, cell, instance)

    async def _save_due(self, sup: Supervisor, cell: Cell, instance: Actor) -> bool:
        """Save when due and answer what waited; a failed save stops the instance (reloaded next time)."""
        if not self.needs_save(cell, instance):
            self.answer(cell, None)  # nothing unsaved: the replies can go now
            return True
        if not self.due(cell):
            return True
        error = await self.save(cell, sup.state_key(cell))
        if error is None:
            return True
        log.warning(
            "actor.state_not_saved",
            app=sup.app,
            group=sup.name,
            key=cell.key,
            error=repr(error),
            version=cell.version,
        )
        await sup.stop_instance(cell, "actor.stopped", save=False, reason=type(error).__name__)
        return False

    # -- saving -------------------------------------------------------------------------------

    def needs_save(self, cell: Cell, instance: Actor) -> bool:
        """Whether the state or the window changed since the last save (counts a changed message)."""
        if self.store is None or self.state_type is None:
            return False
        data = _encoder.encode(instance.state)  # type: ignore[attr-defined]
        changed = data != cell.saved or cell.seen_changed
        if changed:
            cell.unsaved += 1
            cell.pending = data
        return changed or cell.unsaved > 0

    def due(self, cell: Cell, *, force: bool = False) -> bool:
        """Whether to save now: enough unsaved changes, an empty mailbox, or forced."""
        return cell.unsaved > 0 and (force or cell.unsaved >= self.save_every or not cell.mailbox)

    async def save(self, cell: Cell, key: str) -> Exception | None:
        """Save the cell's pending state; answer what waited on it. The error, if it failed."""
        error: Exception | None = None
        data = cell.pending
        if self.store is not None and data is not None and cell.unsaved:
            if len(data) > self.max_state_size:
                error = StateTooLarge(
                    f"state of {self.namespace} {key!r} is {len(data):,} bytes, "
                    f"over max_state_size {self.max_state_size:,}: not saved"
                )
            else:
                record = _encoder.encode(_Record(msgspec.Raw(data), cell.seen or {}))
                try:
                    cell.version = await self.store.save(self.namespace, key, record, cell.version)
                except StaleStateError as exc:
                    self.stale += 1
                    error = exc
                except Exception as exc:  # noqa: BLE001 - any database failure: nothing was saved
                    error = StateStoreError(f"saving the state of {self.namespace} {key!r} failed: {exc!r}")
                else:
                    self.saves += 1
                    cell.saved, cell.pending, cell.unsaved, cell.seen_changed = data, None, 0, False
        self.answer(cell, error)
        return error

    def answer(self, cell: Cell, error: Exception | None) -> None:
        """Send the held replies (or, when the save failed, the error) and finish their queries."""
        deferred, cell.deferred = cell.deferred, None
        for query, result in deferred or ():
            if error is None:
                reply(query, result)
            else:
                reply_error(query, error)
            query.drop()
