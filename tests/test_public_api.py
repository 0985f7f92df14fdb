"""The public API is what edabus.__all__ lists, and it changes only on purpose."""

from __future__ import annotations

import edabus

EXPECTED = [
    "Actor",
    "ActorContext",
    "ActorEscalated",
    "ActorStopped",
    "App",
    "Bus",
    "BusClosedError",
    "ComputeWorker",
    "DeadLetter",
    "DecodeError",
    "DefinitionError",
    "DuplicateNodeError",
    "EdabusError",
    "Envelope",
    "Escalation",
    "GroupSpec",
    "InboxOverflow",
    "KeyTemplate",
    "KeyTemplateError",
    "KeyValueError",
    "MailboxFull",
    "MemoryStore",
    "Message",
    "Meta",
    "NoRouteError",
    "Node",
    "NotAttachedError",
    "OutOfOrder",
    "OutboxInUseError",
    "PayloadTooLarge",
    "PostgresStore",
    "PublishTimeout",
    "RemoteError",
    "RequestTimeout",
    "RestartPolicy",
    "SQLiteOutbox",
    "SQLiteStore",
    "SelfRequestError",
    "StaleStateError",
    "StateError",
    "StateStore",
    "StateStoreError",
    "StateTooLarge",
    "Stored",
    "Subscription",
    "SupervisorStatistics",
    "Timer",
    "Undeliverable",
    "Undelivered",
    "connect",
    "handler",
]


def test_public_api_is_pinned() -> None:
    """__all__ is sorted, complete and matches this list; every name exists."""
    assert edabus.__all__ == EXPECTED
    assert sorted(edabus.__all__) == edabus.__all__
    for name in EXPECTED:
        assert getattr(edabus, name) is not None


def test_every_error_derives_from_edabus_error() -> None:
    """One exception tree: every public error is an EdabusError."""
    errors = [getattr(edabus, n) for n in EXPECTED if n.endswith(("Error", "Timeout", "Large", "Order", "delivered"))]
    assert errors
    assert all(issubclass(e, edabus.EdabusError) for e in errors)
