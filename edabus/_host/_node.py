"""`Node`: hosts apps on a bus, and routes what arrives to their supervisors.

Each group's subscribers and queryables push into the group's `Inbox` (`_ingest`),
so its arrivals keep their wire order across message types (a deposit published
before a balance request is handled before it), and Zenoh never waits for them
(flow control is credit: `_credit`). One dispatcher task per group drains its
inbox in batches and hands each arrival to the group.

Start-up order is a contract: subscribers and queryables first, liveliness
tokens last, so a live token means the group can receive.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

import anyio
import msgspec
import zenoh

from edabus._cluster._membership import Membership
from edabus._cluster._proof import Heartbeat, Lease, check_unique, declare_identities
from edabus._cluster._watch import MemberWatch, keep_leases, proven_members
from edabus._compute._gpus import local_gpus
from edabus._compute._hooks import gpus_first
from edabus._durability._store import close_stores
from edabus._exceptions import ActorStopped, EdabusError
from edabus._logging import get_logger
from edabus._model._envelope import Envelope
from edabus._model._message import Message
from edabus._model._statistics import SupervisorStatistics
from edabus._model._wire import barrier_key, credit_key, member_key, node_key, route_prefix, routes_barrier_key
from edabus._transport._bridge import DEFAULT_OVERFLOW_LIMIT, Inbox
from edabus._transport._credit import DEFAULT_WINDOW, DEFAULT_WINDOW_BYTES, Checkpoints
from edabus._transport._ingest import CONTROL, GroupIntake
from edabus._transport._puller import Puller

from ._control import CONTROL_KINDS, answer_control
from ._group import Hosted, keeps_state, stores_of

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import TaskGroup

    from edabus._durability._store import StateStore
    from edabus._runtime._supervisor import Supervisor
    from edabus._transport._bus import Bus


__all__ = ["Node"]

log = get_logger(__name__)

DEFAULT_INBOX_SIZE = 10_000  # per group
DEFAULT_STOP_TIMEOUT = 5.0  # how long a stopping node lets taken-in messages finish


# A group inbox holds arrivals (message type, envelope, query) and control items (CONTROL,
# a callable, None: membership changes), in the order Zenoh delivered them.
Arrival = tuple[Any, Any, zenoh.Query | None]


class Node:
    """Hosts apps on a bus: ``async with Node(bus, [app]) as node: ...``.

    Args:
        bus: the bus to host on.
        apps: the apps whose groups this node runs.
        inbox_size: arrivals each group may have waiting before credit is withheld
            (and a publisher on the node's own bus waits in ``publish``).
        overflow_limit: arrivals a group may hold beyond ``inbox_size``; further ones
            are refused as `InboxOverflow` (counted, logged, dead-lettered).
        window, window_bytes: the credit each edabus publisher gets per group, in
            messages and payload bytes (``window=0``: grant none).
        stop_timeout: how long a stopping node waits for the other members to take
            over (a barrier handshake) and for taken-in messages to finish.
        gpus: the GPUs this node offers (default: what cupy finds). Groups of compute
            workers go only to nodes that offer one, unless they allow the CPU.

    """

    def __init__(
        self,
        bus: Bus,
        apps: Sequence[Hosted],
        *,
        inbox_size: int = DEFAULT_INBOX_SIZE,
        overflow_limit: int = DEFAULT_OVERFLOW_LIMIT,
        window: int = DEFAULT_WINDOW,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        gpus: Sequence[int] | None = None,
    ) -> None:
        self.bus = bus
        self.stop_timeout = stop_timeout
        self.apps = tuple(apps)
        self.gpus = local_gpus() if gpus is None else list(gpus)
        hosted = [spec for app in self.apps for spec in app.groups if self.gpus or not spec.needs_gpu]
        self.skipped = [f"{spec.app}/{spec.name}" for app in self.apps for spec in app.groups if spec not in hosted]
        self.supervisors: dict[tuple[str, str], Supervisor] = {
            (spec.app, spec.name): spec.build(gpus=self.gpus) for spec in hosted
        }
        if min(inbox_size, window_bytes) < 1 or min(window, overflow_limit) < 0:
            msg = "inbox_size and window_bytes must be at least 1, window and overflow_limit at least 0"
            raise ValueError(msg)
        self.window = window
        self.window_bytes = window_bytes
        self._overflow_limit = overflow_limit
        self._inbox_size = inbox_size
        self._inboxes: dict[Supervisor, Inbox[Arrival]] = {}
        self._checkpoints: dict[Supervisor, Checkpoints] = {}
        self._control: Inbox[Callable[[], None]] | None = None
        self.memberships: dict[Supervisor, Membership] = {}
        self._leases: dict[Supervisor, Lease] = {}
        self._heartbeat = Heartbeat()
        self._dispatching: set[Supervisor] = set()
        self._tg: TaskGroup | None = None
        self._declared: list[Any] = []
        self._tokens: list[zenoh.LivelinessToken] = []
        self._opened: list[StateStore] = []
        self._intakes: dict[Supervisor, GroupIntake] = {}
        self._puller: Puller | None = None
        self._loop_thread = threading.get_ident()

    @property
    def node_id(self) -> str:
        """The id of the bus this node runs on."""
        return self.bus.node_id

    def supervisor(self, group: str, app: str | None = None) -> Supervisor:
        """The supervisor of a group (of the only app, unless ``app`` is named)."""
        for (app_name, name), sup in self.supervisors.items():
            if name == group and (app is None or app == app_name):
                return sup
        msg = f"no group {group!r} on this node"
        raise KeyError(msg)

    def hosted_apps(self) -> list[str]:
        """The names of the apps this node hosts a group of."""
        return sorted({app for app, _ in self.supervisors})

    def live_actors(self) -> dict[str, list[str]]:
        """The keys of every live actor, by ``"app/group"``."""
        return {f"{sup.app}/{sup.name}": sup.live_keys() for sup in self.supervisors.values()}

    def statistics(self) -> list[SupervisorStatistics]:
        """A snapshot of every group's counters."""
        stats = []
        for sup in self.supervisors.values():
            record = sup.statistics()
            inbox = self._inboxes.get(sup)
            if inbox is not None:
                record = msgspec.structs.replace(
                    record, inbox_depth=len(inbox), inbox_peak=inbox.peak, overflow=inbox.rejected
                )
            stats.append(record)
        return stats

    async def __aenter__(self) -> Self:
        if self.bus._hosting:
            msg = "this bus already hosts a node; host every app in one Node"
            raise EdabusError(msg)
        await check_unique(self.bus, self.node_id)  # before anything of ours is declared
        self._heartbeat.start()
        self.bus._hosting = True
        self._loop_thread = threading.get_ident()
        tg = self._tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            for store in stores_of(self.supervisors.values()):
                await store.open()
                self._opened.append(store)
            self._control = Inbox(4096, name="control")
            for sup in self.supervisors.values():
                membership = self.memberships[sup] = Membership(
                    sup.app, sup.name, self.node_id, gpus=len(self.gpus), prefer_gpus=gpus_first(sup)
                )
                # Learn the other members before taking messages: a node that thought it
                # was alone would take every key. Only tokens a node's session answers for count.
                lease = self._leases[sup] = Lease()
                membership.update(joined=await proven_members(self.bus, sup.app, sup.name, self.node_id, lease))
                sup.attach(self.bus, tg, membership)
                inbox = self._inboxes[sup] = Inbox(
                    self._inbox_size,
                    overflow_limit=self._overflow_limit,
                    on_pressure=self.bus._note_pressure,
                    keep_rejected=True,
                    name=f"{sup.app}/{sup.name}",
                )
                self._checkpoints[sup] = Checkpoints(inbox)
                tg.start_soon(self._dispatch, sup, inbox)
                tg.start_soon(sup.failures.dead_letter_overflow, inbox)
            watches = self._watch_members()
            self._declare_routes()
            tg.start_soon(self._serve_control, self._control)
            self._declared += declare_identities(self.bus._session, self.node_id, self.supervisors)
            tg.start_soon(keep_leases, self.bus, watches, self._control.push)
            for app, group in self.supervisors:
                token = member_key(app, group, self.node_id, len(self.gpus))
                self._tokens.append(self.bus._session.liveliness().declare_token(token))
        except BaseException:
            self._withdraw()
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            with anyio.CancelScope(shield=True):
                await self._close_stores()
            raise
        if self.skipped:
            log.warning("node.groups_skipped", node=self.node_id, groups=self.skipped, reason="they need a GPU")
        log.info("node.started", node=self.node_id, groups=[f"{a}/{g}" for a, g in self.supervisors], gpus=self.gpus)
        return self

    async def _close_stores(self) -> None:
        opened, self._opened = self._opened, []
        await close_stores(opened)

    def _declare_routes(self) -> None:
        """Each group's routes, all pushing into the group's inbox in wire order (see `_ingest`).

        Remote puts come through the group's lane (a channel drained in batches); puts
        from this process, requests and the rest through callbacks on Zenoh's thread,
        which move the lane's queue into the inbox first. So a group sees a put and a
        later request (on any of its types) in the order they were sent.
        """
        session = self.bus._session
        for sup, inbox in self._inboxes.items():
            route = route_prefix(sup.app, sup.name, self.node_id)
            credit = (credit_key(sup.app, sup.name, self.node_id), self._checkpoints[sup])
            self._intakes[sup] = GroupIntake(session, sup.handlers, inbox, self._loop_thread, route, credit=credit)
            for message_type in sup.handlers:
                self.bus._local_routes.add(message_type, functools.partial(self._deliver_local, sup))
        lanes = [lane for intake in self._intakes.values() for lane in intake.lanes]
        self._puller = Puller(session, lanes, name=f"edabus-ingest:{self.node_id}")
        self._puller.start()
        assert self._control is not None  # noqa: S101 - made in __aenter__
        control = self._control.push
        answer = functools.partial(answer_control, self)
        for app in self.hosted_apps():  # per app: a closed bus lets only an app's nodes answer for it
            for kind in CONTROL_KINDS:

                def on_control(query: zenoh.Query, kind: str = kind, app: str = app) -> None:
                    if kind == "barrier":
                        self._flush_all()  # answered after every arrival before it reached its group
                    control(functools.partial(answer, kind, app, query))

                key = node_key(app, self.node_id, kind)
                self._declared.append(
                    session.declare_queryable(key, zenoh.handlers.Callback(on_control, indirect=False))
                )

    async def _deliver_local(
        self, sup: Supervisor, message_type: type[Message], envelope: Envelope, query: Any
    ) -> None:
        """A request from our own bus (`_local`): straight to the group when nothing waits before it."""
        inbox = self._inboxes[sup]
        if len(inbox) or sup in self._dispatching:
            inbox.push((message_type, envelope, query))  # behind what came first
        else:
            await sup.deliver(message_type, envelope, query)

    def _flush_group(self, sup: Supervisor) -> None:
        intake = self._intakes.get(sup)
        if intake is not None:
            intake.flush()

    def _flush_all(self) -> None:
        for intake in self._intakes.values():
            intake.flush()

    async def _dispatch(self, sup: Supervisor, inbox: Inbox[Arrival]) -> None:
        """Hand a group's arrivals to it, in arrival order (waiting while an actor's mailbox is full)."""
        take, queue = sup.take, sup.queue
        checkpoints = self._checkpoints[sup]
        resumes = self._heartbeat.check()
        while batch := await inbox.get_batch():
            self._dispatching.add(sup)
            if resumes != (resumes := self._heartbeat.check()):  # stopped past the lease: peers took our keys
                sup.refresh()  # so no live actor answers from before the pause
            if checkpoints.waiting:  # credit for what this batch took out of the inbox
                checkpoints.release()
            for message_type, envelope, query in batch:
                if message_type is CONTROL:
                    envelope()  # a membership change, in its place among the arrivals
                    continue
                try:
                    work = take(message_type, envelope, query)
                    if work is not None:
                        await queue(work)  # an activation or a full mailbox: may wait
                except Exception as exc:  # noqa: BLE001 - no arrival may end the dispatcher (and so the node)
                    sup.failures.arrival_failed(envelope, query, exc)
            if checkpoints.waiting:  # held while the inbox was over its size
                checkpoints.release()
            self._dispatching.discard(sup)

    def _watch_members(self) -> list[MemberWatch]:
        """Follow each group's member tokens; each change takes effect in the group's inbox order."""
        assert self._control is not None  # noqa: S101 - made in __aenter__
        watches = [
            MemberWatch(
                self.bus,
                membership,
                push=self._inboxes[sup].push,
                flush=functools.partial(self._flush_group, sup),  # its lane is made later
                control=self._control.push,
                lease=self._leases[sup],
                # A durable group reloads what the others wrote while this node was cut off.
                on_rejoin=sup.refresh if keeps_state(sup) else None,
            )
            for sup, membership in self.memberships.items()
        ]
        self._declared += [watch.declare() for watch in watches]
        return watches

    async def _serve_control(self, inbox: Inbox[Callable[[], None]]) -> None:
        """Answer the node's own queries.

        A barrier query is answered after every arrival before it reached its group's
        inbox, since all of them were pushed from Zenoh's thread in wire order.
        """
        while batch := await inbox.get_batch():
            for task in batch:
                task()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        """Stop taking messages, let what was taken in finish (up to ``stop_timeout``), then stop actors."""
        assert self._tg is not None  # noqa: S101 - set in __aenter__
        self._withdraw_tokens()
        if exc_type is None and any(len(m.members) > 1 for m in self.memberships.values()):
            # Hand over: keep listening until every node has answered a barrier query. A
            # node answers after it saw our tokens go (they travel ahead, at control
            # priority), and its reply reaches us behind every message the router sent us
            # before that: so nothing the others let pass as ours is left unheard.
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.stop_timeout):
                for app in self.hosted_apps():
                    await self.bus.query(barrier_key(app, "*"), timeout=self.stop_timeout)
                # And every publisher that routes: none sends us anything after its reply.
                await self.bus.query(routes_barrier_key("*"), timeout=self.stop_timeout)
        self._withdraw()
        if exc_type is None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.stop_timeout):
                await self._wait_idle()
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                for sup, inbox in self._inboxes.items():
                    self._checkpoints[sup].drop()
                    for message_type, envelope, query in inbox.drain():  # arrivals no dispatcher reached
                        if message_type is not CONTROL:
                            sup.failures.reject_arrival(envelope, query, ActorStopped(f"node {self.node_id} stopped"))
                for sup in self.supervisors.values():
                    await sup.stop()  # saves what is not saved yet
                await self._close_stores()
            self.bus._hosting = False
            log.info("node.stopped", node=self.node_id)

    def _withdraw_tokens(self) -> None:
        """Withdraw our member tokens: the other members take over our keys."""
        for token in self._tokens:
            token.undeclare()
        self._tokens.clear()

    def _withdraw(self) -> None:
        """Withdraw tokens (if still declared), then routes; close the inboxes."""
        self._withdraw_tokens()
        self._heartbeat.stop()
        if not self.bus.closed:
            self.bus._local_routes.clear()
        if self._puller is not None:
            self._puller.stop()()
            self._puller = None
        for intake in self._intakes.values():
            intake.close(undeclare=not self.bus.closed)  # what reached us first is ours to handle
        self._intakes.clear()
        if not self.bus.closed:
            for entity in self._declared:
                entity.undeclare()
        self._declared.clear()
        for inbox in self._inboxes.values():
            inbox.close()
        if self._control is not None:
            self._control.close()

    def _idle(self) -> bool:
        if self._dispatching or any(len(inbox) for inbox in self._inboxes.values()):
            return False
        return not any(sup.busy() for sup in self.supervisors.values())

    async def _wait_idle(self) -> None:
        """Wait until every inbox is empty and no actor has work (checked at a short tick)."""
        # A poll, not an event: idleness spans the inboxes, the dispatchers and every actor,
        # and this runs once per node stop.
        while not self._idle():  # noqa: ASYNC110
            await anyio.sleep(0.005)
