"""Arrays on the wire: numpy (and cupy) arrays as message fields.

An array travels as a msgpack extension value of type `ARRAY_EXT` (42) whose
data is, byte for byte (docs/wire-format.md, "Arrays"):

    u8  n, then n ASCII bytes: the numpy dtype string, e.g. "<f4"
    u8  ndim, then ndim little-endian u64: the shape
    the elements, C order (row-major), packed

Decoding makes one read-only `numpy.frombuffer` view over the received bytes
(no copy beyond Zenoh's own). A cupy array is moved to the host once, when
encoded; compute workers move it to their device. numpy is imported only when
an array is met, so edabus itself does not depend on it.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

__all__ = ["ARRAY_EXT", "dec_hook", "enc_hook", "ext_hook"]

ARRAY_EXT = 42
_U64 = struct.Struct("<Q")


def _is_array(obj: object) -> bool:
    module = type(obj).__module__
    return (module == "numpy" or module.startswith("cupy")) and hasattr(obj, "dtype") and hasattr(obj, "shape")


def enc_hook(obj: Any) -> Any:
    """Msgspec's hook for values it cannot encode itself: arrays become the edabus extension."""
    if _is_array(obj):
        return msgspec.msgpack.Ext(ARRAY_EXT, encode_array(obj))
    raise NotImplementedError(f"cannot encode {type(obj).__name__} values")


def encode_array(array: Any) -> bytes:
    """The extension data for an array (numpy, or cupy, copied to the host once)."""
    import numpy as np  # noqa: PLC0415 - only when arrays are used

    if type(array).__module__.startswith("cupy"):
        array = array.get()  # one device-to-host copy
    host = np.asarray(array)
    if not host.flags.c_contiguous:
        host = host.copy(order="C")  # (np.ascontiguousarray would turn a 0-d array into 1-d)
    dtype = host.dtype
    if dtype.hasobject:
        raise TypeError("arrays of Python objects cannot travel; use a numeric dtype")
    dtype_str = dtype.str.encode("ascii")
    header = bytes([len(dtype_str)]) + dtype_str + bytes([host.ndim]) + b"".join(_U64.pack(n) for n in host.shape)
    # tobytes + concatenation measured faster than filling one bytearray (5.7 vs 8.5 us at 64 KiB).
    return header + host.tobytes()


def ext_hook(code: int, data: memoryview) -> Any:
    """Msgspec's hook for extension values: the edabus array extension becomes a numpy array."""
    if code != ARRAY_EXT:
        raise ValueError(f"unknown msgpack extension type {code}")
    import numpy as np  # noqa: PLC0415 - only when arrays are used

    try:
        n = data[0]
        dtype = np.dtype(bytes(data[1 : 1 + n]).decode("ascii"))
        ndim = data[1 + n]
        offset = 2 + n
        shape = tuple(_U64.unpack_from(data, offset + 8 * i)[0] for i in range(ndim))
    except (IndexError, struct.error, TypeError, ValueError) as exc:
        raise ValueError(f"malformed array extension: {exc}") from None
    if dtype.hasobject:
        raise ValueError("an array of Python objects cannot be received")
    offset += 8 * ndim
    count = 1
    for dim in shape:
        count *= dim
    need = count * dtype.itemsize
    if len(data) - offset != need:
        raise ValueError(f"array data holds {len(data) - offset} bytes; shape {shape} of {dtype} needs {need}")
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)


def dec_hook(type_: type, obj: Any) -> Any:
    """Msgspec's hook for fields of types it does not know: ndarray fields take decoded arrays."""
    if getattr(type_, "__module__", "") == "numpy" and type_.__name__ == "ndarray":
        if type(obj).__module__ == "numpy":
            return obj
        raise msgspec.ValidationError(f"expected an array (msgpack extension {ARRAY_EXT}), got {type(obj).__name__}")
    raise NotImplementedError(f"cannot decode into {type_!r}")
