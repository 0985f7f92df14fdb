"""The bus: one Zenoh session, seen from async code.

`connect()` opens it; `Bus` publishes, requests, subscribes and watches
liveliness. It knows nothing of actors. Zenoh calls back on its own threads;
every callback here only queues or wakes the loop (`_bridge`), so nothing of
ours runs on Zenoh's threads for long, and nothing runs after close.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import anyio
import msgspec
import zenoh

from edabus._exceptions import BusClosedError, DecodeError, NoRouteError, RequestTimeout, Undelivered
from edabus._logging import get_logger
from edabus._model._message import Message, decode_message, encode, key_for, message_type
from edabus._model._wire import Meta, barrier_key, encode_meta, member_key

from ._bridge import Inbox
from ._credit import wait_for_credit
from ._local import LocalRoutes
from ._outbox import DEFAULT_ACK_TIMEOUT, DEFAULT_MAX_UNACKED, Outbox
from ._replies import Replies, is_decisive, settle
from ._routing import NoRouting, Routing
from ._subscription import Subscription

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._credit import Window

__all__ = ["Bus"]

log = get_logger(__name__)

_R = TypeVar("_R")
_BLOCK = zenoh.CongestionControl.BLOCK

DEFAULT_REQUEST_TIMEOUT = 5.0


class Bus:
    """One Zenoh session: publish, request, subscribe, liveliness.

    Open it with `connect()`. Publishing uses reliable transport and congestion
    control BLOCK: a slow receiver slows the publisher; nothing is dropped silently.
    """

    def __init__(
        self,
        session: zenoh.Session,
        *,
        node_id: str,
        drain_timeout: float,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        max_unacked: int = DEFAULT_MAX_UNACKED,
    ) -> None:
        self._session = session
        self.node_id = node_id
        self.drain_timeout = drain_timeout
        self.ack_timeout = ack_timeout
        self.max_unacked = max_unacked
        self._tg: TaskGroup | None = None  # set by connect(): where the bus's own tasks run
        self._local_routes = LocalRoutes(session)  # filled by the node this bus hosts
        self._router: Routing = NoRouting()  # connect() puts the cluster's in place
        self._outbox: Outbox | None = None
        self._ids = itertools.count(1)
        self._closed = False
        self._published = False
        self._subscriptions: set[Subscription] = set()
        # Inboxes of the node hosted on this bus that a local put just filled: the publisher
        # (on the loop thread, where a put delivers synchronously) waits for their room.
        self._pressured: set[Inbox[Any]] = set()
        self._hosting = False

    @property
    def closed(self) -> bool:
        """Whether the bus has been closed."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            msg = "the bus is closed"
            raise BusClosedError(msg)

    def _next_meta(self, type_name: str, trace: str = "") -> Meta:
        """Fresh metadata for a message this bus sends."""
        return Meta(type=type_name, id=next(self._ids), sender=self.node_id, trace=trace, sent=time.time())

    async def publish(
        self,
        msg: Message,
        *,
        key: str | None = None,
        trace: str = "",
        backpressure: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Publish a message on its key (or on ``key``).

        An explicit ``key`` must be concrete (no wildcard, no blank chunk) and fit the
        type's template with the message's own key fields; else `KeyValueError`.

        At most once by default (fire and forget). A ``reliable=True`` message type is
        delivered at least once: the bus keeps it until its owner acknowledges it and
        resends it after a failover or timeout (waiting here while ``max_unacked``
        are unacknowledged); see `wait_delivered`. Where a group of several nodes takes
        the message, it goes straight to the node that owns it (docs/cluster.md).

        Flow control: each node grants this bus a window of credit per group; while a
        group it publishes to has not taken in a window's worth, this waits (at most
        ``timeout`` seconds, then `PublishTimeout`: the message was not sent). A
        message published on an explicit ``key`` is not held back.
        ``backpressure=False`` never waits (actors publish so: one waiting on its own
        group would wait for itself); its messages still count against the window, and
        a reliable one is still kept until acknowledged (past ``max_unacked`` if need be).
        """
        cls = type(msg)
        if key is not None:
            key = key_for(msg, key)
        if cls.__edabus_reliable__:  # kept and resent until acknowledged; held back by max_unacked
            self._check_open()
            await self.outbox.send(
                msg.key() if key is None else key, encode(msg), cls.__edabus_type__, trace, wait=backpressure
            )
            return
        deadline: float | None = None
        while (full := self._send(msg, cls, key, trace, wait=backpressure)) is not None:
            if deadline is None:
                deadline = anyio.current_time() + (math.inf if timeout is None else timeout)
            self._check_open()
            await wait_for_credit(full, deadline, cls.__name__)
        if self._pressured:
            await self._wait_pressure(backpressure=backpressure)

    def _send(self, msg: Message, cls: type[Message], key: str | None, trace: str, *, wait: bool) -> Window | None:
        """Put ``msg`` where it goes and count it against the windows it uses; or the full window to wait for."""
        plan = None
        windows: Sequence[Window] = ()
        router = self._router
        if key is None:
            key = msg.key()
            plan = router.plan(cls)
            if plan is not None:  # straight to each matching group's owner (`_router`)
                targets = [(route, route.target(msg)) for route in plan]
                windows = [w for route, node in targets if (w := route.windows.get(node)) is not None]
            else:
                windows = router.windows(cls)
        if wait:
            for window in windows:
                if window.full():
                    return window
        payload = encode(msg)
        attachment = encode_meta(self._next_meta(cls.__edabus_type__, trace))
        if plan is None:
            self._put(key, payload, attachment)
        else:
            for route, node in targets:
                self._put(route.prefixes[node] + key, payload, attachment)
        if windows:
            size = len(payload)
            for window in windows:
                window.count(size)
        return None

    async def publish_raw(
        self, key: str, payload: bytes, *, type_name: str = "", trace: str = "", backpressure: bool = True
    ) -> None:
        """Publish raw payload bytes on a key, with edabus metadata.

        With ``backpressure`` (the default) a publish that filled a local group's inbox
        waits for room; actors publish without it, since an actor waiting on its own
        group could wait forever.
        """
        self._put(key, payload, encode_meta(self._next_meta(type_name, trace)))
        if self._pressured:
            await self._wait_pressure(backpressure=backpressure)

    async def _wait_pressure(self, *, backpressure: bool) -> None:
        """A local put filled a group's inbox: wait for its room (unless told not to)."""
        pressured, self._pressured = self._pressured, set()
        if backpressure:
            for inbox in pressured:
                await inbox.wait_room()

    @property
    def outbox(self) -> Outbox:
        """The reliable messages not acknowledged yet (made on first use)."""
        if self._outbox is None:
            if self._tg is None:
                msg = "reliable messages need a bus opened with edabus.connect()"
                raise BusClosedError(msg)
            self._outbox = Outbox(
                self._session,
                self._tg,
                meta=self._next_meta,
                trusted=lambda key: self._router.repliers(key),  # noqa: PLW0108 - the router in place when asked
                sent=self._note_published,
                stopped=lambda: self._closed,
                ack_timeout=self.ack_timeout,
                max_unacked=self.max_unacked,
            )
        return self._outbox

    async def wait_delivered(self, timeout: float = 30.0) -> None:
        """Wait until every reliable message this bus sent was acknowledged by its owner.

        Raises:
            Undelivered: some were not, within ``timeout`` seconds (they are still kept).

        """
        if self._outbox is not None:
            await self._outbox.wait_delivered(timeout)

    def _note_published(self) -> None:
        """Something left this bus that a close must drain."""
        self._published = True

    def _note_pressure(self, inbox: Inbox[Any]) -> None:
        """A local put filled ``inbox`` (called by the inbox, on the loop thread)."""
        self._pressured.add(inbox)

    def _put(self, key: str, payload: bytes, attachment: bytes | None = None) -> None:
        """The bare put: reliable, congestion control BLOCK. May block while the bus is congested."""
        self._check_open()
        try:
            self._session.put(key, payload, attachment=attachment, congestion_control=_BLOCK)
        except zenoh.ZError as exc:
            # Not `session.is_closed()`: it can deadlock with Zenoh's threads (see Router.close).
            if self._closed or str(exc) == "session closed":
                raise BusClosedError(str(exc)) from exc
            raise
        self._published = True

    @overload
    async def request(
        self, msg: Message, *, reply_type: type[_R], timeout: float = ..., key: str | None = ..., trace: str = ...
    ) -> _R: ...
    @overload
    async def request(
        self, msg: Message, *, reply_type: None = ..., timeout: float = ..., key: str | None = ..., trace: str = ...
    ) -> Any: ...
    async def request(
        self,
        msg: Message,
        *,
        reply_type: type[Any] | None = None,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
        key: str | None = None,
        trace: str = "",
    ) -> Any:
        """Send a message as a request and return the handler's reply.

        The reply is decoded as ``reply_type`` if given, else as the registered type
        named in its metadata, else as plain msgpack data.

        Raises:
            RemoteError: the handler raised.
            RequestTimeout: no reply within ``timeout`` seconds.
            NoRouteError: no live group handles this key.
            DecodeError: the reply does not decode as its type.
            KeyValueError: ``key`` is not concrete, or does not fit the message.

        """
        key = key_for(msg, key)
        payload, meta = await self.request_raw(
            key, encode(msg), type_name=type(msg).__edabus_type__, timeout=timeout, trace=trace
        )
        if payload is None:
            return None
        cls = reply_type or message_type(meta.type)
        if isinstance(cls, type) and issubclass(cls, Message):
            return decode_message(cls, payload)
        try:
            return msgspec.msgpack.decode(payload) if cls is None else msgspec.msgpack.decode(payload, type=cls)
        except Exception as exc:  # a reply is input from the bus like any other
            raise DecodeError(f"the reply to {key!r} does not decode: {type(exc).__name__}: {exc}") from exc

    async def request_raw(
        self,
        key: str,
        payload: bytes,
        *,
        type_name: str = "",
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
        trace: str = "",
    ) -> tuple[bytes | None, Meta]:
        """Send raw payload bytes as a request; the reply's payload (None for an ack) and metadata."""
        self._check_open()
        # Where a live edabus group serves the key, only its members' sessions may answer.
        replies = Replies(is_decisive, trusted=self._router.repliers(key))
        attachment = encode_meta(self._next_meta(type_name, trace))
        try:
            with anyio.fail_after(timeout + 1.0):
                # Groups of our own node are asked in-process; Zenoh carries it to the others.
                local = self._local_routes
                remote = await local.serve(key, payload, attachment, replies) if local else None
                if remote is False:
                    replies.part_done()  # no other process serves it: no Zenoh query
                else:
                    # Not cancelled once decided: the query ends by itself (its owner alone
                    # answers, within ``timeout``), and a cancel costs about 50 µs here.
                    options = {} if remote is None else {"allowed_destination": zenoh.Locality.REMOTE}
                    self._get(key, replies, timeout=timeout, payload=payload, attachment=attachment, **options)
                await replies.wait(first_decisive=True)
                if replies.decisive is not None:
                    return settle(replies.decisive, key)
        except TimeoutError:
            raise RequestTimeout(f"no reply to the request on {key!r} within {timeout} s") from None
        if replies.replies:
            return None, Meta()  # every handler acknowledged with None
        msg = f"no live group answered the request on {key!r} (none serves it, or its owner is changing)"
        raise NoRouteError(msg)

    async def query(self, selector: str, *, timeout: float = 2.0, payload: bytes | None = None) -> list[zenoh.Reply]:
        """Every reply to a query sent to all matching queryables, once the query is final."""
        self._check_open()
        replies = Replies()
        self._get(selector, replies, timeout=timeout, payload=payload)
        await replies.wait()
        return replies.replies

    def _get(self, selector: str, replies: Replies, **options: Any) -> None:
        """A query to every matching queryable, every reply kept (no consolidation)."""
        self._session.get(
            selector,
            replies.callback(),
            target=zenoh.QueryTarget.ALL,
            consolidation=zenoh.ConsolidationMode.NONE,
            **options,
        )

    async def live_tokens(self, key_expr: str, *, timeout: float = 2.0) -> list[str]:
        """The keys of the liveliness tokens alive now that match ``key_expr``."""
        self._check_open()
        replies = Replies()
        # Zenoh ends a liveliness get by dropping its callback while it holds the
        # session's lock: `Replies.on_final` only schedules a wake-up, never blocks.
        self._session.liveliness().get(key_expr, replies.callback(), timeout=timeout)
        await replies.wait()
        return sorted(str(r.ok.key_expr) for r in replies.replies if r.ok is not None)

    async def wait_for_token(self, key_expr: str, *, timeout: float) -> str:
        """Wait until a liveliness token matching ``key_expr`` is alive; return its key."""
        self._check_open()
        inbox: Inbox[str] = Inbox(64)

        def on_change(sample: zenoh.Sample) -> None:
            if sample.kind == zenoh.SampleKind.PUT:
                inbox.push(str(sample.key_expr))

        sub = self._session.liveliness().declare_subscriber(
            key_expr, zenoh.handlers.Callback(on_change, indirect=False), history=True
        )
        try:
            with anyio.fail_after(timeout):
                return (await inbox.get_batch(1))[0]
        finally:
            sub.undeclare()
            inbox.close()

    async def wait_for_group(self, app: str, group: str = "*", *, timeout: float = 10.0) -> str:
        """Wait until a node hosting ``app``'s ``group`` is live (any group by default)."""
        return await self.wait_for_token(member_key(app, group), timeout=timeout)

    def subscribe(self, key_expr: str, *, capacity: int = 10_000) -> Subscription:
        """Subscribe to a key expression; use as ``async with bus.subscribe(k) as sub: async for e in sub``."""
        self._check_open()
        sub = Subscription(self._session, key_expr, capacity, self._subscriptions.discard)
        self._subscriptions.add(sub)
        return sub

    async def drain(self, *, timeout: float | None = None) -> bool:
        """Wait until every node has taken in what this bus sent before; False on timeout.

        Zenoh's close() can lose a stream's tail (a TCP reset during its linger
        discards unsent data); a barrier query on the data's priority is answered
        only after that data (docs/wire-format.md, "Start-up and close").
        """
        self._check_open()
        replies = await self._ask_each_app(lambda app: barrier_key(app, "*"), timeout or self.drain_timeout)
        return all(r.ok is not None for r in replies)

    async def _ask_each_app(self, key_of: Callable[[str], str], timeout: float) -> list[zenoh.Reply]:
        """Query ``key_of(app)`` for every app with a live member, concurrently; every reply.

        Per app: a closed bus refuses a question about every app at once (``*``), with no reply.
        """
        replies: list[zenoh.Reply] = []

        async def ask(app: str) -> None:
            replies.extend(await self.query(key_of(app), timeout=timeout))

        async with anyio.create_task_group() as tg:
            for app in self._router.apps():
                tg.start_soon(ask, app)
        return replies

    async def aclose(self) -> None:
        """Drain what this bus published, then close the session. Idempotent."""
        if self._closed:
            return
        try:
            if self._outbox is not None and self._outbox.unacked and self.drain_timeout > 0:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._outbox.wait_delivered(self.drain_timeout)
                    except Undelivered as exc:
                        log.warning("bus.undelivered", node=self.node_id, error=str(exc))
            if self._published and self.drain_timeout > 0:
                with anyio.CancelScope(shield=True), anyio.move_on_after(self.drain_timeout + 1.0):
                    if not await self.drain():
                        log.warning("bus.drain_incomplete", node=self.node_id)
        finally:
            self._closed = True
            self._router.close()
            for sub in list(self._subscriptions):
                sub.close()
            self._session.close()
            log.debug("bus.closed", node=self.node_id)
