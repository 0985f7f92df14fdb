"""`Envelope`: a message as it arrived, before (or without) decoding."""

from __future__ import annotations

from typing import NamedTuple

import zenoh

from ._wire import Meta, decode_meta

__all__ = ["Envelope", "envelope_of", "query_envelope"]


class Envelope(NamedTuple):
    """A message as it arrived: its key, raw payload and raw attachment.

    ``routed``: it came on a node's routed key (`route_prefix`), sent there by a
    publisher that picked this node as the owner; ``key`` is its own key all the same.
    """

    key: str
    payload: bytes
    attachment: bytes | None = None
    routed: bool = False

    @property
    def meta(self) -> Meta:
        """The metadata in the attachment (decoded on each access; empty if absent or unreadable)."""
        return decode_meta(self.attachment)


def envelope_of(sample: zenoh.Sample, strip: int = 0) -> Envelope:
    """Copy what we need out of a Zenoh sample (on Zenoh's thread); metadata is decoded only if read.

    ``strip``: the length of a route prefix to take off a routed sample's key
    (``@edabus/to/{app}/{group}/{node}/``); the envelope is then marked ``routed``.
    """
    attachment = sample.attachment
    key = str(sample.key_expr)
    return Envelope(
        key[strip:] if strip else key,
        sample.payload.to_bytes(),
        attachment.to_bytes() if attachment is not None else None,
        strip > 0,
    )


def query_envelope(query: zenoh.Query) -> Envelope:
    """The envelope of a request (a query): its key, payload and attachment."""
    payload = query.payload
    attachment = query.attachment
    return Envelope(
        str(query.key_expr),
        payload.to_bytes() if payload is not None else b"",
        attachment.to_bytes() if attachment is not None else None,
    )
