"""The wire contract beyond the payload: attachments, internal keys, system records.

docs/wire-format.md is the prose version of this module; change both together.

- Payload: the msgpack map of a message's fields (see `_message`).
- Attachment (optional): the msgpack map of `Meta`.
- Internal keys live under the verbatim chunk ``@edabus``, which no user
  wildcard matches.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from edabus._exceptions import DecodeError

__all__ = [
    "PREFIX",
    "CatalogEntry",
    "DeadLetter",
    "ErrorReply",
    "Escalation",
    "Meta",
    "NodeCatalog",
    "NodeIdentity",
    "ValidateRequest",
    "actors_key",
    "barrier_key",
    "catalog_key",
    "credit_key",
    "dead_letter_key",
    "decode_meta",
    "decode_untrusted",
    "encode_meta",
    "escalation_key",
    "identity_key",
    "member_key",
    "node_key",
    "parse_member_key",
    "parse_node_key",
    "route_prefix",
    "routes_barrier_key",
    "stats_key",
    "validate_key",
]

PREFIX = "@edabus"
DEAD_LETTER_WHOLE = 64 * 1024  # a dead letter carries a payload up to this size whole ...
DEAD_LETTER_PREFIX = 256  # ... and only this many first bytes of a larger one

_T = TypeVar("_T")


def decode_untrusted(decoder: msgspec.msgpack.Decoder[_T], data: bytes, what: str) -> _T:
    """Decode bytes that came off the bus; whatever goes wrong becomes a `DecodeError` naming ``what``.

    Any process can put anything on the bus: besides msgspec's own errors, a deeply
    nested payload raises RecursionError, a length bomb MemoryError, an extension
    hook anything at all. None of them may end a node or a command.
    """
    try:
        return decoder.decode(data)
    except Exception as exc:  # hostile input may raise anything: reported as ours
        raise DecodeError(f"{what}: {type(exc).__name__}: {exc}") from exc


class Meta(msgspec.Struct, omit_defaults=True):
    """Message metadata, carried in the Zenoh attachment as a msgpack map.

    Every field is optional; a sender that is not edabus may omit the attachment.
    ``id`` is unique per ``sender`` (a counter), so ``(sender, id)`` names a message.
    ``seq`` and ``base`` are set on reliable messages only: ``seq`` counts the
    sender's reliable messages per key (one more each time), and ``base`` is the lowest ``seq`` the
    sender has not yet seen acknowledged on that key (docs/durability.md). ``hops`` counts how
    many times a node passed a routed message on to the owner in its own view (`route_prefix`).
    """

    type: str = ""
    id: int = 0
    sender: str = ""
    trace: str = ""
    sent: float = 0.0
    seq: int = 0
    base: int = 0
    hops: int = 0


class ErrorReply(msgspec.Struct):
    """The payload of an error reply to a request."""

    type: str
    message: str


class DeadLetter(msgspec.Struct):
    """A message no actor could handle, published on `dead_letter_key`.

    ``payload`` is the message's payload when it is at most `DEAD_LETTER_WHOLE` bytes,
    else its first `DEAD_LETTER_PREFIX` bytes, and empty for a payload refused for
    its size (`PayloadTooLarge`: never read); ``size`` is always the whole payload's
    size, so ``len(payload) < size`` says it was cut.
    """

    key: str
    payload: bytes
    error_type: str
    error: str
    app: str
    group: str
    node: str
    type: str = ""
    time: float = 0.0
    size: int = 0


class Escalation(msgspec.Struct):
    """An actor (or a pool) exhausted its restarts and stopped taking messages."""

    app: str
    group: str
    node: str
    key: str
    error_type: str
    error: str
    restarts: int
    time: float = 0.0


class CatalogEntry(msgspec.Struct):
    """One message type a group on a node handles, and how the group places it.

    ``kind`` is keyed, singleton or pool; ``field`` the keyed group's key field;
    ``gpus_first`` whether the group's keys go to members with a GPU while there is
    one. Publishers route by them (docs/cluster.md); a catalog without ``kind`` (an
    older node) is not routed to. ``window`` and ``window_bytes`` are the credit the
    node grants each publisher for the group (docs/supervision.md, "Flow control");
    0 (an older node): none, publishers are not held back. ``reliable``: the type is
    ``reliable=True``, so tools send it as a reliable message (docs/durability.md).
    """

    type: str
    key: str
    pattern: str
    app: str
    group: str
    reply: str = ""
    kind: str = ""
    field: str = ""
    gpus_first: bool = False
    window: int = 0
    window_bytes: int = 0
    reliable: bool = False


class ValidateRequest(msgspec.Struct):
    """Ask a node to check fields against one of its message types (used by the CLI).

    ``app`` and ``group`` (optional) say whose type is meant, where a node hosts
    several apps that name a type alike.
    """

    type: str
    fields: dict[str, object]
    key: str = ""
    app: str = ""
    group: str = ""


class NodeIdentity(msgspec.Struct):
    """A node's answer on its identity queryable: who it is and the groups (``"app/group"``) it hosts.

    Peers count a member token only once such an answer for its node names its
    group; the Zenoh replier id of the answer ties the member to one session
    (docs/security.md).
    """

    node: str
    groups: list[str]


class NodeCatalog(msgspec.Struct):
    """A node's answer to a catalog query: who it is and what it handles."""

    node: str
    entries: list[CatalogEntry]


