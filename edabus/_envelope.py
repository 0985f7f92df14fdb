"""`Envelope`: a message as it arrived, before (or without) decoding."""

from __future__ import annotations

from typing import NamedTuple

import zenoh

from ._wire import Meta, decode_meta

__all__ = ["Envelope", "envelope_of", "query_envelope", "routed_envelope_of"]


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


def envelope_of(sample: zenoh.Sample) -> Envelope:
    """Copy what we need out of a Zenoh sample (on Zenoh's thread); metadata is decoded only if read."""
    attachment = sample.attachment
    return Envelope(
        str(sample.key_expr),
        sample.payload.to_bytes(),
        attachment.to_bytes() if attachment is not None else None,
    )


def routed_envelope_of(sample: zenoh.Sample, strip: int) -> Envelope:
    """The envelope of a routed sample: its key without the route prefix (``strip`` characters)."""
    attachment = sample.attachment
    return Envelope(
        str(sample.key_expr)[strip:],
        sample.payload.to_bytes(),
        attachment.to_bytes() if attachment is not None else None,
        True,  # noqa: FBT003 - the NamedTuple's fourth field
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
