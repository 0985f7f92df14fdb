"""What GPUs this process can use (through cupy, an optional dependency)."""

from __future__ import annotations

import types

__all__ = ["gpu_count", "local_gpus"]


def _cupy() -> types.ModuleType | None:
    try:
        import cupy  # noqa: PLC0415 - optional: the gpu extra
    except ImportError:
        return None
    module: types.ModuleType = cupy
    return module


def gpu_count() -> int:
    """How many GPUs cupy can use here (0 without cupy or without a device)."""
    cupy = _cupy()
    if cupy is None:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no driver, no device: the CPU path
        return 0


def local_gpus() -> list[int]:
    """The device numbers cupy finds here ([] without cupy or a device)."""
    return list(range(gpu_count()))
