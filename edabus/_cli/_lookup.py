"""What `edabus publish` and `request` ask of the bus: the type behind a key, and its fields checked.

The command needs none of the user's code: the bus already follows every live
group's catalog (`_router`), so the type behind a concrete key is known there, and
the node that lists it validates the JSON fields against the real msgspec type
(``@edabus/node/{node}/validate``), for the app and group that listed it: two apps
on one bus may name a type alike.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import msgspec

from edabus._exceptions import DecodeError, KeyValueError
from edabus._model._keys import check_concrete_key
from edabus._model._wire import CatalogEntry, ErrorReply, ValidateRequest, decode_untrusted, validate_key

from ._args import UsageError
from ._tail import fits

if TYPE_CHECKING:
    from edabus._transport._bus import Bus

__all__ = ["prepare"]

_error_decoder = msgspec.msgpack.Decoder(ErrorReply)


def _hosts(bus: Bus, key: str) -> list[tuple[str, CatalogEntry]]:
    """(node, entry) for each live node of each group whose type takes ``key``, as the bus follows them."""
    members = bus._router.members()
    return [
        (node, entry)
        for entry in bus._router.entries()
        if fits(entry, key)
        for node in members.get((entry.app, entry.group), ())
    ]


def _fields(text: str) -> tuple[dict[str, object], bytes]:
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"invalid JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise UsageError("the message must be a JSON object of its fields")
    try:
        return fields, msgspec.msgpack.encode(fields)
    except OverflowError:
        raise UsageError("the JSON holds an integer beyond 64 bits, which msgpack cannot carry") from None


async def prepare(bus: Bus, key: str, text: str, timeout: float) -> tuple[bytes, CatalogEntry | None]:
    """The payload for ``text`` on ``key``, and the catalog entry of the live group that serves it (if any)."""
    try:
        check_concrete_key(key)
    except KeyValueError as exc:
        raise UsageError(str(exc)) from None
    fields, payload = _fields(text)
    hosts = _hosts(bus, key)
    if not hosts:
        return payload, None
    node, entry = hosts[0]
    request = ValidateRequest(type=entry.type, fields=fields, key=key, app=entry.app, group=entry.group)
    asked = validate_key(entry.app, node)
    for reply in await bus.query(asked, timeout=timeout, payload=msgspec.msgpack.encode(request)):
        if reply.ok is not None:
            return reply.ok.payload.to_bytes(), entry
        if reply.err is not None:
            try:
                detail = decode_untrusted(_error_decoder, reply.err.payload.to_bytes(), "validation reply").message
            except DecodeError as exc:
                detail = str(exc)
            # The node's error names the type too ("Deposit: Expected `int` ..."): say it once.
            raise UsageError(
                f"the JSON does not fit {entry.type} ({entry.key}): {detail.removeprefix(entry.type + ': ')}"
            )
    return payload, entry
