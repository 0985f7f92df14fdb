"""edabus: Python actors on an Eclipse Zenoh bus."""

from ._compute._workers import ComputeWorker
from ._durability._outbox_store import SQLiteOutbox
from ._durability._postgres import PostgresStore
from ._durability._sqlite import SQLiteStore
from ._durability._store import MemoryStore, StateStore, Stored
from ._exceptions import (
    ActorEscalated,
    ActorStopped,
    BusClosedError,
    DecodeError,
    DefinitionError,
    DuplicateNodeError,
    EdabusError,
    InboxOverflow,
    KeyTemplateError,
    KeyValueError,
    MailboxFull,
    NoRouteError,
    NotAttachedError,
    OutboxInUseError,
    OutOfOrder,
    PayloadTooLarge,
    PublishTimeout,
    RemoteError,
    RequestTimeout,
    SelfRequestError,
    StaleStateError,
    StateError,
    StateStoreError,
    StateTooLarge,
    Undeliverable,
    Undelivered,
)
from ._host._app import App
from ._host._connect import connect
from ._host._group import GroupSpec
from ._host._node import Node
from ._model._envelope import Envelope
from ._model._keys import KeyTemplate
from ._model._message import Message
from ._model._statistics import SupervisorStatistics
from ._model._wire import DeadLetter, Escalation, Meta
from ._runtime._actor import Actor, ActorContext, handler
from ._runtime._policy import RestartPolicy
from ._runtime._timers import Timer
from ._transport._bus import Bus
from ._transport._subscription import Subscription

__all__ = [
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
