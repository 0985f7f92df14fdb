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
        restarts: actor instances replaced after a failure.
        escalations: actors (or pools) that exhausted their restarts.
        dead_letters: messages published to the dead-letter key.
        dropped: messages a mailbox's overflow policy dropped (each is also a dead letter).
        passivated: actors stopped for idleness, to respect ``max_actors``, or because their key moved.
        not_owned: arrivals another node of the group owns, so this one let them pass.
        forwarded: routed arrivals another node owns in this node's view, passed on to it.
        live_actors: actor instances alive now.
        mailbox_depth: messages waiting now, over all the group's mailboxes.
        mailbox_peak: the deepest any one mailbox of the group has been.
        handler_seconds: total time spent in handlers.
        inbox_depth, inbox_peak: arrivals waiting in the group's node inbox now, and its deepest.
        overflow: arrivals refused because the inbox held its overflow limit (`InboxOverflow`;
            each is counted here, and dead-lettered up to 10,000 at a time).

    """

    app: str
    group: str
    kind: str
    node: str
    received: int
    handled: int
    failed: int
    restarts: int
    escalations: int
    dead_letters: int
    dropped: int
    passivated: int
    live_actors: int
    mailbox_depth: int
    mailbox_peak: int
    handler_seconds: float
    inbox_depth: int = 0
    inbox_peak: int = 0
    overflow: int = 0
    not_owned: int = 0
    forwarded: int = 0
