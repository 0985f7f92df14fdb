"""edabus: Python actors on an Eclipse Zenoh bus."""

from ._actor import Actor, ActorContext, handler
from ._app import App, GroupSpec
from ._bus import Bus, Envelope, Subscription, connect
from ._exceptions import (
    BusClosedError,
    DecodeError,
    DefinitionError,
    EdabusError,
    KeyTemplateError,
    KeyValueError,
    NoRouteError,
    NotAttachedError,
    RemoteError,
    RequestTimeout,
)
from ._keys import KeyTemplate
from ._message import Message
from ._node import Node
from ._statistics import SupervisorStatistics
from ._wire import DeadLetter, Meta

__all__ = [
    "Actor",
    "ActorContext",
    "App",
    "Bus",
    "BusClosedError",
    "DeadLetter",
    "DecodeError",
    "DefinitionError",
    "EdabusError",
    "Envelope",
    "GroupSpec",
    "KeyTemplate",
    "KeyTemplateError",
    "KeyValueError",
    "Message",
    "Meta",
    "NoRouteError",
    "Node",
    "NotAttachedError",
    "RemoteError",
    "RequestTimeout",
    "Subscription",
    "SupervisorStatistics",
    "connect",
    "handler",
]
