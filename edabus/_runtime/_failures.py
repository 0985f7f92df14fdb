"""What a group does when a handler raises (restart policy, escalation), and dead letters.

One `Failures` per supervisor, which it holds: it uses the supervisor's policy,
counters, log and instance lifecycle (`Owner`), and asks the supervisor's kind
what differs (where restarts are counted, what a stopped or escalated actor leaves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from edabus._exceptions import ActorEscalated, ActorStopped, InboxOverflow
from edabus._transport._replies import reply_error

from ._actor import call_hook
from ._hooks import Group, GroupHooks
from ._letters import publish_dead_letter, publish_escalation

if TYPE_CHECKING:
    import zenoh

    from edabus._logging import Logger
    from edabus._model._envelope import Envelope
    from edabus._transport._bridge import Inbox
    from edabus._transport._bus import Bus

    from ._actor import Actor
    from ._cell import Cell, Counters, Work
    from ._policy import RestartPolicy, RestartWindow

__all__ = ["Failures", "Owner"]


class Owner(Group, Protocol):
    """What `Failures` uses of the supervisor that holds it."""

    @property
    def kind(self) -> str:
        """The group's kind (keyed, singleton, pool)."""
        ...

    @property
    def policy(self) -> RestartPolicy:
        """The group's restart policy."""
        ...

    @property
    def hooks(self) -> tuple[GroupHooks, ...]:
        """The group's features' hooks."""
        ...

    @property
    def counters(self) -> Counters:
        """The group's running totals."""
        ...

    @property
    def log(self) -> Logger:
        """The group's logger, bound to its names."""
        ...

    @property
    def bus(self) -> Bus | None:
        """The bus the group is attached to (None before)."""
        ...

    async def start_instance(self, cell: Cell) -> bool:
        """Build and start the cell's actor."""
        ...

    def close_cell(self, cell: Cell, exc: Exception) -> None:
        """Mark the cell closed and fail what is queued in it."""
        ...

    def restart_window(self, cell: Cell) -> RestartWindow:
        """Where the cell's restarts are counted."""
        ...

    def reset_restarts(self, cell: Cell) -> None:
        """Start counting the cell's restarts afresh."""
        ...

    async def after_stop(self, cell: Cell) -> None:
        """What the kind does once a cell stopped by directive."""
        ...

    def close_escalated(self, cell: Cell, exc: ActorEscalated) -> None:
        """Close a cell whose actor escalated."""
        ...


