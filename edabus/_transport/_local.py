"""Requests served in this process: a group on the requester's own node, without a Zenoh round trip.

A request is a Zenoh query to every group that handles its key. When the bus
hosts a node with such a group, that group gets the request straight into its
inbox, as a `LocalQuery` that answers the requester's `Replies` directly; a
Zenoh query still goes to the groups of other processes (``allowed_destination``
REMOTE), unless no queryable of another process matches the type's key
expression (a `Querier`'s matching status says so). The requester sees the same
replies as before, in the same way: the first that carries a value or an error
settles it, and acknowledgements alone settle it once every part is done.

Order is kept: a put from this process reaches its group's inbox synchronously,
so a request sent after it is queued behind it, as through Zenoh.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import zenoh

from edabus._model._envelope import Envelope

if TYPE_CHECKING:
    from edabus._model._message import Message

    from ._replies import Replies

__all__ = ["LocalQuery", "LocalRoutes"]


class _Bytes:
    """What a reply's payload or attachment offers: ``to_bytes()``."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def to_bytes(self) -> bytes:
        return self._data


class _Answer:
    """A sample or error of a local reply, shaped as Zenoh's: ``payload``, ``attachment``."""

    __slots__ = ("attachment", "payload")

    def __init__(self, payload: bytes, attachment: bytes | None) -> None:
        self.payload = _Bytes(payload)
        self.attachment = _Bytes(attachment) if attachment is not None else None


class _LocalReply:
    """A reply as `Replies` reads one: ``ok`` or ``err``."""

    __slots__ = ("err", "ok")

    def __init__(self, ok: _Answer | None, err: _Answer | None) -> None:
        self.ok = ok
        self.err = err


class LocalQuery:
    """What a supervisor needs of a `zenoh.Query`, answering a requester of this process."""

    __slots__ = ("_done", "_replies", "key_expr")

    def __init__(self, key: str, replies: Replies) -> None:
        self.key_expr = key
        self._replies = replies
        self._done = False

    def reply(self, key_expr: object, payload: bytes, *, attachment: bytes | None = None) -> None:  # noqa: ARG002
        if not self._done:
            self._replies.on_reply(_LocalReply(_Answer(bytes(payload), attachment), None))  # type: ignore[arg-type]

    def reply_err(self, payload: bytes) -> None:
        if not self._done:
            self._replies.on_reply(_LocalReply(None, _Answer(bytes(payload), None)))  # type: ignore[arg-type]

    def drop(self) -> None:
        """Finish this group's part of the request (with or without a reply)."""
        if not self._done:
            self._done = True
            self._replies.part_done()


Deliver = Callable[[type["Message"], Envelope, Any], Awaitable[None]]


class LocalRoutes:
    """The message types the bus's own node serves, and whether other processes serve them too."""

    def __init__(self, session: zenoh.Session) -> None:
        self._session = session
        self._routes: list[tuple[type[Message], Deliver]] = []
        self._queriers: dict[str, zenoh.Querier] = {}
        self._listeners: list[Any] = []
        self._remote_now: dict[str, bool] = {}  # pattern: a queryable of another process matches it

    def __bool__(self) -> bool:
        return bool(self._routes)

    def add(self, message_type: type[Message], deliver: Deliver) -> None:
        """Serve ``message_type`` requests with ``deliver`` (into a group, in its arrival order)."""
        self._routes.append((message_type, deliver))

    def clear(self) -> None:
        """The node stops: requests go through Zenoh again."""
        self._routes.clear()
        for listener in self._listeners:
            listener.undeclare()
        for querier in self._queriers.values():
            querier.undeclare()
        self._listeners.clear()
        self._queriers.clear()
        self._remote_now.clear()

    async def serve(self, key: str, payload: bytes, attachment: bytes, replies: Replies) -> bool | None:
        """Give the request to every local group whose type matches ``key``.

        Returns None when no local group serves it (send it through Zenoh as usual);
        else whether a queryable of another process may serve it too.
        """
        routes = [(t, deliver) for t, deliver in self._routes if t.__edabus_key__.parse(key) is not None]  # type: ignore[union-attr]
        if not routes:
            return None
        replies.expect(len(routes))
        remote = any(self._remote(t) for t, _ in routes)
        for message_type, deliver in routes:
            await deliver(message_type, Envelope(key, payload, attachment), LocalQuery(key, replies))
        return remote

    def _remote(self, message_type: type[Message]) -> bool:
        pattern = message_type.__edabus_key__.pattern  # type: ignore[union-attr]
        remote = self._remote_now.get(pattern)
        if remote is None:
            # A querier to other processes only, and a listener that keeps its matching
            # status current: asking the status per request costs about 20 µs.
            querier = self._queriers[pattern] = self._session.declare_querier(
                pattern, target=zenoh.QueryTarget.ALL, allowed_destination=zenoh.Locality.REMOTE
            )
            status = querier.matching_status  # an object with .matching (the stub says bool)
            remote = self._remote_now[pattern] = bool(getattr(status, "matching", status))

            def on_change(status: Any, pattern: str = pattern) -> None:
                self._remote_now[pattern] = bool(status.matching)

            self._listeners.append(
                querier.declare_matching_listener(zenoh.handlers.Callback(on_change, indirect=False))
            )
        return remote
