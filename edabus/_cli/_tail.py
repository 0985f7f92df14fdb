"""What ``edabus tail`` sees of a key expression, and the JSON line it prints for each message.

Puts come through a subscriber on the key expression and one on its routed form
(publishers send straight to the owner's node, `route_prefix`), each message once
(`RoutedCopies`). Requests and reliable messages travel as Zenoh queries, which no
subscriber sees; with ``queries``, a queryable on the key expression takes a copy
of each and ends its part of the query at once, with no reply. It is declared not
complete, so a querier that asks only the best-matching queryables still asks the
groups (none of theirs is complete either: every matching one is asked).

The cost, measured through a router (200 sequential calls each, bank and vault on
one node): request, acknowledgement-only request and reliable publish took the
same time with and without a copying queryable (p50 1.4-1.9 ms). But a query is
final only once every queryable it went to has ended its part: while the tail's
process is suspended (Ctrl-Z) or hung, a request that is only acknowledged (no
handler returns a value) waits for its timeout and fails, until the Zenoh lease
(10 s by default) drops the tail. So queries are watched only when asked
(``edabus tail --requests``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import zenoh

from edabus._exceptions import DecodeError
from edabus._model._envelope import Envelope, envelope_of, query_envelope
from edabus._model._wire import PREFIX, CatalogEntry, DeadLetter, decode_untrusted, route_prefix
from edabus._transport._bridge import Inbox
from edabus._transport._subscription import RoutedCopies

if TYPE_CHECKING:
    from edabus._transport._bus import Bus

__all__ = ["PUT", "QUERY", "Tap", "as_json", "dead_letter_line", "fits", "line", "type_for"]

PUT, QUERY = "put", "query"
_SHOWN = 256  # bytes of a payload shown as hex when it is not readable msgpack
_dead_letter_decoder = msgspec.msgpack.Decoder(DeadLetter)


class Tap:
    """The messages on a key expression, in arrival order: ``(PUT or QUERY, envelope)`` batches."""

    def __init__(self, bus: Bus, key_expr: str, *, queries: bool, capacity: int = 10_000) -> None:
        self._inbox: Inbox[tuple[str, Envelope]] = Inbox(capacity, name=f"tail {key_expr}")
        self._copies = RoutedCopies()
        session = bus._session
        self._declared: list[Any] = []
        internal = key_expr.startswith(PREFIX)
        if queries and not internal:
            # Declared first: once a put has come through the subscribers below, the
            # router has the queryable too (declarations travel in order).
            self._declared.append(
                session.declare_queryable(key_expr, zenoh.handlers.Callback(self._on_query, indirect=False))
            )
        self._declared.append(
            session.declare_subscriber(key_expr, zenoh.handlers.Callback(self._on_sample, indirect=False))
        )
        if not internal:
            self._declared.append(
                session.declare_subscriber(
                    f"{route_prefix('*', '*', '*')}/{key_expr}",
                    zenoh.handlers.Callback(self._on_routed, indirect=False),
                )
            )

    def _on_sample(self, sample: zenoh.Sample) -> None:  # Zenoh's thread
        self._inbox.push((PUT, envelope_of(sample)))

    def _on_routed(self, sample: zenoh.Sample) -> None:  # Zenoh's thread
        envelope = self._copies.envelope(sample)
        if envelope is not None:
            self._inbox.push((PUT, envelope))

    def _on_query(self, query: zenoh.Query) -> None:  # Zenoh's thread
        try:
            envelope = query_envelope(query)
        finally:
            query.drop()  # no reply: the tail's part of the query ends here, at once
        self._inbox.push((QUERY, envelope))

    async def receive_batch(self) -> list[tuple[str, Envelope]]:
        """The next batch; [] once closed."""
        return await self._inbox.get_batch()

    def close(self) -> None:
        """Undeclare everything; the batches end after what is already queued. Idempotent."""
        for entity in self._declared:
            entity.undeclare()
        self._declared.clear()
        self._inbox.close()


def fits(entry: CatalogEntry, key: str) -> bool:
    """Whether a concrete key is one of the entry's (a hostile catalog's pattern fits nothing)."""
    try:
        return zenoh.KeyExpr(entry.pattern).includes(zenoh.KeyExpr(key))
    except (zenoh.ZError, TypeError):
        return False


def type_for(key: str, entries: Sequence[CatalogEntry]) -> str | None:
    """The type name the live groups list for ``key``; None if none does, or they disagree."""
    names = {entry.type for entry in entries if fits(entry, key)}
    return names.pop() if len(names) == 1 else None


def as_json(payload: bytes | None, oversize: int = 0) -> str:
    """A msgpack payload as JSON; one that is not readable (or not JSON-able) as its size and first bytes in hex.

    ``oversize``: the size of a payload left unread for its size (`Envelope.oversize`).
    """
    if payload is None:
        return "null"
    if not oversize:
        # Anything on the bus may be hostile: show it, never crash on it.
        with contextlib.suppress(Exception):
            return msgspec.json.encode(msgspec.msgpack.decode(payload)).decode()
    return msgspec.json.encode({"undecodable": payload[:_SHOWN].hex(), "size": oversize or len(payload)}).decode()


def line(kind: str, envelope: Envelope, entries: Callable[[], Sequence[CatalogEntry]]) -> str:
    """The JSON line of one message: ``{"key", "kind", "type", ["raw", "seq",] "fields"}``.

    ``kind``: put, request, or reliable (a query carrying a ``seq``). A message whose
    attachment names no type is ``"raw": true``, its type what the live groups'
    catalogs (``entries``) list for its key.
    """
    meta = envelope.meta
    if kind == QUERY:
        kind = "reliable" if meta.seq else "request"
    head: dict[str, object] = {"key": envelope.key, "kind": kind, "type": meta.type or None}
    if not meta.type:
        head["type"] = type_for(envelope.key, entries())
        head["raw"] = True
    if meta.seq:
        head["seq"] = meta.seq
    text = msgspec.json.encode(head).decode()
    return f'{text[:-1]},"fields":{as_json(envelope.payload, envelope.oversize)}}}'


def dead_letter_line(envelope: Envelope) -> str | None:
    """The `DeadLetter` on ``envelope`` as JSON; None if it is not one."""
    try:
        letter = decode_untrusted(_dead_letter_decoder, envelope.payload, "dead letter")
    except DecodeError:
        return None
    return msgspec.json.encode(letter).decode()
