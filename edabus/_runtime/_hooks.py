"""`GroupHooks`: how a feature (durable state, compute devices) takes part in a group's actors.

The runtime knows no feature by name. Whoever builds a group (`GroupSpec.build`)
gives its supervisor the hooks of the features it uses, and the supervisor calls
them, in their order, at fixed points of each activation:

1. `on_construct`, as soon as an instance is built (before it has a context);
2. `on_activate`, once its context is set, before `Actor.on_start` (a failure
   here fails the activation, as a failing constructor does);
3. `before_handler`, once it started: a callable to run before each of its
   handler calls, or None (the first hook's that gives one);
4. `handle`, in place of the plain handling of a message or a batch, for the
   one hook whose `handles` is true (at most one per group), and meanwhile
   `on_publish` for each message its actor publishes (a hook may keep it back,
   to send it later);
5. `on_deactivate`, after `Actor.on_stop`, shielded from cancellation;
6. `on_exhausted`, when an actor's restarts are spent, before it escalates:
   a hook that returns True took the failure over, and the actor restarts with
   a fresh restart window.

A hook keeps what it needs per activation in ``cell.data[hook]``, and sees its
group through `Group`: what a feature may use of a supervisor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from edabus._model._message import Message
    from edabus._transport._bus import Bus

    from ._actor import Actor
    from ._cell import Cell, Work

__all__ = ["Failing", "Group", "GroupHooks"]


class Failing(Protocol):
    """The failure handling of a group (`Failures`), as a hook may call it."""

    async def failed(self, cell: Cell, instance: Actor, works: Sequence[Work], exc: Exception) -> bool:
        """A handler raised: answer or dead-letter ``works``, then apply the policy; False if the cell stops."""
        ...


class Group(Protocol):
    """What a feature's hooks may use of their group's supervisor."""

    @property
    def app(self) -> str:
        """The app's name."""
        ...

    @property
    def name(self) -> str:
        """The group's name."""
        ...

    @property
    def actor_cls(self) -> type[Actor]:
        """The group's actor class."""
        ...

    @property
    def bus(self) -> Bus | None:
        """The bus the group is attached to (None before)."""
        ...

    @property
    def failures(self) -> Failing:
        """What the group does when a handler raises."""
        ...

    def state_key(self, cell: Cell) -> str:
        """The key the cell's state is stored under."""
        ...

    async def call(self, cell: Cell, instance: Actor, works: list[Work]) -> list[Any] | Exception:
        """Call the handler of ``works`` (a batch handler with all of them): its replies, or its error."""
        ...

    async def stop_instance(
        self, cell: Cell, event: str = "actor.stopped", *, save: bool = True, **fields: object
    ) -> None:
        """Stop the cell's actor (``save``: save what changed; else drop it)."""
        ...


class GroupHooks:
    """A feature's part in one group's supervisor; every hook does nothing here."""

    handles = False  # True: `handle` runs each message or batch in place of the plain handling

    def on_construct(self, sup: Group, cell: Cell, instance: Actor) -> None:
        """An instance was just built for ``cell``."""

    async def on_activate(self, sup: Group, cell: Cell, instance: Actor) -> None:
        """The instance has its context and is about to start."""

    def before_handler(self, instance: Actor) -> Callable[[], None] | None:  # noqa: ARG002 - for subclasses
        """What to run before each of the started instance's handler calls (None: nothing)."""
        return None

    async def handle(self, sup: Group, cell: Cell, works: list[Work]) -> bool:
        """Run ``works`` on the cell's actor (where `handles`); False when the cell takes no more."""
        raise NotImplementedError

    def on_publish(self, sup: Group, cell: Cell, msg: Message, key: str | None) -> bool:  # noqa: ARG002
        """The cell's actor publishes ``msg``: True if this hook keeps it back (and sends it later)."""
        return False

    async def on_deactivate(self, sup: Group, cell: Cell, instance: Actor, *, save: bool) -> None:
        """The instance stopped (``save``: normally; else after a failure, its changes dropped)."""

    def on_exhausted(self, sup: Group, cell: Cell, exc: Exception) -> bool:  # noqa: ARG002 - for subclasses
        """An actor's restarts are spent on ``exc``: True if this hook took it over (no escalation)."""
        return False
