"""Compute workers: actors whose handlers work on arrays, on a GPU when there is one.

`ComputeWorker` picks its array module when it starts: cupy on its GPU
(``device``, default 0) when cupy is installed and finds a device, numpy
otherwise, so the same code runs everywhere. Each GPU worker gets its own CUDA
stream. Handlers use `ComputeWorker.xp` for array functions and
`ComputeWorker.asarray` to bring a received (host) array onto the device.
Batch handlers (``list[Msg]`` parameters) are the natural shape for them: one
kernel launch serves every request that queued meanwhile.
"""

from __future__ import annotations

from typing import Any, ClassVar

import structlog

from ._actor import Actor
from ._gpus import _cupy, gpu_count

__all__ = ["ComputeWorker", "gpu_count"]

log = structlog.get_logger(__name__)


class ComputeWorker(Actor):
    """An actor for array compute; override ``use_gpu``/``device`` on the class to choose.

    Attributes:
        xp: the array module this worker computes with (cupy or numpy), set at start.
        on_gpu: whether it runs on a GPU.

    """

    needs_gpu: ClassVar[bool] = True  # its groups go only to nodes with a GPU, unless allow_cpu
    use_gpu: bool = True  # False: always numpy (set per instance on a CPU fallback)
    device: ClassVar[int] = 0

    xp: Any = None
    on_gpu: bool = False
    _stream: Any = None

    async def on_start(self) -> None:
        """Pick the array module and, on a GPU, the device and a stream of our own."""
        self.select_backend()

    def select_backend(self) -> None:
        """Cupy on ``device`` if possible, else numpy; called by `on_start` (call it if you override that)."""
        cupy = _cupy() if self.use_gpu else None
        if cupy is not None and gpu_count() > self.device:
            cupy.cuda.Device(self.device).use()
            # A blocking stream is ordered with the default stream the handler's own xp calls
            # use, so uploads, kernels and downloads cannot overtake each other.
            self._stream = cupy.cuda.Stream(non_blocking=False)
            self.xp, self.on_gpu = cupy, True
        else:
            import numpy as np  # noqa: PLC0415 - the compute extra

            self.xp, self.on_gpu = np, False
        log.debug("compute.backend", worker=type(self).__name__, gpu=self.on_gpu, device=self.device)

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
