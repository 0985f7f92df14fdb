"""How a node takes in messages from other processes: in batches, without taking the GIL per sample.

A Python callback on Zenoh's receive thread must take the GIL for every
sample; while the event loop holds it, the receive thread waits, and the two
hand over one sample at a time (measured: about 18k msg/s through a router,
against 230k for raw zenoh-python). So each group takes its remote puts
through one Zenoh `FifoChannel` (a queue on the Rust side: the receive thread
never waits for Python), and one puller thread per node moves them into the
group's inbox in batches. Order is kept:

- One subscriber per group, on a key expression that covers all its message
  types (``bank/account/*/deposit`` and ``bank/account/*/withdraw`` give
  ``bank/account/*/*``), so the group's puts from one sender stay in wire
  order across types. Keys of no handled type are let pass. Groups whose
  patterns cannot be covered without taking far more than theirs keep one
  callback subscriber per type, on Zenoh's thread.
- Requests, membership changes and barrier queries still arrive by callbacks
  on Zenoh's thread, in wire order after the puts before them: each callback
  first moves what is in its group's channel into the inbox (`Lane.flush`),
  under the lane's lock that the puller also takes, then pushes itself.
- Puts from this process (``allowed_origin`` SESSION_LOCAL) still go through a
  callback, synchronously on the publisher's thread, as before.

The puller polls while puts come and parks when none do (see `_puller`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import zenoh

from edabus._logging import get_logger
from edabus._model._envelope import envelope_of, query_envelope

if TYPE_CHECKING:
    from edabus._model._message import Message

    from ._bridge import Inbox
    from ._credit import Checkpoints

__all__ = ["CHANNEL_SIZE", "CONTROL", "GroupIntake", "Lane", "covering_pattern"]

log = get_logger(__name__)

CHANNEL_SIZE = 2048  # remote puts a group's channel holds before Zenoh's receive thread waits
# The "message type" of a control item in a group's inbox (a membership change): its
# second element is a callable, run when the dispatcher reaches it.
CONTROL = object()
_BATCH = 4096
_TYPE_CACHE = 100_000


def covering_pattern(patterns: Iterable[str]) -> str | None:
    """One key expression matching every pattern, chunk by chunk; None if it would match too much.

    Patterns of different lengths, or ones that differ in their first chunk, are not
    covered: the cover would take traffic far beyond the group's own.
    """
    split = [pattern.split("/") for pattern in patterns]
    if not split or any(len(chunks) != len(split[0]) for chunks in split):
        return None
    cover = [column[0] if len(set(column)) == 1 else "*" for column in zip(*split, strict=True)]
    if cover[0] == "*":
        return None
    return "/".join(cover)


class Lane:
    """One group's channel of remote puts, and the lock that keeps them in order with its callbacks."""

    def __init__(
        self,
        session: zenoh.Session,
        pattern: str,
        types: dict[str, type[Message]],
        inbox: Inbox[Any],
        *,
        route: str = "",
    ) -> None:
        self.pattern = pattern
        self.lock = threading.Lock()
        self._inbox = inbox
        self._types = types  # the handled types by their key pattern
        self._single = next(iter(types.values())) if len(types) == 1 and pattern in types else None
        self._limit = max(t.__edabus_max_size__ for t in types.values())  # each type checks its own when taken
        self._by_key: dict[str, type[Message] | None] = {}
        # A routed lane takes `{route}/{key}`: its envelopes carry the key without the prefix.
        self._strip = len(route) + 1 if route else 0
        self.key_expr = f"{route}/{pattern}" if route else pattern
        self._channel = session.declare_subscriber(
            self.key_expr, zenoh.handlers.FifoChannel(CHANNEL_SIZE), allowed_origin=zenoh.Locality.REMOTE
        )
        self.passed = 0  # keys under the cover that no handled type matches

    def undeclare(self) -> None:
        """Stop taking puts (those still in the channel are dropped with it)."""
        self._channel.undeclare()

    def flush(self) -> None:
        """On Zenoh's thread, before a callback pushes: move everything queued into the inbox, in order."""
        with self.lock:
            while items := self._take(_BATCH):
                self._inbox.extend(items)

    def move_all(self) -> None:
        """On the loop, as the node stops: move everything still queued into the inbox, at once."""
        with self.lock:
            while items := self._take(_BATCH):
                self._inbox.extend(items)

    def pump(self) -> int:
        """On the puller: move a batch into the inbox, never waiting (it holds its overflow); how many moved.

        Draining at once whatever the inbox holds is what keeps Zenoh's receive thread
        from waiting on this channel: a thread held for 5 s loses its link.
        """
        if not self.lock.acquire(blocking=False):
            return 1  # a callback is flushing us: busy, not idle
        try:
            items = self._take(_BATCH)
            if items:
                self._inbox.extend(items)
            return len(items)
        finally:
            self.lock.release()

    def _take(self, limit: int) -> list[tuple[type[Message], Any, None]]:
        items: list[tuple[type[Message], Any, None]] = []
        receive = self._channel.try_recv
        single = self._single
        strip = self._strip
        size_limit = self._limit
        while len(items) < limit:
            sample = receive()
            if sample is None:
                break
            envelope = envelope_of(sample, strip, size_limit)
            message_type = single or self._type_of(envelope.key)
            if message_type is None:
                self.passed += 1
                continue
            items.append((message_type, envelope, None))
        return items

    def _type_of(self, key: str) -> type[Message] | None:
        by_key = self._by_key
        try:
            return by_key[key]
        except KeyError:
            pass
        found = None
        for message_type in self._types.values():
            template = message_type.__edabus_key__
            if template is not None and template.parse(key) is not None:
                found = message_type
                break
        if len(by_key) >= _TYPE_CACHE:
            by_key.clear()
        by_key[key] = found
        return found


