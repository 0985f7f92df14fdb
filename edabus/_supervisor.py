"""Supervisors: keyed, singleton and pool groups that spawn actors on demand.

A supervisor group is (app name, group name). The node hands it each message
whose key matches one of its handlers' message types; the group decodes it,
picks the actor (spawning it if absent), and queues it in that actor's bounded
mailbox. Each actor handles one message at a time, in arrival order.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import structlog
import zenoh

from ._actor import Actor, ActorContext, HandlerSpec, call_handler, call_hook, handlers_of
from ._exceptions import DecodeError, DefinitionError
from ._mailbox import Mailbox
from ._message import Message, decode_message, encode
from ._statistics import SupervisorStatistics
from ._wire import DeadLetter, ErrorReply, Meta, dead_letter_key, encode_meta

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._bus import Bus, Envelope

__all__ = ["KeyedSupervisor", "PoolSupervisor", "SingletonSupervisor", "Supervisor"]

log = structlog.get_logger(__name__)

DEFAULT_MAILBOX_SIZE = 1000
_STOP_TIMEOUT_S = 5.0


@dataclass(slots=True)
class Work:
    """A decoded message on its way to an actor, with the query to answer if it is a request."""

    msg: Message
    spec: HandlerSpec
    envelope: Envelope
    query: zenoh.Query | None


@dataclass(slots=True)
class _Counters:
    received: int = 0
    handled: int = 0
    failed: int = 0
    dead_letters: int = 0
    handler_seconds: float = 0.0


@dataclass(slots=True, eq=False)
class _Activation:
    """One live actor: its instance (None until started), mailbox and run state."""

    key: object
    mailbox: Mailbox[Work]
    instance: Actor | None = None
    running: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Supervisor:
    """What every supervisor kind shares: decoding, handling, replies, dead letters, counters."""

    kind = "abstract"

    def __init__(self, app: str, name: str, actor_cls: type[Actor], *, mailbox_size: int) -> None:
        if not (isinstance(actor_cls, type) and issubclass(actor_cls, Actor)):
            msg = f"{actor_cls!r} is not an edabus.Actor subclass"
            raise DefinitionError(msg)
        self.app = app
        self.name = name
        self.actor_cls = actor_cls
        self.mailbox_size = mailbox_size
        self.handlers = handlers_of(actor_cls)
        if not self.handlers:
            msg = f"{actor_cls.__name__} has no @edabus.handler methods: {self.kind} group {name!r} would get nothing"
            raise DefinitionError(msg)
        for message_type in self.handlers:
            if message_type.__edabus_key__ is None:
                msg = (
                    f"{actor_cls.__name__} handles {message_type.__name__}, which has no key=; "
                    "a supervisor can only subscribe to messages that name their key"
                )
                raise DefinitionError(msg)
        self._counters = _Counters()
        self._bus: Bus | None = None
        self._tg: TaskGroup | None = None
        self._node_id = ""
        self._log = log

    # -- lifecycle, driven by the node ------------------------------------------------------

    def attach(self, bus: Bus, tg: TaskGroup) -> None:
        """Bind the group to the node's bus and task group before any message arrives."""
        self._bus = bus
        self._tg = tg
        self._node_id = bus.node_id
        self._log = log.bind(app=self.app, group=self.name, actor=self.actor_cls.__name__, node=bus.node_id)

    async def stop(self) -> None:
        """Stop every actor of the group (``on_stop`` runs); what is still queued is dead-lettered."""

    def busy(self) -> bool:
        """Whether any actor of the group has a message queued or in hand."""
        raise NotImplementedError

    # -- the path of one message -------------------------------------------------------------

    async def deliver(self, message_type: type[Message], envelope: Envelope, query: zenoh.Query | None) -> None:
        """Decode one arrival and queue it for its actor (waiting while that mailbox is full)."""
        self._counters.received += 1
        spec = self.handlers[message_type]
        try:
            msg = decode_message(message_type, envelope.payload, envelope.key)
        except DecodeError as exc:
            self._reject(envelope, query, exc)
            return
        await self._enqueue(Work(msg, spec, envelope, query))

    async def _enqueue(self, work: Work) -> None:
        raise NotImplementedError

    def _context(self, key: object) -> ActorContext:
        assert self._bus is not None  # noqa: S101 - attach() runs before any message
        return ActorContext(bus=self._bus, app=self.app, group=self.name, key=key, node_id=self._node_id)

    async def _spawn(self, key: object, *args: object) -> Actor:
        instance = self.actor_cls(*args)
        instance._edabus_context = self._context(key)  # noqa: SLF001 - the supervisor owns the context
        await call_hook(instance.on_start)
        self._log.info("actor.spawned", key=key)
        return instance

    async def _stop_instance(self, instance: Actor, key: object) -> None:
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_TIMEOUT_S):
                await call_hook(instance.on_stop)
        except Exception:  # noqa: BLE001 - a broken hook must not stop the others
            self._log.exception("actor.on_stop_failed", key=key)
        self._log.info("actor.stopped", key=key)

    async def _handle(self, instance: Actor, work: Work, key: object) -> None:
        started = time.perf_counter()
        counters = self._counters
        query = work.query
        try:
            result = await call_handler(work.spec, instance, work.msg)
        except Exception as exc:  # noqa: BLE001 - a failing handler must not take the group down
            counters.failed += 1
            self._log.warning("actor.failed", key=key, message=type(work.msg).__name__, error=repr(exc), exc_info=exc)
            try:
                await call_hook(instance.on_failure, exc, work.msg)
            except Exception:  # noqa: BLE001 - a broken hook must not stop the group
                self._log.exception("actor.on_failure_failed", key=key)
            if query is not None:
                _reply_error(query, exc)
            else:
                self.dead_letter(work.envelope, exc)
        else:
            counters.handled += 1
            if query is not None:
                _reply(query, result)
        finally:
            counters.handler_seconds += time.perf_counter() - started
            if query is not None:
                query.drop()

    def _reject(self, envelope: Envelope, query: zenoh.Query | None, exc: BaseException) -> None:
        """A message that cannot reach any actor: answer the requester, or dead-letter it."""
        if query is not None:
            _reply_error(query, exc)
            query.drop()
        self.dead_letter(envelope, exc)

    def fail_queued(self, works: list[Work], exc: BaseException) -> None:
        """Answer or dead-letter messages that were queued for an actor that cannot take them."""
        for work in works:
            self._reject(work.envelope, work.query, exc)

    def dead_letter(self, envelope: Envelope, exc: BaseException) -> None:
        """Publish a message no actor could handle on the group's dead-letter key; count and log it."""
        self._counters.dead_letters += 1
        self._log.warning("message.dead_lettered", key=envelope.key, error_type=type(exc).__name__, error=str(exc))
        if self._bus is None or self._bus.closed:
            return
        letter = DeadLetter(
            key=envelope.key,
            payload=envelope.payload,
            error_type=type(exc).__name__,
            error=str(exc),
            app=self.app,
            group=self.name,
            node=self._node_id,
            type=envelope.meta.type,
            time=time.time(),
        )
        try:
            self._bus.put(dead_letter_key(self.app, self.name), encode(letter))
        except Exception:  # noqa: BLE001 - losing the letter is logged; the group goes on
            self._log.exception("message.dead_letter_failed", key=envelope.key)

    # -- statistics --------------------------------------------------------------------------

    def _live_and_depth(self) -> tuple[int, int, int]:
        """(live actors, messages queued now, the deepest mailbox peak)."""
        raise NotImplementedError

    def statistics(self) -> SupervisorStatistics:
        """A frozen snapshot of the group's counters."""
        live, depth, peak = self._live_and_depth()
        c = self._counters
        return SupervisorStatistics(
            app=self.app,
            group=self.name,
            kind=self.kind,
            node=self._node_id,
            received=c.received,
            handled=c.handled,
            failed=c.failed,
            dead_letters=c.dead_letters,
            live_actors=live,
            mailbox_depth=depth,
            mailbox_peak=peak,
            handler_seconds=c.handler_seconds,
        )


