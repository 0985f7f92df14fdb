"""Frozen statistics records, as `Supervisor.statistics()` returns them."""

from __future__ import annotations

import msgspec

__all__ = ["SupervisorStatistics"]


class SupervisorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one supervisor group's counters on one node.

    Attributes:
        app, group, kind, node: which group this is, and where.
        received: messages taken off the bus (and requests), decoded or not.
        handled: handler calls that returned.
        failed: handler calls that raised.
        dead_letters: messages published to the dead-letter key.
        live_actors: actor instances alive now.
        mailbox_depth: messages waiting now, over all the group's mailboxes.
        mailbox_peak: the deepest any one mailbox of the group has been.
        handler_seconds: total time spent in handlers.

    """

    app: str
    group: str
    kind: str
    node: str
    received: int
    handled: int
    failed: int
    dead_letters: int
    live_actors: int
    mailbox_depth: int
    mailbox_peak: int
    handler_seconds: float
