"""Following a group's member tokens, so that each change takes effect in the group's inbox order.

A departure is pushed into the group's inbox from Zenoh's thread, so the
arrivals before it are judged with the old members. A join is confirmed first
with a barrier query to the new member: its reply leaves the router after the
new member's subscriptions were known there, so every arrival behind the reply
also reached the new member, and every arrival ahead of it is still ours to
judge (a query on the data's priority travels behind that data). Either way the group's intake channel is moved into
the inbox first (`_ingest`), so no earlier arrival is left behind the change.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zenoh

from ._ingest import CONTROL
from ._logging import get_logger
from ._wire import barrier_key, member_key, parse_member_key

if TYPE_CHECKING:
    from ._bus import Bus
    from ._membership import Membership

__all__ = ["JOIN_BARRIER_TIMEOUT", "MemberWatch"]

log = get_logger(__name__)

JOIN_BARRIER_TIMEOUT = 2.0  # a new member that does not answer its barrier joins anyway, this much later


class MemberWatch:
    """One group's liveliness subscriber, and how its changes reach the group's inbox."""

    def __init__(
        self,
        bus: Bus,
        membership: Membership,
        *,
        push: Callable[..., None],
        flush: Callable[[], None],
        control: Callable[[Callable[[], None]], None],
    ) -> None:
        self._bus = bus
        self._membership = membership
        self._push = push
        self._flush = flush
        self._control = control

    def declare(self) -> Any:
        """Subscribe to the group's member tokens (with the ones alive now)."""
        membership = self._membership
        return self._bus.session.liveliness().declare_subscriber(
            member_key(membership.app, membership.group),
            zenoh.handlers.Callback(self._on_change, indirect=False),
            history=True,
        )

    def _on_change(self, sample: zenoh.Sample) -> None:  # Zenoh's thread
        parsed = parse_member_key(str(sample.key_expr))
        if parsed is None or parsed[2] == self._membership.self_id:
            return
        node, gpus = parsed[2], parsed[3]
        if sample.kind == zenoh.SampleKind.PUT:
            self._control(functools.partial(self._confirm_join, node, gpus))
        else:
            self._flush()
            self._push((CONTROL, functools.partial(self._changed, left={node}), None), force=True)

    def _confirm_join(self, node: str, gpus: int) -> None:
        """Ask the new member for a barrier reply; apply the join in the group's inbox after it."""
        if self._bus.closed:
            return
        change = functools.partial(self._changed, joined={node: gpus})

        def on_reply(_reply: zenoh.Reply) -> None:
            pass  # the reply matters only for when it comes: on_final follows it

        def on_final() -> None:  # Zenoh's thread, after the reply (or the timeout)
            self._flush()
            self._push((CONTROL, change, None), force=True)

        self._bus.session.get(
            barrier_key(node),
            zenoh.handlers.Callback(on_reply, on_final, indirect=False),
            target=zenoh.QueryTarget.ALL,
            timeout=JOIN_BARRIER_TIMEOUT,
        )

    def _changed(self, *, joined: dict[str, int] | None = None, left: set[str] | None = None) -> None:
        membership = self._membership
        if membership.update(joined=joined, left=left):
            log.info(
                "node.members_changed",
                app=membership.app,
                group=membership.group,
                members=list(membership.members),
                owners=list(membership.owners),
                node=membership.self_id,
                joined=sorted(joined or ()),
                left=sorted(left or ()),
            )
