"""`App`: a named set of supervisor groups, declared at import and hosted by nodes.

An app holds only declarations (`GroupSpec`); each `Node` that hosts it builds
its own supervisors from them, so one app object can be hosted by several
nodes, in one process or many.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import zenoh

from edabus._durability._persistence import DEFAULT_MAX_STATE_SIZE
from edabus._exceptions import DefinitionError, KeyValueError
from edabus._model._keys import check_key_value
from edabus._runtime._actor import Actor, handlers_of
from edabus._runtime._keyed import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_ACTORS
from edabus._runtime._policy import RestartPolicy
from edabus._runtime._supervisor import DEFAULT_MAILBOX_SIZE, Overflow

from ._group import GroupSpec

if TYPE_CHECKING:
    from edabus._durability._store import StateStore
    from edabus._transport._bus import Bus

__all__ = ["App"]


def _check_name(what: str, name: str) -> str:
    try:
        return check_key_value(what, name)
    except KeyValueError as exc:
        raise DefinitionError(str(exc)) from exc


class App:
    """A named group of supervisors: ``app.keyed(...)``, ``app.pool(...)``, ``app.singleton(...)``.

    Args:
        name: the app's name, a key chunk.
        store: where the groups keep their actors' persistent state, unless a group
            names its own (`SQLiteStore`, `PostgresStore`, `MemoryStore`).

    """

    def __init__(self, name: str, *, store: StateStore | None = None) -> None:
        self.name = _check_name("app name", name)
        self.store = store
        self._groups: dict[str, GroupSpec] = {}

    def __repr__(self) -> str:
        return f"App({self.name!r}, groups={list(self._groups)})"

    @property
    def groups(self) -> tuple[GroupSpec, ...]:
        """The declared groups, in declaration order."""
        return tuple(self._groups.values())

    def keyed(
        self,
        actor_cls: type[Actor],
        *,
        key: str,
        name: str | None = None,
        mailbox_size: int = DEFAULT_MAILBOX_SIZE,
        overflow: Overflow = "backpressure",
        restart: RestartPolicy | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_actors: int = DEFAULT_MAX_ACTORS,
        allow_cpu: bool = False,
        cpu_fallback: bool = False,
        store: StateStore | None = None,
        save_every: int = 1,
        max_state_size: int = DEFAULT_MAX_STATE_SIZE,
    ) -> GroupSpec:
        """One ``actor_cls(key_value)`` per value of the message field ``key``, spawned on demand.

        Args:
            actor_cls: the `Actor` subclass; its handlers' message types are what the group gets.
            key: the message field whose value picks the actor.
            name: the group name (default: the class name).
            mailbox_size: messages each actor may have waiting.
            overflow: what a full mailbox does: ``"backpressure"`` (wait), ``"drop_newest"``
                or ``"drop_oldest"`` (counted and dead-lettered).
            restart: the restart policy (default `RestartPolicy()`).
            idle_timeout: seconds without a message before an actor is passivated (None: never).
            max_actors: live actors at most; the least recently used idle one makes room.
            allow_cpu: for a `ComputeWorker`, let nodes without a GPU host the group.
            cpu_fallback: for a `ComputeWorker`, move to numpy instead of escalating.
            store: where the actors' persistent ``state`` is kept (default: the app's).
            save_every: changed messages an actor may handle before its state is saved;
                it is saved sooner whenever its mailbox runs empty (docs/durability.md).
            max_state_size: the largest encoded state, in bytes; a larger one is refused
                (`StateTooLarge`), never truncated.

        """
        return self._add(
            GroupSpec(
                self.name,
                name or actor_cls.__name__,
                "keyed",
                actor_cls,
                key=key,
                mailbox_size=mailbox_size,
                overflow=overflow,
                restart=restart,
                idle_timeout=idle_timeout,
                max_actors=max_actors,
                allow_cpu=allow_cpu,
                cpu_fallback=cpu_fallback,
                store=store or self.store,
                save_every=save_every,
                max_state_size=max_state_size,
            )
        )

    def singleton(
        self,
        actor_cls: type[Actor],
        *,
        name: str | None = None,
        mailbox_size: int = DEFAULT_MAILBOX_SIZE,
        overflow: Overflow = "backpressure",
        restart: RestartPolicy | None = None,
        allow_cpu: bool = False,
        cpu_fallback: bool = False,
        store: StateStore | None = None,
        save_every: int = 1,
        max_state_size: int = DEFAULT_MAX_STATE_SIZE,
    ) -> GroupSpec:
        """Exactly one ``actor_cls()``, spawned on the first message; options as for `keyed`."""
        return self._add(
            GroupSpec(
                self.name,
                name or actor_cls.__name__,
                "singleton",
                actor_cls,
                mailbox_size=mailbox_size,
                overflow=overflow,
                restart=restart,
                allow_cpu=allow_cpu,
                cpu_fallback=cpu_fallback,
                store=store or self.store,
                save_every=save_every,
                max_state_size=max_state_size,
            )
        )

    def pool(
        self,
        actor_cls: type[Actor],
        *,
        size: int,
        name: str | None = None,
        mailbox_size: int = DEFAULT_MAILBOX_SIZE,
        overflow: Overflow = "backpressure",
        restart: RestartPolicy | None = None,
        allow_cpu: bool = False,
        cpu_fallback: bool = False,
    ) -> GroupSpec:
        """Up to ``size`` interchangeable ``actor_cls()`` workers sharing one mailbox of ``mailbox_size``.

        Restarts count pool-wide: a failing worker is replaced until the bound is exhausted.
        For a `ComputeWorker`: ``allow_cpu`` lets nodes without a GPU host the group;
        ``cpu_fallback`` moves the group to numpy instead of escalating when its GPU
        restarts are exhausted.
        """
        return self._add(
            GroupSpec(
                self.name,
                name or actor_cls.__name__,
                "pool",
                actor_cls,
                size=size,
                mailbox_size=mailbox_size,
                overflow=overflow,
                restart=restart,
                allow_cpu=allow_cpu,
                cpu_fallback=cpu_fallback,
            )
        )

    def _add(self, spec: GroupSpec) -> GroupSpec:
        _check_name("group name", spec.name)
        if spec.name in self._groups:
            msg = f"app {self.name!r} already has a group named {spec.name!r}; pass name= to tell them apart"
            raise DefinitionError(msg)
        _check_patterns(spec)
        spec.build()  # validates the actor class, handler table and key field now, at import
        _check_constructor(spec)
        self._groups[spec.name] = spec
        return spec

    async def run(
        self,
        bus: Bus | None = None,
        *,
        connect: str | Sequence[str] | None = None,
        config: str | Path | None = None,
    ) -> None:
        """Host this app until cancelled, on ``bus`` or on a bus opened for the purpose."""
        from ._connect import connect as open_bus  # noqa: PLC0415 - app sits above bus only at run time
        from ._node import Node  # noqa: PLC0415

        if bus is not None:
            async with Node(bus, [self]):
                await anyio.sleep_forever()
        async with open_bus(connect, config=config) as own_bus, Node(own_bus, [self]):
            await anyio.sleep_forever()


def _check_constructor(spec: GroupSpec) -> None:
    """A keyed actor is built as ``cls(key)``, the others as ``cls()``: refuse a class that cannot be, now."""
    cls = spec.actor_cls
    keyed = spec.kind == "keyed"
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature to read (a C extension type): trust it
        return
    try:
        signature.bind(*(("key",) if keyed else ()))
    except TypeError:
        call = f"{cls.__name__}(key)" if keyed else f"{cls.__name__}()"
        need = "def __init__(self, key: str)" if keyed else "an __init__ that takes no arguments"
        msg = (
            f"{spec.kind} group {spec.app}/{spec.name}: edabus builds each actor as {call}, "
            f"which {cls.__name__}{signature} does not accept; give it {need}"
        )
        raise DefinitionError(msg) from None


def _check_patterns(spec: GroupSpec) -> None:
    """Two message types of one group whose keys overlap would deliver one message twice."""
    types = list(handlers_of(spec.actor_cls))
    for i, first in enumerate(types):
        for second in types[i + 1 :]:
            a, b = first.__edabus_key__, second.__edabus_key__
            if a is not None and b is not None and zenoh.KeyExpr(a.pattern).intersects(zenoh.KeyExpr(b.pattern)):
                msg = (
                    f"group {spec.name!r}: {first.__name__} ({a.template!r}) and {second.__name__} "
                    f"({b.template!r}) have overlapping keys, so one message would reach both handlers"
                )
                raise DefinitionError(msg)
