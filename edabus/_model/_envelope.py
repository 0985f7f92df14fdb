"""`Envelope`: a message as it arrived, before (or without) decoding."""

from __future__ import annotations

from typing import NamedTuple

import zenoh

from ._message import DEFAULT_MAX_SIZE
from ._wire import Meta, decode_meta

__all__ = ["MAX_ATTACHMENT", "Envelope", "envelope_of", "query_envelope"]

MAX_ATTACHMENT = 64 * 1024  # edabus metadata is tens of bytes; a bigger attachment is not ours


class Envelope(NamedTuple):
    """A message as it arrived: its key, raw payload and raw attachment.

    ``routed``: it came on a node's routed key (`route_prefix`), sent there by a
    publisher that picked this node as the owner; ``key`` is its own key all the same.
    ``oversize``: the payload's size on the wire when it was over the limit it was
    read with (``payload`` is then empty: it was never copied out of Zenoh); 0 when
    ``payload`` is whole.
    """

    key: str
    payload: bytes
    attachment: bytes | None = None
    routed: bool = False
    oversize: int = 0

    @property
    def meta(self) -> Meta:
        """The metadata in the attachment (decoded on each access; empty if absent or unreadable)."""
        return decode_meta(self.attachment)


# A payload over its limit is not even copied: ZBytes cannot be sliced, and copying
# megabytes only to keep a prefix left glibc's heap tens of MB larger for good.


def envelope_of(sample: zenoh.Sample, strip: int = 0, limit: int = DEFAULT_MAX_SIZE) -> Envelope:
    """Copy what we need out of a Zenoh sample (on Zenoh's thread); metadata is decoded only if read.

    ``strip``: the length of a route prefix to take off a routed sample's key
    (``@edabus/to/{app}/{group}/{node}/``); the envelope is then marked ``routed``.
    A payload over ``limit`` bytes is left unread (see ``Envelope.oversize``), and so
    is an attachment over `MAX_ATTACHMENT` (metadata is optional).
    """
    attachment = sample.attachment
    key = str(sample.key_expr)
    payload = sample.payload
    size = len(payload)
    if size <= limit and (attachment is None or len(attachment) <= MAX_ATTACHMENT):  # the usual case
        return Envelope(
            key[strip:] if strip else key,
            payload.to_bytes(),
            attachment.to_bytes() if attachment is not None else None,
            strip > 0,
        )
    return Envelope(
        key[strip:] if strip else key,
        payload.to_bytes() if size <= limit else b"",
        _attachment(attachment),
        strip > 0,
        0 if size <= limit else size,
    )


def query_envelope(query: zenoh.Query, limit: int = DEFAULT_MAX_SIZE) -> Envelope:
    """The envelope of a request (a query): its key, payload and attachment (cut as in `envelope_of`)."""
    payload = query.payload
    size = 0 if payload is None else len(payload)
    return Envelope(
        str(query.key_expr),
        payload.to_bytes() if payload is not None and size <= limit else b"",
        _attachment(query.attachment),
        routed=False,
        oversize=0 if size <= limit else size,
    )


def _attachment(attachment: zenoh.ZBytes | None) -> bytes | None:
    if attachment is None or len(attachment) > MAX_ATTACHMENT:
        return None
    return attachment.to_bytes()
