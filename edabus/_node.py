"""`Node`: hosts apps on a bus, and routes what arrives to their supervisors.

Every subscriber and queryable of a node pushes into one `Inbox`, from Zenoh's
own thread, so arrivals keep their wire order across message types (a deposit
published before a balance request is handled before it). One dispatcher task
drains the inbox in batches and hands each arrival to its group.

Start-up order is a contract: subscribers and queryables first, liveliness
tokens last, so a live token means the group can receive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import anyio
import msgspec
import structlog
import zenoh

from ._bridge import Inbox
from ._bus import Envelope, envelope_of
from ._exceptions import DecodeError, EdabusError
from ._message import Message, decode_message, encode
from ._statistics import SupervisorStatistics
from ._wire import (
    CatalogEntry,
    ErrorReply,
    NodeCatalog,
    ValidateRequest,
    barrier_key,
    catalog_key,
    member_key,
    stats_key,
    validate_key,
)

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import TaskGroup

    from ._app import App
    from ._bus import Bus
    from ._supervisor import Supervisor

__all__ = ["Node"]

log = structlog.get_logger(__name__)

DEFAULT_INBOX_SIZE = 10_000
DEFAULT_STOP_TIMEOUT = 5.0  # how long a stopping node lets taken-in messages finish
_validate_decoder = msgspec.msgpack.Decoder(ValidateRequest)


@dataclass(frozen=True, slots=True)
class _Route:
    supervisor: Supervisor
    message_type: type[Message]


def _query_envelope(query: zenoh.Query) -> Envelope:
    payload = query.payload
    attachment = query.attachment
    return Envelope(
        str(query.key_expr),
        payload.to_bytes() if payload is not None else b"",
        attachment.to_bytes() if attachment is not None else None,
    )


class Node:
    """Hosts apps on a bus: ``async with Node(bus, [app]) as node: ...``."""

    def __init__(
        self,
        bus: Bus,
        apps: Sequence[App],
        *,
        inbox_size: int = DEFAULT_INBOX_SIZE,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    ) -> None:
        self.bus = bus
        self.stop_timeout = stop_timeout
        self._dispatching = False
        self.apps = tuple(apps)
        self.supervisors: dict[tuple[str, str], Supervisor] = {
            (spec.app, spec.name): spec.build() for app in self.apps for spec in app.groups
        }
        self._inbox_size = inbox_size
        self._inbox: Inbox[tuple[Any, Envelope | None, zenoh.Query | None]] | None = None
        self._tg: TaskGroup | None = None
        self._declared: list[Any] = []
        self._tokens: list[zenoh.LivelinessToken] = []

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

    def statistics(self) -> list[SupervisorStatistics]:
        """A snapshot of every group's counters."""
        return [sup.statistics() for sup in self.supervisors.values()]

    async def __aenter__(self) -> Self:
        if self.bus.ingress is not None:
            msg = "this bus already hosts a node; host every app in one Node"
            raise EdabusError(msg)
        inbox = self._inbox = Inbox(self._inbox_size)
        self.bus.ingress = inbox
        tg = self._tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            for sup in self.supervisors.values():
                sup.attach(self.bus, tg)
            self._declare_routes(inbox)
            tg.start_soon(self._dispatch, inbox)
            for app, group in self.supervisors:
                self._tokens.append(self.bus.session.liveliness().declare_token(member_key(app, group, self.node_id)))
        except BaseException:
            self._withdraw()
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            raise
        log.info("node.started", node=self.node_id, groups=[f"{a}/{g}" for a, g in self.supervisors])
        return self

    def _declare_routes(self, inbox: Inbox[Any]) -> None:
        session = self.bus.session
        push = inbox.push
        for sup in self.supervisors.values():
            for message_type in sup.handlers:
                route = _Route(sup, message_type)
                pattern = message_type.__edabus_key__.pattern  # type: ignore[union-attr]

                def on_sample(sample: zenoh.Sample, route: _Route = route) -> None:
                    push((route, envelope_of(sample), None))

                def on_query(query: zenoh.Query, route: _Route = route) -> None:
                    push((route, _query_envelope(query), query))

                self._declared.append(
                    session.declare_subscriber(pattern, zenoh.handlers.Callback(on_sample, indirect=False))
                )
                self._declared.append(
                    session.declare_queryable(pattern, zenoh.handlers.Callback(on_query, indirect=False))
                )
        for kind, key in (
            ("barrier", barrier_key(self.node_id)),
            ("catalog", catalog_key(self.node_id)),
            ("stats", stats_key(self.node_id)),
            ("validate", validate_key(self.node_id)),
        ):

            def on_control(query: zenoh.Query, kind: str = kind) -> None:
                push((kind, None, query))

            self._declared.append(session.declare_queryable(key, zenoh.handlers.Callback(on_control, indirect=False)))

    async def _dispatch(self, inbox: Inbox[tuple[Any, Envelope | None, zenoh.Query | None]]) -> None:
        """Hand every arrival to its group, in arrival order; control queries are answered here."""
        while batch := await inbox.get_batch():
            self._dispatching = True
            for target, envelope, query in batch:
                if isinstance(target, _Route):
                    await target.supervisor.deliver(target.message_type, envelope, query)  # type: ignore[arg-type]
                elif query is not None:
                    self._answer_control(target, query)
            self._dispatching = False

    def _answer_control(self, kind: str, query: zenoh.Query) -> None:
        try:
            # Reply on this node's own key, so a reply to `@edabus/node/*/...` names its node.
            if kind == "barrier":
                query.reply(barrier_key(self.node_id), b"")
            elif kind == "catalog":
                query.reply(catalog_key(self.node_id), encode(self.catalog()))
            elif kind == "stats":
                query.reply(stats_key(self.node_id), encode(self.statistics()))
            elif kind == "validate":
                self._validate(query)
        except zenoh.ZError:
            log.debug("node.reply_failed", kind=kind)
        finally:
            query.drop()

    def catalog(self) -> NodeCatalog:
        """What this node handles: every (message type, group) pair."""
        entries = []
        for sup in self.supervisors.values():
            for message_type, spec in sup.handlers.items():
                template = message_type.__edabus_key__
                assert template is not None  # noqa: S101 - supervisors only accept keyed types
                reply = spec.reply_type
                entries.append(
                    CatalogEntry(
                        type=message_type.__edabus_type__,
                        key=template.template,
                        pattern=template.pattern,
                        app=sup.app,
                        group=sup.name,
                        reply=getattr(reply, "__edabus_type__", getattr(reply, "__name__", "")) if reply else "",
                    )
                )
        return NodeCatalog(node=self.node_id, entries=entries)

    def _validate(self, query: zenoh.Query) -> None:
        """Check fields against a message type this node handles; reply its canonical payload."""
        try:
            request = _validate_decoder.decode(query.payload.to_bytes() if query.payload else b"")
            types = {t.__edabus_type__: t for sup in self.supervisors.values() for t in sup.handlers}
            message_type = types.get(request.type)
            if message_type is None:
                query.reply_err(encode(ErrorReply("LookupError", f"no message type named {request.type!r} here")))
                return
            msg = decode_message(message_type, encode(request.fields), request.key or None)
        except (msgspec.MsgspecError, DecodeError) as exc:
            query.reply_err(encode(ErrorReply(type=type(exc).__name__, message=str(exc))))
            return
        query.reply(query.key_expr, encode(msg))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        """Stop taking messages, let what was taken in finish (up to ``stop_timeout``), then stop actors."""
        assert self._tg is not None  # noqa: S101 - set in __aenter__
        self._withdraw()
        if exc_type is None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.stop_timeout):
                await self._wait_idle()
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                for sup in self.supervisors.values():
                    await sup.stop()
            log.info("node.stopped", node=self.node_id)

    def _withdraw(self) -> None:
        """Withdraw tokens first (so publishers stop counting on us), then routes; close the inbox."""
        for token in self._tokens:
            token.undeclare()
        self._tokens.clear()
        if not self.bus.closed:
            for entity in self._declared:
                entity.undeclare()
        self._declared.clear()
        if self._inbox is not None:
            self._inbox.close()
        self.bus.ingress = None

    def _idle(self) -> bool:
        inbox = self._inbox
        busy = (inbox is not None and len(inbox) > 0) or self._dispatching
        return not busy and not any(sup.busy() for sup in self.supervisors.values())

    async def _wait_idle(self) -> None:
        """Wait until the inbox is empty and no actor has work (checked at a short tick)."""
        # A poll, not an event: idleness spans the inbox, the dispatcher and every actor, and
        # this runs once per node stop.
        while not self._idle():  # noqa: ASYNC110
            await anyio.sleep(0.005)