class KeyedSupervisor(Supervisor):
    """One actor per key value (the message field named by ``key``), spawned on demand."""

    kind = "keyed"

    def __init__(self, app: str, name: str, actor_cls: type[Actor], *, key: str, mailbox_size: int) -> None:
        super().__init__(app, name, actor_cls, mailbox_size=mailbox_size)
        self.key_field = key
        for message_type in self.handlers:
            if key not in message_type.__struct_fields__:
                msg = (
                    f"keyed group {name!r}: {actor_cls.__name__} handles {message_type.__name__}, "
                    f"which has no field {key!r} to pick the actor by"
                )
                raise DefinitionError(msg)
        self._actors: dict[object, _Activation] = {}
        self._peak = 0

    def _key_of(self, msg: Message) -> object:
        return getattr(msg, self.key_field)

    def _construct_args(self, key: object) -> tuple[object, ...]:
        return (key,)

    async def _enqueue(self, work: Work) -> None:
        key = self._key_of(work.msg)
        act = self._actors.get(key)
        if act is None:
            act = self._actors[key] = _Activation(key, Mailbox(self.mailbox_size))
        mailbox = act.mailbox
        if mailbox.full():
            await mailbox.put(work)
        else:
            mailbox.put_nowait(work)
        if not act.running:
            act.running = True
            assert self._tg is not None  # noqa: S101 - attach() runs before any message
            self._tg.start_soon(self._run, act)

    async def _run(self, act: _Activation) -> None:
        """Drain one actor's mailbox, one message at a time; spawn the actor first if needed."""
        try:
            if act.instance is None:
                try:
                    act.instance = await self._spawn(act.key, *self._construct_args(act.key))
                except Exception as exc:  # noqa: BLE001 - a failing constructor fails its messages only
                    self._log.exception("actor.spawn_failed", key=act.key)
                    self._actors.pop(act.key, None)
                    self.fail_queued(act.mailbox.drain(), exc)
                    return
            mailbox = act.mailbox
            instance = act.instance
            while mailbox:
                await self._handle(instance, mailbox.get_nowait(), act.key)
        finally:
            act.running = False

    async def stop(self) -> None:
        actors, self._actors = self._actors, {}
        for act in actors.values():
            queued = act.mailbox.drain()
            if queued:
                self.fail_queued(queued, RuntimeError(f"group {self.name!r} stopped"))
            if act.instance is not None:
                await self._stop_instance(act.instance, act.key)

    def busy(self) -> bool:
        return any(act.running for act in self._actors.values())

    def _live_and_depth(self) -> tuple[int, int, int]:
        live = depth = peak = 0
        for act in self._actors.values():
            live += act.instance is not None
            depth += len(act.mailbox)
            peak = max(peak, act.mailbox.peak)
        self._peak = max(self._peak, peak)
        return live, depth, self._peak


