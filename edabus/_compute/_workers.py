"""Compute workers: actors whose handlers work on arrays, on a GPU when there is one.

`ComputeWorker` picks its array module when it starts: cupy on its GPU when
cupy is installed and finds the device, numpy otherwise, so the same code runs
everywhere. Its GPU is the class's ``device``, or, when that is None (the
default), one of the GPUs its node offers (`Node(gpus=...)`, ``edabus run
--gpus``), handed out in turn as workers spawn. Each GPU worker gets its own
CUDA stream; the node makes the worker's device and stream current before each
of its handler calls, so workers on different GPUs share the event loop's
thread safely. Handlers use `ComputeWorker.xp` for array functions and
`ComputeWorker.asarray` to bring a received (host) array onto the device.
Batch handlers (``list[Msg]`` parameters) are the natural shape for them: one
kernel launch serves every request that queued meanwhile.
"""

from __future__ import annotations

from typing import Any, ClassVar

from edabus._logging import get_logger
from edabus._runtime._actor import Actor

from ._gpus import _cupy, gpu_count

__all__ = ["ComputeWorker", "gpu_count"]

log = get_logger(__name__)


class ComputeWorker(Actor):
    """An actor for array compute; override ``use_gpu``/``device`` on the class to choose.

    Attributes:
        xp: the array module this worker computes with (cupy or numpy), set at start.
        on_gpu: whether it runs on a GPU.

    """

    needs_gpu: ClassVar[bool] = True  # its groups go only to nodes with a GPU, unless allow_cpu
    use_gpu: bool = True  # False: always numpy (set per instance on a CPU fallback)
    device: int | None = None  # None: one of the node's GPUs (0 outside a node)

    xp: Any = None
    on_gpu: bool = False
    _device: Any = None
    _stream: Any = None

    async def on_start(self) -> None:
        """Pick the array module and, on a GPU, the device and a stream of our own."""
        self.select_backend()

    def select_backend(self) -> None:
        """Cupy on ``device`` if possible, else numpy; called by `on_start` (call it if you override that)."""
        cupy = _cupy() if self.use_gpu else None
        if self.device is None:
            self.device = 0
        if cupy is not None and gpu_count() > self.device:
            self._device = cupy.cuda.Device(self.device)
            self._device.use()
            # A blocking stream is ordered with the default stream, so work a handler puts on
            # either cannot overtake the other's.
            self._stream = cupy.cuda.Stream(non_blocking=False)
            self._stream.use()
            self.xp, self.on_gpu = cupy, True
        else:
            import numpy as np  # noqa: PLC0415 - the compute extra

            self.xp, self.on_gpu = np, False
        log.debug("compute.backend", worker=type(self).__name__, gpu=self.on_gpu, device=self.device)

    def activate(self) -> None:
        """Make this worker's device and stream current (the node calls it before each handler)."""
        if self.on_gpu:
            self._device.use()
            self._stream.use()

    def asarray(self, array: Any) -> Any:
        """``array`` on this worker's device (a no-op on numpy)."""
        if self.xp is None:
            self.select_backend()
        if self.on_gpu:
            with self._stream:
                return self.xp.asarray(array)
        return self.xp.asarray(array)

    def to_host(self, array: Any) -> Any:
        """``array`` as a numpy array (one device-to-host copy on a GPU)."""
        if self.on_gpu:
            with self._stream:
                host = self.xp.asnumpy(array)
            self._stream.synchronize()
            return host
        return array
