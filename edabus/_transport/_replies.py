"""Replies to Zenoh queries: collected on the requesting side, sent on the serving side.

A request is a Zenoh query to every group that handles its key (target ALL, no
consolidation). `Replies` gathers the answers on Zenoh's thread and settles the
waiting task on the loop; `settle` turns the deciding reply into a value or an
error; `reply` and `reply_error` answer a query from a handler's outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import msgspec
import zenoh

from edabus._exceptions import RemoteError, RequestTimeout
from edabus._logging import get_logger
from edabus._model._message import Message, encode
from edabus._model._wire import ErrorReply, Meta, decode_meta, encode_meta

from ._bridge import Waker

__all__ = ["NIL", "Replies", "is_decisive", "reply", "reply_error", "session_of", "settle"]

log = get_logger(__name__)

NIL = b"\xc0"  # msgpack nil: the payload of a reply from a handler that returned None
_error_decoder = msgspec.msgpack.Decoder(ErrorReply)


def session_of(reply: zenoh.Reply) -> str | None:
    """The Zenoh session id of whoever sent ``reply`` (its replier id names the queryable too)."""
    replier = reply.replier_id
    return None if replier is None else str(replier.zid)


class Replies:
    """Collects the replies of one Zenoh query; settled on the loop thread.

    The waiting task is woken once, when what it waits for has happened (the first
    decisive reply, or the end of the query): a wake-up from Zenoh's thread costs a
    self-pipe write and a loop iteration, measured at tens of µs here.
    """

    def __init__(
        self, is_decisive: Callable[[zenoh.Reply], bool] | None = None, *, trusted: frozenset[str] | None = None
    ) -> None:
        self.replies: list[zenoh.Reply] = []
        self.trusted = trusted  # the sessions whose Zenoh replies count (None: any)
        self.untrusted = 0
        self.final = False
        self.decisive: zenoh.Reply | None = None
        self._is_decisive = is_decisive
        self._waker = Waker()
        self._parts = 1  # the Zenoh query, plus each local group asked in-process (`_local`)
        self._event: anyio.Event | None = None  # the waiter's, while it waits
        self._first_decisive = False
        self._woken = False

    def on_reply(self, reply: zenoh.Reply) -> None:  # Zenoh's thread
        self.replies.append(reply)
        if self.decisive is None and self._is_decisive is not None and self._is_decisive(reply):
            self.decisive = reply
            if self._first_decisive:
                self._wake()

    def on_final(self) -> None:  # Zenoh's thread
        self.part_done()

    def expect(self, parts: int) -> None:
        """Wait for ``parts`` more answerers (local groups) before the replies are final."""
        self._parts += parts

    def part_done(self) -> None:
        """One answerer is done (Zenoh's query is final, or a local group finished)."""
        self._parts -= 1
        if self._parts <= 0:
            self.final = True
            self._wake()

    def _wake(self) -> None:
        if not self._woken:
            self._woken = True
            self._waker(self._set)

    def _set(self) -> None:  # on the loop
        if self._event is not None:
            self._event.set()

    def _on_remote_reply(self, reply: zenoh.Reply) -> None:  # Zenoh's thread
        trusted = self.trusted
        if trusted is not None and session_of(reply) not in trusted:
            self.untrusted += 1  # not a member of the group that serves the key: a forgery, left out
            return
        self.on_reply(reply)

    def callback(self) -> zenoh.handlers.Callback[zenoh.Reply]:
        return zenoh.handlers.Callback(self._on_remote_reply, self.on_final, indirect=False)

    def _done(self) -> bool:
        return self.final or (self._first_decisive and self.decisive is not None)

    async def wait(self, *, first_decisive: bool = False) -> None:
        """Wait until the query is final (or, with ``first_decisive``, a decisive reply came)."""
        self._first_decisive = first_decisive
        if self._done():
            return
        self._event = anyio.Event()
        # Re-check after the event is in place: a callback may have come in between.
        if not self._done():
            await self._event.wait()


def is_decisive(reply: zenoh.Reply) -> bool:
    """A reply that settles a request: an error, or an answer that is not a bare ack."""
    ok = reply.ok
    return ok is None or ok.payload.to_bytes() != NIL


def settle(reply: zenoh.Reply, key: str) -> tuple[bytes | None, Meta]:
    ok = reply.ok
    if ok is not None:
        attachment = ok.attachment
        return ok.payload.to_bytes(), decode_meta(attachment.to_bytes() if attachment is not None else None)
    raw = reply.err.payload.to_bytes() if reply.err is not None else b""
    try:
        err = _error_decoder.decode(raw)
    except Exception:  # noqa: BLE001 - not an edabus error reply (it may be anyone's): its text
        text = raw[:1000].decode(errors="replace")
        if text == "Timeout":
            raise RequestTimeout(f"no reply to the request on {key!r} before Zenoh's timeout") from None
        raise RemoteError("ZenohError", text, key) from None
    raise RemoteError(err.type, err.message, key)


def reply(query: zenoh.Query, result: Any) -> None:
    type_name = type(result).__edabus_type__ if isinstance(result, Message) else ""
    try:
        payload = encode(result)
    except (TypeError, ValueError) as exc:  # the handler returned something msgpack cannot carry
        reply_error(query, exc)
        return
    try:
        query.reply(query.key_expr, payload, attachment=encode_meta(Meta(type=type_name)))
    except zenoh.ZError:
        log.debug("reply.failed", key=str(query.key_expr))


def reply_error(query: zenoh.Query, exc: BaseException) -> None:
    try:
        query.reply_err(encode(ErrorReply(type=type(exc).__name__, message=str(exc))))
    except zenoh.ZError:
        log.debug("reply.failed", key=str(query.key_expr))
