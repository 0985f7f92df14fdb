"""Subscriptions: messages on a key expression, as an async iterator, for any listener."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import zenoh

from ._bridge import Inbox
from ._envelope import Envelope, envelope_of

if TYPE_CHECKING:
    from ._bus import Bus

__all__ = ["Subscription"]


class Subscription:
    """Messages on a key expression, as an async iterator of `Envelope` batches or items."""

    def __init__(self, bus: Bus, key_expr: str, capacity: int) -> None:
        self.key_expr = key_expr
        self._bus = bus
        self._inbox: Inbox[Envelope] = Inbox(capacity)
        self._pending: list[Envelope] = []
        callback = zenoh.handlers.Callback(self._on_sample, indirect=False)
        self._sub: zenoh.Subscriber[None] | None = bus.session.declare_subscriber(key_expr, callback)

    def _on_sample(self, sample: zenoh.Sample) -> None:
        self._inbox.push(envelope_of(sample))

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
            self._inbox.close()
            self._bus._subscriptions.discard(self)  # noqa: SLF001 - the bus tracks what it must close

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