class GroupIntake:
    """One group's routes into its inbox: lanes for remote puts, callbacks for the rest.

    Two lanes: the plain keys (every node of the group hears them), and this node's
    routed keys (``route``, where publishers send what they know this node owns).
    Without a cover for its types, all puts come by callback instead.
    """

    def __init__(
        self,
        session: zenoh.Session,
        message_types: Iterable[type[Message]],
        inbox: Inbox[Any],
        loop_thread: int,
        route: str,
        *,
        credit: tuple[str, Checkpoints],
    ) -> None:
        patterns = {t.__edabus_key__.pattern: t for t in message_types}  # type: ignore[union-attr]
        cover = covering_pattern(patterns)
        self.lanes = (
            [Lane(session, cover, patterns, inbox), Lane(session, cover, patterns, inbox, route=route)]
            if cover is not None
            else []
        )
        self._loop_thread = loop_thread
        self._declared: list[Any] = []
        push = inbox.push
        flush = self.flush
        strip = len(route) + 1
        # Local puts (or, without lanes, all puts) by callback, synchronously, in order.
        origin = zenoh.Locality.SESSION_LOCAL if self.lanes else zenoh.Locality.ANY
        for pattern, message_type in patterns.items():

            def on_sample(sample: zenoh.Sample, t: type[Message] = message_type) -> None:
                push((t, envelope_of(sample, 0, t.__edabus_max_size__), None))

            def on_routed(sample: zenoh.Sample, t: type[Message] = message_type) -> None:
                push((t, envelope_of(sample, strip, t.__edabus_max_size__), None))

            def on_query(query: zenoh.Query, t: type[Message] = message_type) -> None:
                flush()
                push((t, query_envelope(query, t.__edabus_max_size__), query))

            for key, callback in ((pattern, on_sample), (f"{route}/{pattern}", on_routed)):
                self._declared.append(
                    session.declare_subscriber(
                        key, zenoh.handlers.Callback(callback, indirect=False), allowed_origin=origin
                    )
                )
            self._declared.append(session.declare_queryable(pattern, zenoh.handlers.Callback(on_query, indirect=False)))
        credit_key, checkpoints = credit

        def on_checkpoint(query: zenoh.Query) -> None:  # behind every put sent before it
            flush()
            checkpoints.arrive(query)

        self._declared.append(
            session.declare_queryable(credit_key, zenoh.handlers.Callback(on_checkpoint, indirect=False))
        )

    def flush(self) -> None:
        """Before a callback pushes: on Zenoh's thread, move the lanes' queues into the inbox first.

        The loop's own callbacks (local traffic) never wait for it.
        """
        if self.lanes and threading.get_ident() != self._loop_thread:
            for lane in self.lanes:
                lane.flush()

    def close(self, *, undeclare: bool) -> None:
        """Move what the lanes still hold into the inbox (ours to handle), then drop the routes."""
        for lane in self.lanes:
            lane.move_all()
            if undeclare:
                lane.undeclare()
        if undeclare:
            for entity in self._declared:
                entity.undeclare()
        self._declared.clear()
