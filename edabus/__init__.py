"""edabus: Python actors on an Eclipse Zenoh bus."""

from ._actor import Actor, ActorContext, handler
from ._app import App, GroupSpec
from ._bus import Bus, Envelope
from ._compute import ComputeWorker
from ._connect import connect
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
from ._keys import KeyTemplate
from ._message import Message
from ._node import Node
from ._policy import RestartPolicy
from ._postgres import PostgresStore
from ._sqlite import SQLiteStore
from ._statistics import SupervisorStatistics
from ._store import MemoryStore, StateStore, Stored
from ._subscription import Subscription
from ._timers import Timer
from ._wire import DeadLetter, Escalation, Meta

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
    "PayloadTooLarge",
    "PostgresStore",
    "PublishTimeout",
    "RemoteError",
    "RequestTimeout",
    "RestartPolicy",
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
