"""Subscriptions: messages on a key expression, as an async iterator, for any listener."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Self

import zenoh

from edabus._model._envelope import Envelope, envelope_of
from edabus._model._wire import PREFIX, route_prefix

from ._bridge import Inbox

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RoutedCopies", "Subscription"]

_RECENT = 1024  # routed copies remembered, to hear each message once


class RoutedCopies:
    """Samples on routed keys (``@edabus/to/{app}/{group}/{node}/{key}``) as envelopes, each message once.

    A message that two groups take travels routed twice, and one a node passed on to
    the owner travels again with its ``hops`` one higher; all carry the same
    ``(sender, id)``, so a copy already heard is left out (of the last `_RECENT`).
    """

    def __init__(self) -> None:
        self._recent: OrderedDict[tuple[str, str, int], None] = OrderedDict()

    def envelope(self, sample: zenoh.Sample) -> Envelope | None:
        """The sample's envelope, with its own key; None for a copy already heard (on Zenoh's thread)."""
        routed_key = str(sample.key_expr)  # @edabus/to/{app}/{group}/{node}/{key}
        envelope = envelope_of(sample, len(routed_key) - len(routed_key.split("/", 5)[5]))
        meta = envelope.meta
        if meta.id:
            name = (envelope.key, meta.sender, meta.id)
            if name in self._recent:
                return None
            self._recent[name] = None
            if len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
        return envelope


class Subscription:
    """Messages on a key expression, as an async iterator of `Envelope` batches or items."""

    def __init__(
        self, session: zenoh.Session, key_expr: str, capacity: int, on_close: Callable[[Subscription], None]
    ) -> None:
        self.key_expr = key_expr
        self._on_close = on_close  # the bus stops tracking it
        # Never makes Zenoh wait; past its overflow limit it refuses, counted and logged.
        self._inbox: Inbox[Envelope] = Inbox(capacity, name=f"subscription {key_expr}")
        self._pending: list[Envelope] = []
        self._sub: zenoh.Subscriber[None] | None = session.declare_subscriber(
            key_expr, zenoh.handlers.Callback(self._on_sample, indirect=False)
        )
        # Publishers send messages straight to their owners' routed keys (`_router`): hear
        # those too, once each (a message routed to two groups travels twice).
        self._routed: zenoh.Subscriber[None] | None = None
        self._copies = RoutedCopies()
        if not key_expr.startswith(PREFIX):
            self._routed = session.declare_subscriber(
                f"{route_prefix('*', '*', '*')}/{key_expr}",
                zenoh.handlers.Callback(self._on_routed, indirect=False),
            )

    def _on_sample(self, sample: zenoh.Sample) -> None:
        self._inbox.push(envelope_of(sample))

    def _on_routed(self, sample: zenoh.Sample) -> None:
        envelope = self._copies.envelope(sample)
        if envelope is not None:
            self._inbox.push(envelope)

    async def receive_batch(self) -> list[Envelope]:
        """The next batch of envelopes; [] once the subscription is closed."""
        if self._pending:
            batch, self._pending = self._pending, []
            return batch
        return await self._inbox.get_batch()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Envelope:
        if not self._pending:
            self._pending = await self._inbox.get_batch()
            if not self._pending:
                raise StopAsyncIteration
            self._pending.reverse()
        return self._pending.pop()

    def close(self) -> None:
        """Undeclare the subscriber; iteration ends after what was already queued."""
        if self._sub is not None:
            self._sub.undeclare()
            self._sub = None
            if self._routed is not None:
                self._routed.undeclare()
                self._routed = None
            self._inbox.close()
            self._on_close(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
