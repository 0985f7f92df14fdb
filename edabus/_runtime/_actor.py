"""`Actor`, the `handler` decorator, and the handler table read from annotations.

An actor is a plain class: construct it and call its handlers in a unit test,
no bus needed. A supervisor attaches an `ActorContext` before ``on_start``, so
handlers can publish and request without holding a reference to any actor.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

import msgspec

from edabus._exceptions import DefinitionError, NotAttachedError, SelfRequestError
from edabus._model._message import Message, raw_annotations

if TYPE_CHECKING:
    from edabus._transport._bus import Bus

    from ._timers import Timer, Timers

__all__ = ["Actor", "ActorContext", "HandlerSpec", "group_handlers", "handler", "handlers_of", "state_type_of"]

_F = TypeVar("_F", bound=Callable[..., Any])
_R = TypeVar("_R")


DEFAULT_MAX_BATCH = 64


@overload
def handler(fn: _F, /) -> _F: ...
@overload
def handler(*, max_batch: int = ..., max_delay: float = ...) -> Callable[[_F], _F]: ...
def handler(fn: _F | None = None, /, *, max_batch: int = DEFAULT_MAX_BATCH, max_delay: float = 0.0) -> Any:
    """Mark a method as the handler for the message type its parameter is annotated with.

    The return annotation is what a request to that message gets back (None: an
    acknowledgement). Handlers may be ``async def`` (the usual case) or plain ``def``.

    A parameter annotated ``list[Msg]`` makes a *batch* handler: messages that queued
    while the previous call ran are handed over together, up to ``max_batch``; with
    ``max_delay`` the actor waits that long for more when the batch is not full. It
    returns ``list[Reply]``, one reply per message, in order.
    """

    def mark(method: _F) -> _F:
        if max_batch < 1 or max_delay < 0:
            msg = f"{method.__qualname__}: max_batch must be >= 1 and max_delay >= 0"
            raise DefinitionError(msg)
        method.__edabus_handler__ = (max_batch, max_delay)  # type: ignore[attr-defined]
        return method

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """One handler: the method, the message type it takes and what it returns."""

    name: str
    message_type: type[Message]
    reply_type: Any
    is_async: bool
    function: Callable[..., Any]
    batch: bool = False
    max_batch: int = 1
    max_delay: float = 0.0


class TimersOwner(Protocol):
    """Whoever makes an actor's timers when it first asks (its supervisor)."""

    def timers_of(self, cell: Any) -> Timers: ...

    def delivers_to(self, msg: Message, key: object) -> bool:
        """Whether ``msg`` would go to this group's actor of ``key`` (and no other)."""
        ...

    def holds(self, cell: Any, msg: Message, key: str | None) -> bool:
        """Whether the group keeps ``msg``, published by the cell's actor, back (to send it later)."""
        ...


@dataclass(frozen=True, slots=True)
class ActorContext:
    """What a running actor knows of its surroundings."""

    bus: Bus
    app: str
    group: str
    key: object
    node_id: str
    _owner: TimersOwner = field(repr=False)
    _cell: object = field(repr=False)

    @property
    def timers(self) -> Timers:
        """The actor's timers, made on first use (most actors have none: fewer objects per activation)."""
        return self._owner.timers_of(self._cell)


