"""The exceptions edabus raises.

Every error edabus raises derives from `EdabusError`::

    EdabusError
    ├── DefinitionError             a class or app is declared wrongly (raised at import)
    │   └── KeyTemplateError        a message's key template is invalid
    ├── KeyValueError               a field value cannot be placed in a key
    ├── DecodeError                 a payload does not decode into its message type
    │   └── PayloadTooLarge         a payload is over its type's max_size (refused undecoded)
    ├── BusClosedError              the bus is closed, or was never opened
    ├── NotAttachedError            an actor used the bus before any supervisor ran it
    ├── DuplicateNodeError          a node's id is already live on the bus
    ├── SelfRequestError            an actor sent a request to itself (it would wait for itself)
    ├── NoRouteError                no live group serves a request's key
    ├── RequestTimeout              no reply came before the deadline
    ├── PublishTimeout              no credit came before the deadline: the message was not sent
    ├── RemoteError                 the handler that served a request raised
    ├── StateError                  an actor's persistent state could not be kept
    │   ├── StaleStateError         another activation wrote the state meanwhile (the writer stops)
    │   ├── StateTooLarge           the encoded state is over the group's max_state_size
    │   └── StateStoreError         the store failed (unreachable, broken)
    ├── OutOfOrder                  a reliable message arrived ahead of one it follows (resent)
    ├── Undelivered                 reliable messages no owner acknowledged in time
    └── Undeliverable               a message no actor will handle (it is dead-lettered)
        ├── MailboxFull             dropped by a drop_newest / drop_oldest overflow policy
        ├── InboxOverflow           refused: its group's node inbox held its overflow limit
        ├── ActorStopped            its actor stopped (a "stop" directive, or the node stopped)
        └── ActorEscalated          its actor exhausted its restarts; the key (or group) is closed
"""

from __future__ import annotations

__all__ = [
    "ActorEscalated",
    "ActorStopped",
    "BusClosedError",
    "DecodeError",
    "DefinitionError",
    "DuplicateNodeError",
    "EdabusError",
    "InboxOverflow",
    "KeyTemplateError",
    "KeyValueError",
    "MailboxFull",
    "NoRouteError",
    "NotAttachedError",
    "OutOfOrder",
    "OutboxInUseError",
    "PayloadTooLarge",
    "PublishTimeout",
    "RemoteError",
    "RequestTimeout",
    "SelfRequestError",
    "StaleStateError",
    "StateError",
    "StateStoreError",
    "StateTooLarge",
    "Undeliverable",
    "Undelivered",
]


class EdabusError(Exception):
    """The base of every error edabus raises."""


class DefinitionError(EdabusError, TypeError):
    """A message, actor or app is declared wrongly; raised when the class is defined."""


class KeyTemplateError(DefinitionError):
    """A message's key template is invalid; the text names the class and the problem."""


class KeyValueError(EdabusError, ValueError):
    """A field value cannot stand in a key chunk (empty, or holds `/`, `*`, `$`, `?`, `#`)."""


class DecodeError(EdabusError, ValueError):
    """A payload is not msgpack, or does not fit its message type."""


class PayloadTooLarge(DecodeError):
    """A payload is larger than its message type's ``max_size``; it was refused before decoding."""


class BusClosedError(EdabusError, RuntimeError):
    """The bus is closed (or not open yet)."""


class NotAttachedError(EdabusError, RuntimeError):
    """An actor tried to publish or request while no supervisor runs it on a bus."""


class DuplicateNodeError(EdabusError, RuntimeError):
    """A node's id is already live on the bus: two nodes under one id would both take the same keys."""


class SelfRequestError(EdabusError, RuntimeError):
    """An actor sent a request to itself: its handler is busy with the current message, so no reply could come."""


class NoRouteError(EdabusError, LookupError):
    """No live group serves the key a request was sent to, so no reply can come."""


class RequestTimeout(EdabusError, TimeoutError):
    """A request got no reply before its timeout."""


class PublishTimeout(EdabusError, TimeoutError):
    """``publish`` waited its ``timeout`` for credit (a group's node took in too little); nothing was sent."""


class RemoteError(EdabusError):
    """The handler that served a request raised; carries the remote type and message.

    Attributes:
        type_name: the name of the exception class raised by the remote handler.
        message: ``str()`` of that exception.
        key: the key the request was sent to.

    """

    def __init__(self, type_name: str, message: str, key: str = "") -> None:
        super().__init__(f"{type_name}: {message}" + (f" (request to {key})" if key else ""))
        self.type_name = type_name
        self.message = message
        self.key = key


class Undeliverable(EdabusError):
    """A message that no actor will handle; it is dead-lettered (and a request gets this error)."""


class MailboxFull(Undeliverable):
    """A mailbox was full and its overflow policy dropped this message."""


class InboxOverflow(Undeliverable):
    """A group's node inbox already held ``inbox_size + overflow_limit`` arrivals, so this one was refused.

    edabus publishers are held back by credit before this happens; it meets
    publishers that ignore credit (raw Zenoh clients), or more of them at once
    than the limit allows for.
    """


class ActorStopped(Undeliverable):
    """The actor this message was queued for stopped before handling it."""


class ActorEscalated(Undeliverable):
    """The actor (keyed: its key; pool and singleton: the group) exhausted its restarts."""


class StateError(EdabusError):
    """An actor's persistent state could not be loaded or saved."""


class StaleStateError(StateError):
    """A state write found the row at another version: another activation wrote it meanwhile."""


class StateTooLarge(StateError, ValueError):
    """An actor's encoded state is larger than its group's ``max_state_size``; it was not saved."""


class StateStoreError(StateError):
    """The state store failed (unreachable, or a database error); nothing was saved."""


class OutOfOrder(EdabusError):
    """A reliable message arrived ahead of an earlier one of its sender and key; it was not handled."""


class OutboxInUseError(EdabusError):
    """Another bus holds this durable outbox (one bus at a time per outbox file)."""


class Undelivered(EdabusError):
    """Reliable messages that no owner acknowledged before the bus closed (or a wait timed out)."""
