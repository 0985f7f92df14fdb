"""The records a supervisor keeps: a message on its way (`Work`), an activation (`Cell`), counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import zenoh

    from edabus._model._envelope import Envelope
    from edabus._model._message import Message

    from ._actor import Actor, HandlerSpec
    from ._mailbox import Mailbox
    from ._policy import RestartWindow
    from ._timers import Timers

__all__ = ["Cell", "Counters", "Work"]


@dataclass(slots=True)
class Work:
    """A decoded message on its way to an actor, with the query to answer if it is a request."""

    msg: Message
    spec: HandlerSpec
    envelope: Envelope
    query: zenoh.Query | None


@dataclass(slots=True, eq=False)
class Cell:
    """One actor activation: its instance (None until started), mailbox and state."""

    key: object
    mailbox: Mailbox[Work]
    instance: Actor | None = None
    scheduled: bool = False
    stopped: bool = False
    moving: bool = False  # its key moved to another node: passivate once its mailbox is drained
    stale: bool = False  # the node was stopped past its lease: passivate once drained, whoever owns the key
    last_used: float = 0.0
    restarts: RestartWindow | None = None
    timers: Timers | None = None
    before: Callable[[], None] | None = None  # run before each handler call (`GroupHooks.before_handler`)
    data: dict[object, Any] | None = None  # what the group's hooks keep for this activation, by hook


@dataclass(slots=True)
class Counters:
    """The running totals behind `SupervisorStatistics`."""

    received: int = 0
    handled: int = 0
    failed: int = 0
    restarts: int = 0
    escalations: int = 0
    dead_letters: int = 0
    dropped: int = 0
    passivated: int = 0
    not_owned: int = 0
    forwarded: int = 0
    handler_seconds: float = 0.0