class Actor:
    """Base class of actors. Override the hooks you need; they do nothing by default.

    A keyed actor is constructed as ``cls(key)``; singleton and pool actors as ``cls()``.
    """

    _edabus_context: ActorContext | None = None

    async def on_start(self) -> None:
        """Runs once, before the first message."""

    async def on_stop(self) -> None:
        """Runs once, when the actor stops (its node stops, or it is passivated)."""

    async def on_failure(self, exc: BaseException, msg: Message) -> None:
        """Runs when a handler raised ``exc`` while handling ``msg``."""

    if not TYPE_CHECKING:  # hidden from type checkers: they must not take every attribute for granted

        def __getattr__(self, name: str) -> Any:
            # Reached only when normal lookup fails. Outside a supervisor nothing loads a
            # stored ``state``: it starts as its Struct's defaults, so an actor class
            # can be unit-tested as a plain class (under a supervisor it is always set).
            if name == "state":
                state_type = state_type_of(type(self))
                if state_type is not None:
                    state = self.state = state_type()
                    return state
            msg = f"{type(self).__name__!r} object has no attribute {name!r}"
            raise AttributeError(msg, name=name, obj=self)

    @property
    def context(self) -> ActorContext:
        """The running actor's context; raises `NotAttachedError` outside a supervisor."""
        ctx = self._edabus_context
        if ctx is None:
            msg = f"{type(self).__name__} is not running under a supervisor, so it has no bus"
            raise NotAttachedError(msg)
        return ctx

    async def publish(self, msg: Message, *, key: str | None = None) -> None:
        """Publish a message from inside a handler, as `Bus.publish` does, without waiting.

        A ``reliable=True`` type is delivered at least once from here too: the bus keeps
        it until its owner acknowledges it. The handler never waits for credit or for
        acknowledgements: an actor waiting on its own group would wait for itself.

        An actor with stored state publishes its reliable messages only once the
        handler returned and the state it changed was saved: a handler that raises
        (or whose save fails) publishes none of them (docs/durability.md).
        """
        ctx = self.context
        if ctx._owner.holds(ctx._cell, msg, key):  # noqa: SLF001 - the actor's own supervisor
            return
        await ctx.bus.publish(msg, key=key, backpressure=False)

    @overload
    async def request(self, msg: Message, *, timeout: float = ..., reply_type: type[_R]) -> _R: ...
    @overload
    async def request(self, msg: Message, *, timeout: float = ..., reply_type: None = ...) -> Any: ...
    async def request(self, msg: Message, *, timeout: float = 5.0, reply_type: type[Any] | None = None) -> Any:
        """Send a request from inside a handler and return the reply (typed as ``reply_type``, where given).

        A request to this very actor is refused at once (`SelfRequestError`): its
        handler is busy with the current message, so the request would wait out its
        timeout. Call the handler method directly instead.
        """
        ctx = self.context
        if ctx._owner.delivers_to(msg, ctx.key):  # noqa: SLF001 - the actor's own supervisor
            what = f"{type(self).__name__}({ctx.key!r})" if ctx.key is not None else type(self).__name__
            text = (
                f"{what} sent a request to itself ({type(msg).__name__}); it would wait for its own "
                "handler, which is busy with this message: call the handler method directly"
            )
            raise SelfRequestError(text)
        return await ctx.bus.request(msg, timeout=timeout, reply_type=reply_type)

    def schedule_once(self, delay: float, msg: Message) -> Timer:
        """Send ``msg`` to this actor itself after ``delay`` seconds (through its mailbox)."""
        return self.context.timers.schedule(msg, delay, None)

    def schedule_every(self, interval: float, msg: Message, *, delay: float | None = None) -> Timer:
        """Send ``msg`` to this actor every ``interval`` seconds, first after ``delay`` (default: interval)."""
        return self.context.timers.schedule(msg, interval if delay is None else delay, interval)


def group_handlers(actor_cls: object, kind: str, group: str) -> dict[type[Message], HandlerSpec]:
    """The handler table of a group's actor class; `DefinitionError` if it cannot be one."""
    if not (isinstance(actor_cls, type) and issubclass(actor_cls, Actor)):
        msg = f"{actor_cls!r} is not an edabus.Actor subclass"
        raise DefinitionError(msg)
    handlers = handlers_of(actor_cls)
    if not handlers:
        msg = f"{actor_cls.__name__} has no @edabus.handler methods: {kind} group {group!r} would get nothing"
        raise DefinitionError(msg)
    for message_type in handlers:
        if message_type.__edabus_key__ is None:
            msg = (
                f"{actor_cls.__name__} handles {message_type.__name__}, which has no key=; "
                "a supervisor can only subscribe to messages that name their key"
            )
            raise DefinitionError(msg)
    return handlers