class Failures:
    """What one group does when a handler raises, and with what no actor will handle."""

    def __init__(self, sup: Owner) -> None:
        self._sup = sup

    async def failed(self, cell: Cell, instance: Actor, works: Sequence[Work], exc: Exception) -> bool:
        """A handler raised: answer or dead-letter ``works``, then apply the policy; False if the cell stops."""
        sup = self._sup
        sup.counters.failed += len(works)
        directive = sup.policy.directive_for(exc)
        # An exception a handler raises is often expected (a refused withdrawal): one line, the
        # traceback at debug, where it is wanted for a bug.
        sup.log.warning(
            "actor.failed",
            key=cell.key,
            message=type(works[0].msg).__name__,
            batch=len(works),
            error=repr(exc),
            directive=directive,
        )
        sup.log.debug("actor.failed_traceback", key=cell.key, exc_info=exc)
        try:
            await call_hook(instance.on_failure, exc, works[0].msg)
        except Exception:
            sup.log.exception("actor.on_failure_failed", key=cell.key)
        for work in works:
            if work.query is not None:
                reply_error(work.query, exc)
            if work.query is None or work.spec.message_type.__edabus_reliable__:  # a requester has its error
                self.dead_letter(work.envelope, exc, logged=True)
        if directive == "resume":
            return True
        if directive == "stop":
            await sup.stop_instance(cell, save=False)
            sup.close_cell(cell, ActorStopped(f"{sup.actor_cls.__name__}({cell.key!r}) stopped after {exc!r}"))
            await sup.after_stop(cell)
            return False
        attempt = sup.restart_window(cell).attempt()
        if attempt is None and any(hook.on_exhausted(sup, cell, exc) for hook in sup.hooks):
            sup.reset_restarts(cell)  # a feature took it over (compute: on to the CPU)
            attempt = sup.restart_window(cell).attempt()
        if attempt is None:
            await self._escalate(cell, exc)
            return False
        delay = sup.policy.delay_for(attempt)
        sup.counters.restarts += 1
        await sup.stop_instance(cell, "actor.restarting", save=False, attempt=attempt, backoff=round(delay, 6))
        await sup.policy.sleep(delay)
        if not await sup.start_instance(cell):
            await sup.after_stop(cell)
            return False
        sup.log.debug("actor.restarted", key=cell.key, attempt=attempt, backoff=round(delay, 6))
        return True

    async def _escalate(self, cell: Cell, exc: Exception) -> None:
        """The restart bound is exhausted: stop the actor, close it, publish an escalation."""
        sup = self._sup
        sup.counters.escalations += 1
        restarts = sup.policy.max_restarts
        sup.log.error("actor.escalated", key=cell.key, error=repr(exc), restarts=restarts)
        await sup.stop_instance(cell, save=False)
        sup.close_escalated(cell, ActorEscalated(f"{sup.actor_cls.__name__}({cell.key!r}) escalated after {exc!r}"))
        if sup.bus is not None and not sup.bus.closed:
            key = "" if cell.key is None or sup.kind != "keyed" else str(cell.key)
            publish_escalation(sup.bus, app=sup.app, group=sup.name, key=key, exc=exc, restarts=restarts)

    # -- what cannot be handled --------------------------------------------------------------

    def reject(self, work: Work, exc: BaseException) -> None:
        """A message no actor will handle: answer the requester with the error, and dead-letter it."""
        self.reject_arrival(work.envelope, work.query, exc)

    async def dead_letter_overflow(self, inbox: Inbox[Any]) -> None:
        """Dead-letter, as they come, the arrivals the group's inbox refused past its limit (it counts them)."""
        sup = self._sup
        limit = inbox.capacity + inbox.overflow_limit
        node = sup.bus.node_id if sup.bus is not None else ""
        while rejected := await inbox.get_rejected():
            error = InboxOverflow(f"{sup.app}/{sup.name} on {node} already holds {limit:,} arrivals")
            for _, envelope, query in rejected:
                self.reject_arrival(envelope, query, error)

    def arrival_failed(self, envelope: Envelope, query: zenoh.Query | None, exc: Exception) -> None:
        """An arrival raised where nothing should (a bug, or input no check foresaw): tell, dead-letter, go on."""
        self._sup.log.error("node.arrival_failed", key=envelope.key, error=repr(exc), exc_info=exc)
        try:
            self.reject_arrival(envelope, query, exc)
        except Exception:
            self._sup.log.exception("node.reject_failed", key=envelope.key)

    def reject_arrival(self, envelope: Envelope, query: zenoh.Query | None, exc: BaseException) -> None:
        """`reject`, for an arrival that never became work (it did not decode)."""
        if query is not None:
            reply_error(query, exc)
            query.drop()
        self.dead_letter(envelope, exc)

    def dead_letter(self, envelope: Envelope, exc: BaseException, *, logged: bool = False) -> None:
        """Publish a message no actor could handle on the group's dead-letter key; count and log it.

        A warning, unless ``logged``: its cause was (a handler's failure), and the letter is at debug.
        """
        self._sup.counters.dead_letters += 1
        fields = {"key": envelope.key, "error_type": type(exc).__name__, "error": str(exc)}
        if logged:
            self._sup.log.debug("message.dead_lettered", **fields)
        else:
            self._sup.log.warning("message.dead_lettered", **fields)
        sup = self._sup
        if sup.bus is not None and not sup.bus.closed:
            publish_dead_letter(sup.bus, app=sup.app, group=sup.name, envelope=envelope, exc=exc, log=sup.log)
