"""The supervisor base: decoding, mailboxes and overflow, restart policy, dead letters.

A supervisor group is (app name, group name). The node hands it each message
whose key matches one of its handlers' message types; the group decodes it,
picks the actor (`_keyed`, `_pool`), and queues it in a bounded mailbox under
the group's overflow policy. Each actor handles one message at a time, in
arrival order; a failing handler meets the group's `RestartPolicy`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import zenoh

from edabus._cluster._route import forward
from edabus._exceptions import ActorEscalated, ActorStopped, DecodeError, DefinitionError, MailboxFull, PayloadTooLarge
from edabus._logging import get_logger
from edabus._model._envelope import Envelope
from edabus._model._message import Message, decode_message, too_large
from edabus._model._statistics import SupervisorStatistics
from edabus._transport._replies import reply

from ._actor import Actor, ActorContext, call_handler, call_hook, group_handlers
from ._batching import one_reply_per_message
from ._cell import Cell, Counters, Work
from ._failures import Failures
from ._hooks import GroupHooks
from ._mailbox import Mailbox
from ._policy import RestartPolicy, RestartWindow
from ._timers import Timers

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from anyio.abc import TaskGroup

    from edabus._cluster._membership import Membership
    from edabus._transport._bus import Bus

__all__ = ["Overflow", "Supervisor"]

log = get_logger(__name__)
H = TypeVar("H", bound=GroupHooks)

DEFAULT_MAILBOX_SIZE = 1000
Overflow = Literal["backpressure", "drop_newest", "drop_oldest"]
_OVERFLOWS = ("backpressure", "drop_newest", "drop_oldest")
_STOP_TIMEOUT_S = 5.0
TIMER_ENVELOPE = Envelope("", b"")  # the envelope of a message an actor scheduled to itself


class Supervisor:
    """What every supervisor kind shares; `_keyed` and `_pool` pick the actors."""

    kind = "abstract"
    routed_to_any = False  # whether any member takes a message routed to it (pools), or only its owner

    def __init__(
        self,
        app: str,
        name: str,
        actor_cls: type[Actor],
        *,
        mailbox_size: int = DEFAULT_MAILBOX_SIZE,
        overflow: Overflow = "backpressure",
        restart: RestartPolicy | None = None,
    ) -> None:
        self.handlers = group_handlers(actor_cls, self.kind, name)
        if overflow not in _OVERFLOWS:
            msg = f"group {name!r}: overflow must be one of {_OVERFLOWS}, got {overflow!r}"
            raise DefinitionError(msg)
        if mailbox_size < 1:
            msg = f"group {name!r}: mailbox_size must be at least 1, got {mailbox_size}"
            raise DefinitionError(msg)
        self.app = app
        self.name = name
        self.actor_cls = actor_cls
        self.mailbox_size = mailbox_size
        self.overflow = overflow
        self.policy = restart or RestartPolicy()
        self.counters = Counters()
        self.membership: Membership | None = None  # set by the node; None: this node owns everything
        self.hooks: tuple[GroupHooks, ...] = ()  # the features the group uses (`set_hooks`)
        self._handling: GroupHooks | None = None  # the one hook that handles messages, if any
        self.bus: Bus | None = None
        self._tg: TaskGroup | None = None
        self._node_id = ""
        self.log = log
        self.failures = Failures(self)

    # -- lifecycle, driven by the node ------------------------------------------------------

    def attach(self, bus: Bus, tg: TaskGroup, membership: Membership | None = None) -> None:
        """Bind the group to the node's bus, task group and view of the group's members."""
        self.membership = membership
        if membership is not None:
            membership.on_change(self.rebalance)
        self.bus = bus
        self._tg = tg
        self._node_id = bus.node_id
        self.log = log.bind(app=self.app, group=self.name, actor=self.actor_cls.__name__, node=bus.node_id)

    def set_hooks(self, hooks: Sequence[GroupHooks]) -> None:
        """Give the group its features' hooks (`GroupHooks`), before it takes a message."""
        handling = [hook for hook in hooks if hook.handles]
        if len(handling) > 1:
            msg = f"group {self.app}/{self.name}: more than one hook handles messages ({handling})"
            raise DefinitionError(msg)
        self.hooks = tuple(hooks)
        self._handling = handling[0] if handling else None

    def holds(self, cell: Cell, msg: Message, key: str | None) -> bool:
        """Whether one of the group's hooks keeps ``msg``, published by the cell's actor, back."""
        return any(hook.on_publish(self, cell, msg, key) for hook in self.hooks)

    def hook(self, kind: type[H]) -> H | None:
        """The group's hook of type ``kind``, or None."""
        return next((hook for hook in self.hooks if isinstance(hook, kind)), None)

    async def stop(self) -> None:
        """Stop every actor of the group (``on_stop`` runs); what is still queued is dead-lettered."""
        raise NotImplementedError

    def busy(self) -> bool:
        """Whether any actor of the group has a message queued or in hand."""
        raise NotImplementedError

    def live_keys(self) -> list[str]:
        """The keys of the live actors (keyed), ``[""]`` for a live singleton, worker numbers for a pool."""
        raise NotImplementedError

    # -- arrivals ----------------------------------------------------------------------------

    async def deliver(self, message_type: type[Message], envelope: Envelope, query: zenoh.Query | None) -> None:
        """Decode one arrival and queue it for its actor, under the overflow policy."""
        work = self.take(message_type, envelope, query)
        if work is not None:
            await self._enqueue(work)

    async def queue(self, work: Work) -> None:
        """Queue work that `take` left: activate its actor, or wait for room (or drop, by policy)."""
        await self._enqueue(work)

    def take(self, message_type: type[Message], envelope: Envelope, query: zenoh.Query | None) -> Work | None:
        """`deliver` without waiting: the work still to be queued if that needs a wait, else None.

        Most arrivals go straight into a live actor's mailbox with room; only an
        activation or a full mailbox needs the awaiting path (`_enqueue`). The
        dispatcher calls this first, saving two coroutines per message.
        """
        self.counters.received += 1
        spec = self.handlers[message_type]
        membership = self.membership
        shared = membership is not None and len(membership.members) > 1
        # Most placement keys are in the key or the metadata: let others' messages pass undecoded.
        if shared and envelope.routed and self.routed_to_any:
            shared = False  # a publisher picked this member, and any member serves it
        early = self.early_placement_key(message_type, envelope) if shared else None
        if early is not None and not membership.owns(early):  # type: ignore[union-attr]
            self._not_ours(envelope, query, early)
            return None
        try:
            if envelope.oversize:  # cut on arrival: refused undecoded
                raise PayloadTooLarge(too_large(message_type, envelope.oversize))
            msg = decode_message(message_type, envelope.payload, envelope.key)
        except DecodeError as exc:
            self.failures.reject_arrival(envelope, query, exc)
            return None
        if shared and early is None:
            placement = self.placement_key(msg, envelope)
            if not membership.owns(placement):  # type: ignore[union-attr]
                self._not_ours(envelope, query, placement)
                return None
        work = Work(msg, spec, envelope, query)
        return None if self._enqueue_nowait(work) else work

    def _not_ours(self, envelope: Envelope, query: zenoh.Query | None, placement: str) -> None:
        """Another node owns this arrival: let it pass, or, if it was routed here, pass it on.

        Every node of the group hears a plain put and judges it alike, so a non-owner
        only lets it pass (a request gets no reply from here). A routed put came to this
        node alone, sent by a publisher whose view of the members differs from ours
        (a join or departure on its way): it goes on to the owner in our view.
        """
        self.counters.not_owned += 1
        if query is not None:
            query.drop()
        elif envelope.routed:
            error = forward(self.bus, self.app, self.name, envelope, self.membership.owner(placement))  # type: ignore[arg-type, union-attr]
            if error is None:
                self.counters.forwarded += 1
            else:
                self.failures.reject_arrival(envelope, None, error)

    def early_placement_key(self, message_type: type[Message], envelope: Envelope) -> str | None:  # noqa: ARG002
        """The placement key without decoding the payload, when the key or metadata holds it."""
        return None

    def placement_key(self, msg: Message, envelope: Envelope) -> str:
        """What decides which node of the group takes a message (see `_membership`)."""
        raise NotImplementedError

    def refresh(self) -> None:
        """The node was away past its lease: retire live actors (keyed groups; pools keep nothing per key)."""

    def rebalance(self) -> None:
        """The group's members changed: let go of actors this node no longer owns."""

    async def _enqueue(self, work: Work) -> None:
        raise NotImplementedError

    def _enqueue_nowait(self, work: Work) -> bool:  # noqa: ARG002 - the kinds override it
        """Queue work if that needs no wait (its actor is live, its mailbox has room); whether it did."""
        return False

    async def _put(self, mailbox: Mailbox[Work], work: Work) -> bool:
        """Queue work under the overflow policy; False if the new work itself was dropped."""
        if not mailbox.full():
            mailbox.put_nowait(work)
            return True
        if self.overflow == "backpressure":
            await mailbox.put(work)
            return True
        self.counters.dropped += 1
        if self.overflow == "drop_newest":
            self.failures.reject(work, MailboxFull(f"mailbox of {self.name} full ({mailbox.capacity}): newest dropped"))
            return False
        self.failures.reject(
            mailbox.get_nowait(), MailboxFull(f"mailbox of {self.name} full ({mailbox.capacity}): oldest dropped")
        )
        mailbox.put_nowait(work)
        return True

    def work_for_timer(self, msg: Message) -> Work:
        """Work for a message an actor scheduled to itself."""
        spec = self.handlers.get(type(msg))
        if spec is None:
            raise ValueError(f"{self.actor_cls.__name__} has no handler for {type(msg).__name__}")
        return Work(msg, spec, TIMER_ENVELOPE, None)

    def count_timer_message(self) -> None:
        """A timer message is an arrival too (so handled + dead letters still adds up to received)."""
        self.counters.received += 1

    # -- actor instances ---------------------------------------------------------------------

    def _construct_args(self, cell: Cell) -> tuple[object, ...]:  # noqa: ARG002 - keyed passes the key
        return ()

    def _timer_deliver(self, cell: Cell) -> Callable[[Message], Awaitable[bool]]:
        raise NotImplementedError

    def delivers_to(self, msg: Message, key: object) -> bool:
        """Whether ``msg`` would go to this group's actor of ``key`` and to no other (a request to it would wait)."""
        raise NotImplementedError

    def timers_of(self, cell: Cell) -> Timers:
        """The cell's timers, made when its actor first sets one."""
        if cell.timers is None:
            assert self._tg is not None  # noqa: S101 - attached before any actor starts
            cell.timers = Timers(self._timer_deliver(cell), self._tg.start_soon, self.work_for_timer)
        return cell.timers

    async def start_instance(self, cell: Cell) -> bool:
        """Build and start the cell's actor; on failure its queued messages fail and it stops."""
        assert self.bus is not None  # noqa: S101 - attach() runs before any message
        assert self._tg is not None  # noqa: S101
        try:
            instance = self.actor_cls(*self._construct_args(cell))
            for hook in self.hooks:
                hook.on_construct(self, cell, instance)
            instance._edabus_context = ActorContext(  # noqa: SLF001 - the supervisor owns the context
                self.bus, self.app, self.name, cell.key, self._node_id, self, cell
            )
            for hook in self.hooks:
                await hook.on_activate(self, cell, instance)
            await call_hook(instance.on_start)
            cell.before = next(filter(None, (hook.before_handler(instance) for hook in self.hooks)), None)
        except Exception as exc:
            self.log.exception("actor.spawn_failed", key=cell.key)
            self.close_cell(cell, ActorStopped(f"{self.actor_cls.__name__}({cell.key!r}) failed to start: {exc!r}"))
            return False
        cell.instance = instance
        self.log.debug("actor.spawned", key=cell.key)
        return True

    async def stop_instance(
        self, cell: Cell, event: str = "actor.stopped", *, save: bool = True, **fields: object
    ) -> None:
        """Cancel the cell's timers and run ``on_stop`` (bounded); the cell keeps its mailbox.

        With ``save``, state changes not saved yet are saved; without (after a failure),
        they are dropped and the replies that waited on them get a `StateError`.
        """
        instance, cell.instance = cell.instance, None
        if cell.timers is not None:
            cell.timers.cancel_all()
            cell.timers = None  # the next instance (after a restart) gets its own, as before
        if instance is None:
            return
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_TIMEOUT_S):
                await call_hook(instance.on_stop)
        except Exception:
            self.log.exception("actor.on_stop_failed", key=cell.key)
        for hook in self.hooks:
            with anyio.CancelScope(shield=True):
                await hook.on_deactivate(self, cell, instance, save=save)
        self.log.debug(event, key=cell.key, **fields)  # routine: the cause, if any, is logged by who stops it

    # -- what the kinds do differently when actors fail (`Failures` asks) -------------------

    def restart_window(self, cell: Cell) -> RestartWindow:
        """Where the cell's restarts are counted (a pool counts them pool-wide)."""
        if cell.restarts is None:
            cell.restarts = RestartWindow(self.policy)
        return cell.restarts

    def reset_restarts(self, cell: Cell) -> None:
        """Start counting the cell's restarts afresh."""
        cell.restarts = None

    async def after_stop(self, cell: Cell) -> None:
        """What the kind does once a cell stopped by directive (keyed: forget it)."""

    def close_escalated(self, cell: Cell, exc: ActorEscalated) -> None:
        """Close a cell whose actor escalated (keyed: remember the key; pool: close the pool)."""
        self.close_cell(cell, exc)

    def close_cell(self, cell: Cell, exc: Exception) -> None:
        """Mark the cell closed and fail what is queued in it."""
        cell.stopped = True
        for work in cell.mailbox.drain():
            self.failures.reject(work, exc)

    # -- handling ----------------------------------------------------------------------------

    def state_key(self, cell: Cell) -> str:
        """The key the cell's state is stored under."""
        return str(cell.key)

    async def handle(self, cell: Cell, work: Work) -> bool:
        """Run one message on the cell's actor; False when the cell takes no more messages."""
        if self._handling is not None:
            return await self._handling.handle(self, cell, [work])
        instance = cell.instance
        assert instance is not None  # noqa: S101 - started before any message is handled
        started = time.perf_counter()
        counters = self.counters
        query = work.query
        try:
            if cell.before is not None:
                cell.before()
            result = await call_handler(work.spec, instance, work.msg)
        except Exception as exc:  # noqa: BLE001 - a failing handler meets the policy, not the node
            return await self.failures.failed(cell, instance, (work,), exc)
        else:
            counters.handled += 1
            if query is not None:
                reply(query, result)
            return True
        finally:
            counters.handler_seconds += time.perf_counter() - started
            if query is not None:
                query.drop()

    async def handle_batch(self, cell: Cell, works: list[Work]) -> bool:
        """Run a batch handler on several messages at once; each request gets its own reply."""
        if self._handling is not None:
            return await self._handling.handle(self, cell, works)
        instance = cell.instance
        assert instance is not None  # noqa: S101 - started before any message is handled
        results = await self.call(cell, instance, works)
        try:
            if isinstance(results, Exception):
                return await self.failures.failed(cell, instance, works, results)
            for work, result in zip(works, results, strict=True):
                if work.query is not None:
                    reply(work.query, result)
            return True
        finally:
            for work in works:
                if work.query is not None:
                    work.query.drop()

    async def call(self, cell: Cell, instance: Actor, works: list[Work]) -> list[Any] | Exception:
        """Call the handler of ``works`` (a batch handler with all of them): its replies, or its error."""
        started = time.perf_counter()
        spec = works[0].spec
        try:
            if cell.before is not None:
                cell.before()
            if spec.batch:
                replies = await call_handler(spec, instance, [w.msg for w in works])  # type: ignore[arg-type]
                results = one_reply_per_message(replies, len(works))
            else:
                results = [await call_handler(spec, instance, works[0].msg)]
        except Exception as exc:  # noqa: BLE001 - a failing handler meets the policy, not the node
            return exc
        else:
            self.counters.handled += len(works)
            return results
        finally:
            self.counters.handler_seconds += time.perf_counter() - started

    # -- statistics --------------------------------------------------------------------------

    def _live_and_depth(self) -> tuple[int, int, int]:
        """(live actors, messages queued now, the deepest mailbox peak)."""
        raise NotImplementedError

    def statistics(self) -> SupervisorStatistics:
        """A frozen snapshot of the group's counters."""
        live, depth, peak = self._live_and_depth()
        return SupervisorStatistics(
            app=self.app,
            group=self.name,
            kind=self.kind,
            node=self._node_id,
            live_actors=live,
            mailbox_depth=depth,
            mailbox_peak=peak,
            **dataclasses.asdict(self.counters),
        )
