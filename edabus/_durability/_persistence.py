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

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from edabus._exceptions import EdabusError, OutOfOrder, StaleStateError, StateError, StateStoreError, StateTooLarge
from edabus._logging import get_logger
from edabus._runtime._hooks import GroupHooks
from edabus._transport._replies import reply, reply_error

if TYPE_CHECKING:
    import zenoh

    from edabus._model._message import Message
    from edabus._runtime._actor import Actor
    from edabus._runtime._cell import Cell, Work
    from edabus._runtime._hooks import Group

    from ._store import StateStore

__all__ = ["DEFAULT_MAX_STATE_SIZE", "SEEN_LIMIT", "Durability", "Verdict"]

log = get_logger(__name__)

DEFAULT_MAX_STATE_SIZE = 1 << 20  # 1 MiB
SEEN_LIMIT = 10_000  # (sender, key) pairs an actor remembers; the oldest are forgotten


class _Record(msgspec.Struct, array_like=True):
    """A row's bytes: the user's state (msgpack) and the last applied sequence per sender and key."""

    state: msgspec.Raw
    seen: dict[str, int] = {}


_record_decoder = msgspec.msgpack.Decoder(_Record)
_encoder = msgspec.msgpack.Encoder()


class Verdict(enum.Enum):
    """What to do with a numbered arrival."""

    APPLY = enum.auto()
    DUPLICATE = enum.auto()
    GAP = enum.auto()


@dataclass(slots=True)
class _Kept:
    """What a group's durability keeps per activation.

    The stored version and bytes, the duplicate window, the encoded state not yet
    saved, and the replies that wait for that save.
    """

    version: int = 0
    saved: bytes | None = None
    seen: dict[str, int] | None = None
    seen_changed: bool = False
    pending: bytes | None = None
    unsaved: int = 0
    deferred: list[tuple[zenoh.Query, Any]] | None = None  # made by the first held reply
    held: list[tuple[Message, str | None]] | None = None  # reliable publishes of the handler running now
    outgoing: list[tuple[Message, str | None]] | None = None  # of handlers that returned: sent after the save


