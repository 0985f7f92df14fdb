"""edabus: Python actors on an Eclipse Zenoh bus."""

from ._actor import Actor, ActorContext, handler
from ._app import App, GroupSpec
from ._bus import Bus, Envelope, Subscription, connect
from ._compute import ComputeWorker
from ._exceptions import (
    ActorEscalated,
    ActorStopped,
    BusClosedError,
    DecodeError,
    DefinitionError,
    EdabusError,
    KeyTemplateError,
    KeyValueError,
    MailboxFull,
    NoRouteError,
    NotAttachedError,
    RemoteError,
    RequestTimeout,
    Undeliverable,
)
from ._keys import KeyTemplate
from ._message import Message
from ._node import Node
from ._policy import RestartPolicy
from ._statistics import SupervisorStatistics
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
    "EdabusError",
    "Envelope",
    "Escalation",
    "GroupSpec",
    "KeyTemplate",
    "KeyTemplateError",
    "KeyValueError",
    "MailboxFull",
    "Message",
    "Meta",
    "NoRouteError",
    "Node",
    "NotAttachedError",
    "RemoteError",
    "RequestTimeout",
    "RestartPolicy",
    "Subscription",
    "SupervisorStatistics",
    "Timer",
    "Undeliverable",
    "connect",
    "handler",
]
