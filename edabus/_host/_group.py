"""`GroupSpec`: the declaration of one supervisor group, and how a node builds it.

A spec is what `App.keyed`, `App.singleton` and `App.pool` record. Each node that
hosts the group builds its own supervisor from it (`GroupSpec.build`), with the
hooks of the features the declaration asks for: durable state and reliable
delivery (`Durability`), compute workers (`ComputeHooks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from edabus._compute._hooks import ComputeHooks
from edabus._compute._workers import ComputeWorker
from edabus._durability._persistence import DEFAULT_MAX_STATE_SIZE, Durability
from edabus._exceptions import DefinitionError
from edabus._runtime._actor import Actor, state_type_of
from edabus._runtime._hooks import GroupHooks
from edabus._runtime._keyed import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_ACTORS, KeyedSupervisor, SingletonSupervisor
from edabus._runtime._policy import RestartPolicy
from edabus._runtime._pool import PoolSupervisor
from edabus._runtime._supervisor import DEFAULT_MAILBOX_SIZE, Overflow, Supervisor

if TYPE_CHECKING:
    from edabus._durability._store import StateStore

__all__ = ["GroupSpec", "Hosted", "keeps_state", "stores_of"]


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """The declaration of one supervisor group (see `App.keyed`, `App.singleton`, `App.pool`)."""

    app: str
    name: str
    kind: Literal["keyed", "singleton", "pool"]
    actor_cls: type[Actor]
    key: str = ""
    size: int = 1
    mailbox_size: int = DEFAULT_MAILBOX_SIZE
    overflow: Overflow = "backpressure"
    restart: RestartPolicy | None = None
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    max_actors: int = DEFAULT_MAX_ACTORS
    allow_cpu: bool = False
    cpu_fallback: bool = False
    store: StateStore | None = None
    save_every: int = 1
    max_state_size: int = DEFAULT_MAX_STATE_SIZE

    @property
    def needs_gpu(self) -> bool:
        """Whether only nodes with a GPU host this group (compute workers, unless allow_cpu)."""
        worker = self._compute_worker()
        return worker is not None and worker.needs_gpu and not self.allow_cpu

    def _compute_worker(self) -> type[ComputeWorker] | None:
        cls = self.actor_cls
        return cls if issubclass(cls, ComputeWorker) else None

    def build(self, *, gpus: Sequence[int] = ()) -> Supervisor:
        """A fresh supervisor for this group, for one node (whose GPUs are ``gpus``), with its features' hooks."""
        supervisor = self._build()
        hooks: list[GroupHooks] = []
        durability = self._durability(supervisor)
        if durability is not None:
            hooks.append(durability)
        worker = self._compute_worker()
        if worker is not None:
            hooks.append(ComputeHooks(gpus=gpus, cpu_fallback=self.cpu_fallback, gpus_first=worker.needs_gpu))
        supervisor.set_hooks(hooks)
        return supervisor

    def _durability(self, supervisor: Supervisor) -> Durability | None:
        """Persistent state and reliable delivery for the group, as its actor class asks."""
        state_type = state_type_of(self.actor_cls)
        reliable = any(t.__edabus_reliable__ for t in supervisor.handlers)
        if state_type is None and not reliable:
            return None
        where = f"{self.kind} group {self.app}/{self.name}"
        if state_type is not None and self.kind == "pool":
            msg = f"{where}: {self.actor_cls.__name__} declares persistent state, which needs keyed or singleton"
            raise DefinitionError(msg)
        if state_type is not None and self.store is None:
            msg = (
                f"{where}: {self.actor_cls.__name__} declares persistent state ({state_type.__name__}) "
                "but the group has no store=: pass edabus.SQLiteStore(path), or edabus.MemoryStore() in tests"
            )
            raise DefinitionError(msg)
        if self.save_every < 1 or self.max_state_size < 1:
            msg = f"{where}: save_every and max_state_size must be at least 1"
            raise DefinitionError(msg)
        return Durability(
            f"{self.app}/{self.name}",
            store=self.store if state_type is not None else None,
            state_type=state_type,
            max_state_size=self.max_state_size,
            save_every=self.save_every,
            ordered=self.kind != "pool",
        )

    def _build(self) -> Supervisor:
        common = {"mailbox_size": self.mailbox_size, "overflow": self.overflow, "restart": self.restart}
        if self.kind == "keyed":
            return KeyedSupervisor(
                self.app,
                self.name,
                self.actor_cls,
                key=self.key,
                idle_timeout=self.idle_timeout,
                max_actors=self.max_actors,
                **common,  # type: ignore[arg-type]
            )
        if self.kind == "singleton":
            return SingletonSupervisor(self.app, self.name, self.actor_cls, **common)  # type: ignore[arg-type]
        return PoolSupervisor(self.app, self.name, self.actor_cls, size=self.size, **common)  # type: ignore[arg-type]


class Hosted(Protocol):
    """What a node hosts: an `App` (its name, and its groups' declarations)."""

    @property
    def name(self) -> str:
        """The app's name."""

    @property
    def groups(self) -> Sequence[GroupSpec]:
        """The app's groups, in the order they were declared."""


def keeps_state(sup: Supervisor) -> bool:
    """Whether the group's actors keep stored state."""
    durability = sup.hook(Durability)
    return durability is not None and durability.state_type is not None


def stores_of(supervisors: Iterable[Supervisor]) -> list[StateStore]:
    """The state stores of these groups, each once (a node opens them before its actors start)."""
    stores: list[StateStore] = []
    for sup in supervisors:
        durability = sup.hook(Durability)
        store = durability.store if durability is not None else None
        if store is not None and all(store is not known for known in stores):
            stores.append(store)
    return stores