class Durability(GroupHooks):
    """The persistent state and duplicate window of one group's actors: its `GroupHooks`.

    It loads an actor's state as it activates, saves it after the messages that
    changed it (holding replies until then), and saves what is left when it stops.

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
        self._holds = store is not None and state_type is not None  # reliable publishes wait for the save
        self.saves = 0
        self.duplicates = 0
        self.stale = 0

    handles = True

    def _of(self, cell: Cell) -> _Kept:
        """What this group's durability keeps for ``cell``, made on first use."""
        data = cell.data
        if data is None:
            data = cell.data = {}
        kept = data.get(self)
        if kept is None:
            kept = data[self] = _Kept()
        return kept

    # -- activation ---------------------------------------------------------------------------

    async def on_activate(self, sup: Group, cell: Cell, instance: Actor) -> None:
        """Load the new instance's state."""
        await self.load(cell, instance, sup.state_key(cell))

    async def on_deactivate(self, sup: Group, cell: Cell, instance: Actor, *, save: bool) -> None:
        """Save what changed (unless it stopped after a failure); the replies that still wait get their answer.

        The reliable messages its handlers published go once their changes are saved;
        with the changes dropped, they are dropped too.
        """
        error: Exception | None = None
        if save and self.needs_save(cell, instance):
            error = await self.save(cell, sup.state_key(cell))
        self.answer(cell, StateError(f"{sup.actor_cls.__name__}({cell.key!r}) stopped before saving"))
        if save and error is None:
            await self._send_outgoing(sup, cell)
        else:
            self._of(cell).outgoing = None

    def on_publish(self, sup: Group, cell: Cell, msg: Message, key: str | None) -> bool:  # noqa: ARG002
        """Keep a reliable message a handler publishes back until the state it follows is saved."""
        if not self._holds or not msg.__edabus_reliable__:
            return False
        kept = self._of(cell)
        if kept.held is None:  # not from inside a handler (on_start, a task of its own): sent now
            return False
        kept.held.append((msg, key))
        return True

    async def _send_outgoing(self, sup: Group, cell: Cell) -> None:
        """Send what the cell's handlers published, now that what they changed is saved."""
        if not self._holds:
            return
        kept = self._of(cell)
        outgoing, kept.outgoing = kept.outgoing, None
        bus = sup.bus
        for msg, key in outgoing or ():
            if bus is None:
                break
            try:
                await bus.publish(msg, key=key, backpressure=False)
            except EdabusError as exc:  # the bus is closing: it was never sent
                log.warning("actor.publish_failed", app=sup.app, group=sup.name, key=cell.key, error=repr(exc))

    async def load(self, cell: Cell, instance: Actor, key: str) -> None:
        """Give a new instance its saved state (or a fresh one) and the cell its window."""
        kept = self._of(cell)
        kept.deferred = None
        kept.unsaved = 0
        if self.store is None or self.state_type is None:
            if self.state_type is not None:
                instance.state = self.state_type()  # type: ignore[attr-defined]
            if kept.seen is None:
                kept.seen = {}
            return
        try:
            row = await self.store.load(self.namespace, key)
        except Exception as exc:
            msg = f"loading the state of {self.namespace} {key!r} failed: {exc!r}"
            raise StateStoreError(msg) from exc
        if row is None:
            kept.version, kept.seen, kept.saved = 0, {}, None
            instance.state = self.state_type()  # type: ignore[attr-defined]
            return
        record = _record_decoder.decode(row.data)
        kept.version, kept.seen, kept.saved = row.version, dict(record.seen), bytes(record.state)
        instance.state = msgspec.msgpack.decode(record.state, type=self.state_type)  # type: ignore[attr-defined]

    # -- arrivals -----------------------------------------------------------------------------

    def verdict(self, cell: Cell, work: Work) -> Verdict:
        """Apply, duplicate or out of order; a message applied is noted in the window."""
        kept = self._of(cell)
        if not self.ordered:
            return Verdict.APPLY
        meta = work.envelope.meta
        if meta.seq <= 0 or not meta.sender:
            return Verdict.APPLY
        seen = kept.seen
        if seen is None:
            seen = kept.seen = {}
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
        kept.seen_changed = True
        while len(seen) > SEEN_LIMIT:
            del seen[next(iter(seen))]
        return Verdict.APPLY

    def admit(self, cell: Cell, works: list[Work]) -> list[Work]:
        """The works to handle; duplicates wait for an acknowledgement, early ones are refused."""
        todo = []
        for work in works:
            verdict = self.verdict(cell, work)
            if verdict is Verdict.APPLY:
                todo.append(work)
            elif verdict is Verdict.DUPLICATE:
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
        kept = self._of(cell)
        if work.query is not None:
            if kept.deferred is None:
                kept.deferred = []
            kept.deferred.append((work.query, result))

    # -- handling -----------------------------------------------------------------------------

    async def handle(self, sup: Group, cell: Cell, works: list[Work]) -> bool:
        """The group's `handle` for these actors: drop duplicates, run, save, then reply.

        False when the cell takes no more messages (a failure stopped it, or a save failed).
        """
        instance = cell.instance
        assert instance is not None  # noqa: S101 - started before any message is handled
        todo = self.admit(cell, works)
        if todo:
            results = await self._call_holding(sup, cell, instance, todo)
            if isinstance(results, Exception):
                going_on = await sup.failures.failed(cell, instance, todo, results)
                for work in todo:
                    if work.query is not None:
                        work.query.drop()
                return going_on and await self._save_due(sup, cell, instance)
            for work, result in zip(todo, results, strict=True):
                self.defer(cell, work, result)
        return await self._save_due(sup, cell, instance)

    async def _call_holding(self, sup: Group, cell: Cell, instance: Actor, todo: list[Work]) -> list[Any] | Exception:
        """Run the handler, holding back the reliable messages it publishes until its state is saved."""
        if not self._holds:
            return await sup.call(cell, instance, todo)
        kept = self._of(cell)
        kept.held = []
        try:
            results = await sup.call(cell, instance, todo)
        finally:
            held, kept.held = kept.held, None
        if held and not isinstance(results, Exception):  # a handler that raised publishes nothing
            kept.outgoing = [*(kept.outgoing or ()), *held]
        return results

    async def _save_due(self, sup: Group, cell: Cell, instance: Actor) -> bool:
        """Save when due and answer what waited; a failed save stops the instance (reloaded next time)."""
        if not self.needs_save(cell, instance):
            self.answer(cell, None)  # nothing unsaved: the replies can go now
            await self._send_outgoing(sup, cell)
            return True
        if not self.due(cell):
            return True
        error = await self.save(cell, sup.state_key(cell))
        if error is None:
            await self._send_outgoing(sup, cell)
            return True
        self._of(cell).outgoing = None  # the changes they followed are dropped
        log.warning(
            "actor.state_not_saved",
            app=sup.app,
            group=sup.name,
            key=cell.key,
            error=repr(error),
            version=self._of(cell).version,
        )
        await sup.stop_instance(cell, "actor.stopped", save=False, reason=type(error).__name__)
        return False

    # -- saving -------------------------------------------------------------------------------

    def needs_save(self, cell: Cell, instance: Actor) -> bool:
        """Whether the state or the window changed since the last save (counts a changed message)."""
        kept = self._of(cell)
        if self.store is None or self.state_type is None:
            return False
        data = _encoder.encode(instance.state)  # type: ignore[attr-defined]
        changed = data != kept.saved or kept.seen_changed
        if changed:
            kept.unsaved += 1
            kept.pending = data
        return changed or kept.unsaved > 0

    def due(self, cell: Cell, *, force: bool = False) -> bool:
        """Whether to save now: enough unsaved changes, an empty mailbox, or forced."""
        kept = self._of(cell)
        return kept.unsaved > 0 and (force or kept.unsaved >= self.save_every or not cell.mailbox)

    async def save(self, cell: Cell, key: str) -> Exception | None:
        """Save the cell's pending state; answer what waited on it. The error, if it failed."""
        kept = self._of(cell)
        error: Exception | None = None
        data = kept.pending
        if self.store is not None and data is not None and kept.unsaved:
            if len(data) > self.max_state_size:
                error = StateTooLarge(
                    f"state of {self.namespace} {key!r} is {len(data):,} bytes, "
                    f"over max_state_size {self.max_state_size:,}: not saved"
                )
            else:
                record = _encoder.encode(_Record(msgspec.Raw(data), kept.seen or {}))
                try:
                    kept.version = await self.store.save(self.namespace, key, record, kept.version)
                except StaleStateError as exc:
                    self.stale += 1
                    error = exc
                except Exception as exc:  # noqa: BLE001 - any database failure: nothing was saved
                    error = StateStoreError(f"saving the state of {self.namespace} {key!r} failed: {exc!r}")
                else:
                    self.saves += 1
                    kept.saved, kept.pending, kept.unsaved, kept.seen_changed = data, None, 0, False
        self.answer(cell, error)
        return error

    def answer(self, cell: Cell, error: Exception | None) -> None:
        """Send the held replies (or, when the save failed, the error) and finish their queries."""
        kept = self._of(cell)
        deferred, kept.deferred = kept.deferred, None
        for query, result in deferred or ():
            if error is None:
                reply(query, result)
            else:
                reply_error(query, error)
            query.drop()
