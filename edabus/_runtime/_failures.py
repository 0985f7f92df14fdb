"""What a group does when a handler raises (restart policy, escalation), and dead letters.

A mixin of `Supervisor`, kept apart for size: it uses the supervisor's policy,
counters, log and instance lifecycle, declared below for the type checker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edabus._exceptions import ActorEscalated, ActorStopped, InboxOverflow
from edabus._transport._replies import reply_error

from ._actor import call_hook
from ._letters import publish_dead_letter, publish_escalation
from ._policy import RestartPolicy, RestartWindow

if TYPE_CHECKING:
    import zenoh

    from edabus._logging import Logger
    from edabus._transport._bridge import Inbox
    from edabus._transport._bus import Bus, Envelope

    from ._actor import Actor
    from ._cell import Cell, Counters, Work
    from ._hooks import GroupHooks

__all__ = ["FailureHandling"]


class FailureHandling:
    """The failure half of a supervisor (see `Supervisor`)."""

    app: str
    name: str
    kind: str
    actor_cls: type[Actor]
    policy: RestartPolicy
    hooks: tuple[GroupHooks, ...]
    _counters: Counters
    _log: Logger
    _bus: Bus | None

    if TYPE_CHECKING:

        async def stop_instance(self, cell: Cell, event: str = ..., *, save: bool = ..., **fields: object) -> None: ...
        async def start_instance(self, cell: Cell) -> bool: ...
        def close_cell(self, cell: Cell, exc: Exception) -> None: ...

    async def failed(self, cell: Cell, instance: Actor, works: Sequence[Work], exc: Exception) -> bool:
        """A handler raised: answer or dead-letter ``works``, then apply the policy; False if the cell stops."""
        self._counters.failed += len(works)
        directive = self.policy.directive_for(exc)
        # An exception a handler raises is often expected (a refused withdrawal): one line, the
        # traceback at debug, where it is wanted for a bug.
        self._log.warning(
            "actor.failed",
            key=cell.key,
            message=type(works[0].msg).__name__,
            batch=len(works),
            error=repr(exc),
            directive=directive,
        )
        self._log.debug("actor.failed_traceback", key=cell.key, exc_info=exc)
        try:
            await call_hook(instance.on_failure, exc, works[0].msg)
        except Exception:  # noqa: BLE001 - a broken hook must not stop the group
            self._log.exception("actor.on_failure_failed", key=cell.key)
        for work in works:
            if work.query is not None:
                reply_error(work.query, exc)
            if work.query is None or work.spec.message_type.__edabus_reliable__:  # a requester has its error
                self.dead_letter(work.envelope, exc, logged=True)
        if directive == "resume":
            return True
        if directive == "stop":
            await self.stop_instance(cell, save=False)
            self.close_cell(cell, ActorStopped(f"{self.actor_cls.__name__}({cell.key!r}) stopped after {exc!r}"))
            await self._after_stop(cell)
            return False
        attempt = self._window(cell).attempt()
        if attempt is None and any(hook.on_exhausted(self, cell, exc) for hook in self.hooks):  # type: ignore[arg-type]
            self._reset_window(cell)  # a feature took it over (compute: on to the CPU)
            attempt = self._window(cell).attempt()
        if attempt is None:
            await self._escalate(cell, exc)
            return False
        delay = self.policy.delay_for(attempt)
        self._counters.restarts += 1
        await self.stop_instance(cell, "actor.restarting", save=False, attempt=attempt, backoff=round(delay, 6))
        await self.policy.sleep(delay)
        if not await self.start_instance(cell):
            await self._after_stop(cell)
            return False
        self._log.debug("actor.restarted", key=cell.key, attempt=attempt, backoff=round(delay, 6))
        return True

    def _reset_window(self, cell: Cell) -> None:
        cell.restarts = None

    async def _after_stop(self, cell: Cell) -> None:
        """What the kind does once a cell stopped by directive (keyed: forget it)."""

    async def _escalate(self, cell: Cell, exc: Exception) -> None:
        """The restart bound is exhausted: stop the actor, close it, publish an escalation."""
        self._counters.escalations += 1
        restarts = self.policy.max_restarts
        self._log.error("actor.escalated", key=cell.key, error=repr(exc), restarts=restarts)
        await self.stop_instance(cell, save=False)
        self._close_escalated(cell, ActorEscalated(f"{self.actor_cls.__name__}({cell.key!r}) escalated after {exc!r}"))
        if self._bus is not None and not self._bus.closed:
            key = "" if cell.key is None or self.kind != "keyed" else str(cell.key)
            publish_escalation(self._bus, app=self.app, group=self.name, key=key, exc=exc, restarts=restarts)

    def _close_escalated(self, cell: Cell, exc: ActorEscalated) -> None:
        self.close_cell(cell, exc)

    def _window(self, cell: Cell) -> RestartWindow:
        if cell.restarts is None:
            cell.restarts = RestartWindow(self.policy)
        return cell.restarts

    # -- what cannot be handled --------------------------------------------------------------

    def reject(self, work: Work, exc: BaseException) -> None:
        """A message no actor will handle: answer the requester with the error, and dead-letter it."""
        self.reject_arrival(work.envelope, work.query, exc)

    async def dead_letter_overflow(self, inbox: Inbox[Any]) -> None:
        """Dead-letter, as they come, the arrivals the group's inbox refused past its limit (it counts them)."""
        limit = inbox.capacity + inbox.overflow_limit
        node = self._bus.node_id if self._bus is not None else ""
        while rejected := await inbox.get_rejected():
            error = InboxOverflow(f"{self.app}/{self.name} on {node} already holds {limit:,} arrivals")
            for _, envelope, query in rejected:
                self.reject_arrival(envelope, query, error)

    def arrival_failed(self, envelope: Envelope, query: zenoh.Query | None, exc: Exception) -> None:
        """An arrival raised where nothing should (a bug, or input no check foresaw): tell, dead-letter, go on."""
        self._log.error("node.arrival_failed", key=envelope.key, error=repr(exc), exc_info=exc)
        try:
            self.reject_arrival(envelope, query, exc)
        except Exception:  # noqa: BLE001 - logged; the dispatcher goes on
            self._log.exception("node.reject_failed", key=envelope.key)

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
        self._counters.dead_letters += 1
        fields = {"key": envelope.key, "error_type": type(exc).__name__, "error": str(exc)}
        if logged:
            self._log.debug("message.dead_lettered", **fields)
        else:
            self._log.warning("message.dead_lettered", **fields)
        if self._bus is not None and not self._bus.closed:
            publish_dead_letter(self._bus, app=self.app, group=self.name, envelope=envelope, exc=exc, log=self._log)
