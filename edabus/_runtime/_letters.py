"""What a group publishes about messages and actors it gave up on: dead letters, escalations."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from edabus._model._message import encode
from edabus._model._wire import (
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_WHOLE,
    DeadLetter,
    Escalation,
    dead_letter_key,
    escalation_key,
)

if TYPE_CHECKING:
    from edabus._model._envelope import Envelope
    from edabus._transport._bus import Bus

__all__ = ["publish_dead_letter", "publish_escalation"]


def publish_dead_letter(bus: Bus, *, app: str, group: str, envelope: Envelope, exc: BaseException, log: Any) -> None:
    """Publish a `DeadLetter` for ``envelope`` on the group's dead-letter key; a failure is logged."""
    payload = envelope.payload
    size = envelope.oversize or len(payload)
    letter = DeadLetter(
        key=envelope.key,
        payload=payload if size <= DEAD_LETTER_WHOLE else payload[:DEAD_LETTER_PREFIX],
        error_type=type(exc).__name__,
        error=str(exc),
        app=app,
        group=group,
        node=bus.node_id,
        type=envelope.meta.type,
        time=time.time(),
        size=size,
    )
    try:
        bus._put(dead_letter_key(app, group), encode(letter))
    except Exception:
        log.exception("message.dead_letter_failed", key=envelope.key)


def publish_escalation(bus: Bus, *, app: str, group: str, key: str, exc: BaseException, restarts: int) -> None:
    """Publish an `Escalation`: an actor (or a whole group) exhausted its restarts."""
    event = Escalation(
        app=app,
        group=group,
        node=bus.node_id,
        key=key,
        error_type=type(exc).__name__,
        error=str(exc),
        restarts=restarts,
        time=time.time(),
    )
    bus._put(escalation_key(app, group), encode(event))