class SingletonSupervisor(KeyedSupervisor):
    """Exactly one actor for the whole group, spawned on the first message."""

    kind = "singleton"

    def __init__(self, app: str, name: str, actor_cls: type[Actor], *, mailbox_size: int) -> None:
        Supervisor.__init__(self, app, name, actor_cls, mailbox_size=mailbox_size)
        self.key_field = ""
        self._actors = {}
        self._peak = 0

    def _key_of(self, msg: Message) -> object:  # noqa: ARG002 - one actor, whatever the message
        return None

    def _construct_args(self, key: object) -> tuple[object, ...]:  # noqa: ARG002 - a singleton takes no key
        return ()


class PoolSupervisor(Supervisor):
    """``size`` interchangeable workers sharing one mailbox; each message goes to one free worker."""

    kind = "pool"

    def __init__(self, app: str, name: str, actor_cls: type[Actor], *, size: int, mailbox_size: int) -> None:
        super().__init__(app, name, actor_cls, mailbox_size=mailbox_size)
        if size < 1:
            msg = f"pool group {name!r}: size must be at least 1, got {size}"
            raise DefinitionError(msg)
        self.size = size
        self._queue: Mailbox[Work] = Mailbox(mailbox_size)
        self._workers: list[Actor] = []
        self._starting = 0
        self._idle = 0
        self._indexes = itertools.count()

    async def _enqueue(self, work: Work) -> None:
        await self._queue.put(work)
        # Spawn while more messages wait than idle (or starting) workers can take, up to size.
        while len(self._queue) > self._idle and len(self._workers) + self._starting < self.size:
            self._starting += 1
            self._idle += 1
            assert self._tg is not None  # noqa: S101 - attach() runs before any message
            self._tg.start_soon(self._worker, next(self._indexes))

    async def _worker(self, index: int) -> None:
        try:
            instance = await self._spawn(index)
        except Exception as exc:  # noqa: BLE001 - a failing constructor must not stop the pool
            self._log.exception("actor.spawn_failed", key=index)
            self._idle -= 1
            if not self._workers and self._starting == 1:  # nobody else will take the queue
                self.fail_queued(self._queue.drain(), exc)
            return
        finally:
            self._starting -= 1
        self._workers.append(instance)
        queue = self._queue
        while True:
            work = await queue.get()
            self._idle -= 1
            try:
                await self._handle(instance, work, index)
            finally:
                self._idle += 1

    async def stop(self) -> None:
        queued = self._queue.drain()
        if queued:
            self.fail_queued(queued, RuntimeError(f"group {self.name!r} stopped"))
        workers, self._workers = self._workers, []
        for index, instance in enumerate(workers):
            await self._stop_instance(instance, index)

    def busy(self) -> bool:
        return bool(self._queue) or self._idle < len(self._workers) + self._starting

    def _live_and_depth(self) -> tuple[int, int, int]:
        return len(self._workers), len(self._queue), self._queue.peak


def _reply(query: zenoh.Query, result: Any) -> None:
    type_name = type(result).__edabus_type__ if isinstance(result, Message) else ""
    try:
        payload = encode(result)
    except (TypeError, ValueError) as exc:  # the handler returned something msgpack cannot carry
        _reply_error(query, exc)
        return
    try:
        query.reply(query.key_expr, payload, attachment=encode_meta(Meta(type=type_name)))
    except zenoh.ZError:
        log.debug("reply.failed", key=str(query.key_expr))


def _reply_error(query: zenoh.Query, exc: BaseException) -> None:
    try:
        query.reply_err(encode(ErrorReply(type=type(exc).__name__, message=str(exc))))
    except zenoh.ZError:
        log.debug("reply.failed", key=str(query.key_expr))
