"""`App`: a named set of supervisor groups, declared at import and hosted by nodes.

An app holds only declarations (`GroupSpec`); each `Node` that hosts it builds
its own supervisors from them, so one app object can be hosted by several
nodes, in one process or many.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio
import zenoh

from ._actor import Actor, handlers_of
from ._exceptions import DefinitionError, KeyValueError
from ._keys import check_key_value
from ._supervisor import (
    DEFAULT_MAILBOX_SIZE,
    KeyedSupervisor,
    PoolSupervisor,
    SingletonSupervisor,
    Supervisor,
)

if TYPE_CHECKING:
    from ._bus import Bus

__all__ = ["App", "GroupSpec"]


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """The declaration of one supervisor group."""

    app: str
    name: str
    kind: Literal["keyed", "singleton", "pool"]
    actor_cls: type[Actor]
    key: str = ""
    size: int = 1
    mailbox_size: int = DEFAULT_MAILBOX_SIZE

    def build(self) -> Supervisor:
        """A fresh supervisor for this group, for one node."""
        if self.kind == "keyed":
            return KeyedSupervisor(self.app, self.name, self.actor_cls, key=self.key, mailbox_size=self.mailbox_size)
        if self.kind == "singleton":
            return SingletonSupervisor(self.app, self.name, self.actor_cls, mailbox_size=self.mailbox_size)
        return PoolSupervisor(self.app, self.name, self.actor_cls, size=self.size, mailbox_size=self.mailbox_size)


def _check_name(what: str, name: str) -> str:
    try:
        return check_key_value(what, name)
    except KeyValueError as exc:
        raise DefinitionError(str(exc)) from exc


class App:
    """A named group of supervisors: ``app.keyed(...)``, ``app.pool(...)``, ``app.singleton(...)``."""

    def __init__(self, name: str) -> None:
        self.name = _check_name("app name", name)
        self._groups: dict[str, GroupSpec] = {}

    def __repr__(self) -> str:
        return f"App({self.name!r}, groups={list(self._groups)})"

    @property
    def groups(self) -> tuple[GroupSpec, ...]:
        """The declared groups, in declaration order."""
        return tuple(self._groups.values())

    def keyed(
        self, actor_cls: type[Actor], *, key: str, name: str | None = None, mailbox_size: int = DEFAULT_MAILBOX_SIZE
    ) -> GroupSpec:
        """One ``actor_cls(key_value)`` per value of the message field ``key``, spawned on demand."""
        return self._add(
            GroupSpec(self.name, name or actor_cls.__name__, "keyed", actor_cls, key=key, mailbox_size=mailbox_size)
        )

    def singleton(
        self, actor_cls: type[Actor], *, name: str | None = None, mailbox_size: int = DEFAULT_MAILBOX_SIZE
    ) -> GroupSpec:
        """Exactly one ``actor_cls()``, spawned on the first message."""
        return self._add(
            GroupSpec(self.name, name or actor_cls.__name__, "singleton", actor_cls, mailbox_size=mailbox_size)
        )

    def pool(
        self,
        actor_cls: type[Actor],
        *,
        size: int,
        name: str | None = None,
        mailbox_size: int = DEFAULT_MAILBOX_SIZE,
    ) -> GroupSpec:
        """Up to ``size`` interchangeable ``actor_cls()`` workers; each message goes to one free worker."""
        return self._add(
            GroupSpec(self.name, name or actor_cls.__name__, "pool", actor_cls, size=size, mailbox_size=mailbox_size)
        )

    def _add(self, spec: GroupSpec) -> GroupSpec:
        _check_name("group name", spec.name)
        if spec.name in self._groups:
            msg = f"app {self.name!r} already has a group named {spec.name!r}; pass name= to tell them apart"
            raise DefinitionError(msg)
        _check_patterns(spec)
        spec.build()  # validates the actor class, handler table and key field now, at import
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
        from ._bus import connect as open_bus  # noqa: PLC0415 - app sits above bus only at run time
        from ._node import Node  # noqa: PLC0415

        if bus is not None:
            async with Node(bus, [self]):
                await anyio.sleep_forever()
        async with open_bus(connect, config=config) as own_bus, Node(own_bus, [self]):
            await anyio.sleep_forever()


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
