"""The node's answers to tools, per app it hosts: barrier, catalog, statistics, live actors, validation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import msgspec
import zenoh

from edabus._compute._hooks import gpus_first
from edabus._logging import get_logger
from edabus._model._message import decode_message, encode
from edabus._model._wire import (
    CatalogEntry,
    ErrorReply,
    NodeCatalog,
    ValidateRequest,
    actors_key,
    barrier_key,
    catalog_key,
    stats_key,
)

if TYPE_CHECKING:
    from edabus._model._statistics import SupervisorStatistics
    from edabus._runtime._supervisor import Supervisor

__all__ = ["CONTROL_KINDS", "answer_control", "catalog", "validate"]

CONTROL_KINDS = ("barrier", "catalog", "stats", "actors", "validate")

_validate_decoder = msgspec.msgpack.Decoder(ValidateRequest)
log = get_logger(__name__)


class Answering(Protocol):
    """What a node's tool answers are read from (a `Node`)."""

    @property
    def node_id(self) -> str:
        """The node's id."""
        ...

    supervisors: dict[tuple[str, str], Supervisor]
    window: int
    window_bytes: int

    def statistics(self) -> list[SupervisorStatistics]:
        """A snapshot of every group's counters."""
        ...


def answer_control(node: Answering, kind: str, app: str, query: zenoh.Query) -> None:
    """Answer one of a node's own queries for ``app`` (on the loop, in the order they came)."""
    node_id = node.node_id
    groups = [sup for sup in node.supervisors.values() if sup.app == app]
    try:
        # Reply on this node's own key, so a reply to `@edabus/node/{app}/*/...` names its node.
        if kind == "barrier":
            query.reply(barrier_key(app, node_id), b"")
        elif kind == "catalog":
            entries = catalog(node_id, groups, window=(node.window, node.window_bytes))
            query.reply(catalog_key(app, node_id), encode(entries))
        elif kind == "stats":
            query.reply(stats_key(app, node_id), encode([s for s in node.statistics() if s.app == app]))
        elif kind == "actors":
            query.reply(actors_key(app, node_id), encode({f"{sup.app}/{sup.name}": sup.live_keys() for sup in groups}))
        elif kind == "validate":
            validate(query, groups)
    except zenoh.ZError:
        log.debug("node.reply_failed", kind=kind)
    finally:
        query.drop()


def catalog(node_id: str, supervisors: Iterable[Supervisor], *, window: tuple[int, int] = (0, 0)) -> NodeCatalog:
    """What a node handles: every (message type, group) pair, and the credit it grants publishers."""
    entries = []
    for sup in supervisors:
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
                    kind=sup.kind,
                    field=getattr(sup, "key_field", ""),
                    gpus_first=gpus_first(sup),
                    window=window[0],
                    window_bytes=window[1],
                    reliable=message_type.__edabus_reliable__,
                )
            )
    return NodeCatalog(node=node_id, entries=entries)


def validate(query: zenoh.Query, supervisors: Iterable[Supervisor]) -> None:
    """Check fields against a message type the node handles; reply its canonical payload (or the error).

    Fields the type does not have are refused (a misspelt optional field would
    otherwise take its default unseen).
    """
    try:
        request = _validate_decoder.decode(query.payload.to_bytes() if query.payload else b"")
        types = {
            t.__edabus_type__: t
            for sup in supervisors
            if request.app in ("", sup.app) and request.group in ("", sup.name)
            for t in sup.handlers
        }
        message_type = types.get(request.type)
        if message_type is None:
            query.reply_err(encode(ErrorReply("LookupError", f"no message type named {request.type!r} here")))
            return
        unknown = sorted(set(request.fields) - set(message_type.__struct_fields__))
        if unknown:
            names = ", ".join(map(repr, unknown))
            known = ", ".join(message_type.__struct_fields__)
            query.reply_err(encode(ErrorReply("ValueError", f"no field {names} (the fields are: {known})")))
            return
        msg = decode_message(message_type, encode(request.fields), request.key or None)
    except Exception as exc:  # noqa: BLE001 - a hostile request gets its error, never ends the node
        query.reply_err(encode(ErrorReply(type=type(exc).__name__, message=str(exc)[:1000])))
        return
    query.reply(query.key_expr, encode(msg))
