"""`ComputeHooks`: what compute workers add to their group's supervisor (`GroupHooks`).

- Spread: each worker whose class leaves ``device`` None gets one of the node's
  GPUs, handed out in turn as workers spawn.
- Device: before each handler call a GPU worker makes its device and stream current.
- CPU fallback (``cpu_fallback=True``): once an actor's restarts are spent, the
  group moves to numpy (every worker built after is told ``use_gpu = False``)
  instead of escalating; once only.
- Placement: the group's keys go to members with a GPU while there is one
  (`gpus_first`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from edabus._logging import get_logger
from edabus._runtime._hooks import GroupHooks

from ._workers import ComputeWorker

if TYPE_CHECKING:
    from edabus._runtime._actor import Actor
    from edabus._runtime._cell import Cell
    from edabus._runtime._hooks import Group
    from edabus._runtime._supervisor import Supervisor

__all__ = ["ComputeHooks", "gpus_first"]

log = get_logger(__name__)


class ComputeHooks(GroupHooks):
    """The compute part of one group of `ComputeWorker` actors on one node."""

    def __init__(self, *, gpus: Sequence[int] = (), cpu_fallback: bool = False, gpus_first: bool = True) -> None:
        self.gpus = list(gpus)  # the node's GPUs, spread over the workers
        self.cpu_fallback = cpu_fallback
        self.gpus_first = gpus_first
        self.on_cpu = False  # the fallback happened
        self._spawned = 0

    def on_construct(self, sup: Group, cell: Cell, instance: Actor) -> None:  # noqa: ARG002 - the hook's signature
        """Tell a new worker where to compute: numpy after a fallback, else its share of the GPUs."""
        if not isinstance(instance, ComputeWorker):
            return
        if self.on_cpu:
            instance.use_gpu = False
        elif self.gpus and instance.device is None:
            instance.device = self.gpus[self._spawned % len(self.gpus)]
            self._spawned += 1

    def before_handler(self, instance: Actor) -> Callable[[], None] | None:
        """A GPU worker's device and stream, made current before each handler call."""
        return instance.activate if isinstance(instance, ComputeWorker) and instance.on_gpu else None

    def on_exhausted(self, sup: Group, cell: Cell, exc: Exception) -> bool:
        """A physics engine's move: the GPU keeps failing, so compute on the CPU instead (once)."""
        if not self.cpu_fallback or self.on_cpu:
            return False
        self.on_cpu = True
        log.warning("group.cpu_fallback", app=sup.app, group=sup.name, key=cell.key, error=repr(exc))
        return True


def gpus_first(sup: Supervisor) -> bool:
    """Whether ``sup``'s keys go to members with a GPU while there is one (compute groups)."""
    hooks = sup.hook(ComputeHooks)
    return hooks is not None and hooks.gpus_first