def handlers_of(cls: type[Actor]) -> dict[type[Message], HandlerSpec]:
    """The handler table of an actor class, keyed by message type; built once per class."""
    cached: dict[type[Message], HandlerSpec] | None = cls.__dict__.get("__edabus_handlers__")
    if cached is not None:
        return cached
    table: dict[type[Message], HandlerSpec] = {}
    for name in dir(cls):
        fn = getattr(cls, name, None)
        if not callable(fn) or not getattr(fn, "__edabus_handler__", False):
            continue
        spec = _spec_for(cls, name, fn)
        if spec.message_type in table:
            other = table[spec.message_type].name
            msg = (
                f"{cls.__name__}: handlers {other!r} and {name!r} both take "
                f"{spec.message_type.__name__}; one message type has one handler"
            )
            raise DefinitionError(msg)
        table[spec.message_type] = spec
    cls.__edabus_handlers__ = table  # type: ignore[attr-defined]
    return table


def _spec_for(cls: type[Actor], name: str, fn: Callable[..., Any]) -> HandlerSpec:
    where = f"{cls.__name__}.{name}"
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        msg = f"{where}: cannot resolve its annotations ({exc})"
        raise DefinitionError(msg) from exc
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    if len(params) != 1:
        msg = f"{where}: a handler takes exactly one argument, the message (it takes {len(params)})"
        raise DefinitionError(msg)
    message_type = hints.get(params[0].name)
    batch = typing.get_origin(message_type) is list
    if batch:
        (message_type,) = typing.get_args(message_type) or (None,)
    if not (isinstance(message_type, type) and issubclass(message_type, Message)):
        msg = f"{where}: annotate the message parameter with an edabus.Message subclass (got {message_type!r})"
        raise DefinitionError(msg)
    reply_type = hints.get("return", type(None))
    if batch:
        if typing.get_origin(reply_type) is not list and reply_type is not type(None):
            msg = f"{where}: a batch handler returns list[Reply] (one per message) or None"
            raise DefinitionError(msg)
        reply_type = (typing.get_args(reply_type) or (None,))[0] if reply_type is not type(None) else None
    if reply_type is type(None):
        reply_type = None
    max_batch, max_delay = getattr(fn, "__edabus_handler__", (1, 0.0))
    return HandlerSpec(
        name=name,
        message_type=message_type,
        reply_type=reply_type,
        is_async=inspect.iscoroutinefunction(fn),
        function=fn,
        batch=batch,
        max_batch=max_batch if batch else 1,
        max_delay=max_delay if batch else 0.0,
    )


async def call_handler(spec: HandlerSpec, actor: Actor, msg: Message) -> Any:
    """Run one handler on one message."""
    if spec.is_async:
        return await spec.function(actor, msg)
    return spec.function(actor, msg)


async def call_hook(hook: Callable[..., Awaitable[None] | None], *args: Any) -> None:
    """Run a lifecycle hook that may be sync or async."""
    result = hook(*args)
    if inspect.isawaitable(result):
        await result


def state_type_of(actor_cls: type) -> type[msgspec.Struct] | None:
    """The Struct an actor class annotates ``state`` with (its stored state), or None; checked at group definition."""
    try:
        hints: dict[str, object] = typing.get_type_hints(actor_cls)
    except (NameError, TypeError):
        hints = raw_annotations(actor_cls)
    state_type = hints.get("state")
    if isinstance(state_type, str):
        msg = (
            f"{actor_cls.__name__}.state is annotated {state_type!r}, which does not resolve: "
            "define the state Struct at module level"
        )
        raise DefinitionError(msg)
    if not (isinstance(state_type, type) and issubclass(state_type, msgspec.Struct)):
        return None
    try:
        state_type()
    except TypeError as exc:
        msg = f"{actor_cls.__name__}.state: {state_type.__name__} must have a default for every field ({exc})"
        raise DefinitionError(msg) from exc
    return state_type