_meta_encoder = msgspec.msgpack.Encoder()
_meta_decoder = msgspec.msgpack.Decoder(Meta)
_EMPTY_META = Meta()


def encode_meta(meta: Meta) -> bytes:
    """The attachment bytes for ``meta``."""
    return _meta_encoder.encode(meta)


def decode_meta(attachment: bytes | None) -> Meta:
    """The metadata in an attachment; an absent or unreadable attachment gives empty metadata."""
    if not attachment:
        return _EMPTY_META
    try:
        return _meta_decoder.decode(attachment)
    except Exception:  # noqa: BLE001 - hostile attachments may raise anything (see decode_untrusted)
        return _EMPTY_META


def member_key(app: str, group: str, node: str = "*", gpus: int | str = "*") -> str:
    """The liveliness token of a group on a node, labelled with how many GPUs the node offers.

    ``@edabus/member/{app}/{group}/{node}/gpus/{n}``: declared once the group can receive.
    With the defaults (``node="*"``, ``gpus="*"``) it is a pattern that matches any node.
    """
    return f"{PREFIX}/member/{app}/{group}/{node}/gpus/{gpus}"


def parse_member_key(key: str) -> tuple[str, str, str, int] | None:
    """``(app, group, node, gpus)`` from a member token's key; None if it is not one."""
    parts = key.split("/")
    if len(parts) != 7 or parts[0] != PREFIX or parts[1] != "member" or parts[5] != "gpus":  # noqa: PLR2004
        return None
    try:
        gpus = int(parts[6])
    except ValueError:
        return None
    return parts[2], parts[3], parts[4], gpus


def route_prefix(app: str, group: str, node: str) -> str:
    """Where publishers send a group's messages for one node: ``@edabus/to/{app}/{group}/{node}``.

    A routed message travels on this prefix followed by its own key
    (``@edabus/to/bank/Account/n1/bank/account/a1/deposit``), with the same payload
    and attachment as on its plain key.
    """
    return f"{PREFIX}/to/{app}/{group}/{node}"


def routes_barrier_key(bus: str) -> str:
    """A routing publisher's barrier: answered once the member changes that came before it are applied.

    A node that stops asks every publisher (``@edabus/routes/*/barrier``) and keeps
    listening until they answer: no publisher sends it anything after its reply.
    """
    return f"{PREFIX}/routes/{bus}/barrier"


def node_key(app: str, node: str, kind: str) -> str:
    """One of a node's tool queryables for one app it hosts: ``@edabus/node/{app}/{node}/{kind}``.

    Per app, as membership is, so that a closed bus's access list can let only an
    app's own nodes answer for it (docs/security.md); a node of two apps answers on
    each app's key for that app's groups only. ``*`` in either place is a pattern.
    """
    return f"{PREFIX}/node/{app}/{node}/{kind}"


def parse_node_key(key: str) -> tuple[str, str] | None:
    """``(app, node)`` from the key a node's tool reply came on; None if it is not one."""
    parts = key.split("/")
    if len(parts) != 5 or parts[0] != PREFIX or parts[1] != "node":  # noqa: PLR2004
        return None
    return parts[2], parts[3]


def barrier_key(app: str, node: str) -> str:
    """A node's barrier queryable: its reply follows all data sent before the query."""
    return node_key(app, node, "barrier")


def identity_key(app: str, node: str) -> str:
    """A node's identity queryable for one app it hosts, answered at once with a `NodeIdentity`.

    Per app (``@edabus/identity/{app}/{node}``), so that a closed bus's access list can
    let only an app's own nodes answer for that app's members (docs/security.md).
    """
    return f"{PREFIX}/identity/{app}/{node}"


def catalog_key(app: str, node: str) -> str:
    """A node's catalog queryable, answered with a `NodeCatalog`."""
    return node_key(app, node, "catalog")


def credit_key(app: str, group: str, node: str) -> str:
    """A group's checkpoint queryable on a node: answered once what was sent before it was taken in."""
    return f"{PREFIX}/credit/{app}/{group}/{node}"


def stats_key(app: str, node: str) -> str:
    """A node's statistics queryable, answered with a list of `SupervisorStatistics`."""
    return node_key(app, node, "stats")


def actors_key(app: str, node: str) -> str:
    """A node's live-actor queryable, answered with ``{"app/group": [key, ...]}``."""
    return node_key(app, node, "actors")


def validate_key(app: str, node: str) -> str:
    """A node's validation queryable: a `ValidateRequest` in, the canonical payload out."""
    return node_key(app, node, "validate")


def escalation_key(app: str, group: str) -> str:
    """Where a group publishes an `Escalation` when an actor exhausts its restarts."""
    return f"{PREFIX}/escalation/{app}/{group}"


def dead_letter_key(app: str, group: str) -> str:
    """Where a group publishes its dead letters."""
    return f"{PREFIX}/deadletter/{app}/{group}"
