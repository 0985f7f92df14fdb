"""Arrays as message fields: the extension type, round trips, raw producers, bad data."""

from __future__ import annotations

import struct

import anyio
import msgspec
import numpy as np
import pytest
import zenoh
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import edabus
from edabus._model._array import ARRAY_EXT
from edabus._model._message import decode_message, encode
from tests.conftest import eventually, free_port
from tests.test_wire import raw_session


class Vec(edabus.Message, key="arr/{name}/vec"):
    name: str
    x: np.ndarray


DTYPES = st.sampled_from(
    ["?", "i1", "u1", "<i2", ">i2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", ">f8", "<c8", "<c16"]
)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    """Arrays of many dtypes and shapes (0-d and empty included), sometimes non-contiguous views."""
    dtype = np.dtype(draw(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    base = draw(hnp.arrays(dtype, shape))
    view = draw(st.sampled_from(["as is", "transposed", "strided"]))
    if view == "transposed" and base.ndim >= 2:
        return base.T
    if view == "strided" and base.ndim >= 1:
        return base[::2]
    return base


@given(arrays())
def test_arrays_round_trip(array: np.ndarray) -> None:
    """Any numeric array comes back with the same dtype, shape and elements, as a read-only view."""
    got = decode_message(Vec, encode(Vec(name="a", x=array)), "arr/a/vec").x
    assert got.dtype == array.dtype
    assert got.shape == array.shape
    assert np.array_equal(got, array, equal_nan=array.dtype.kind in "fc")
    assert not got.flags.writeable  # a view over the received bytes, not a copy


def test_decoding_views_the_payload_without_copying() -> None:
    """The decoded array's memory is the payload's (one numpy.frombuffer view)."""
    payload = encode(Vec(name="a", x=np.arange(1000, dtype="<f8")))
    got = decode_message(Vec, payload, "arr/a/vec").x
    assert np.shares_memory(got, np.frombuffer(payload, dtype=np.uint8))


def raw_extension(array: np.ndarray) -> bytes:
    """The extension data built by hand from docs/wire-format.md, as a non-edabus producer would."""
    dtype = array.dtype.str.encode()
    dims = b"".join(struct.pack("<Q", n) for n in array.shape)
    return bytes([len(dtype)]) + dtype + bytes([array.ndim]) + dims + np.ascontiguousarray(array).tobytes()


def test_the_documented_layout_is_what_edabus_reads() -> None:
    """An extension value built from the documented layout decodes to the same array."""
    array = np.arange(6, dtype="<i4").reshape(2, 3)
    payload = msgspec.msgpack.encode({"x": msgspec.msgpack.Ext(ARRAY_EXT, raw_extension(array))})
    assert np.array_equal(decode_message(Vec, payload, "arr/r/vec").x, array)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x03<f4", b"\x03<f4\x01" + struct.pack("<Q", 4) + b"\x00" * 3, b"\x02zz\x00", b"\x03|O8\x00"],
)
def test_malformed_array_data_is_a_decode_error(data: bytes) -> None:
    """Truncated headers, short data, unknown or object dtypes: DecodeError, nothing else."""
    payload = msgspec.msgpack.encode({"x": msgspec.msgpack.Ext(ARRAY_EXT, data)})
    with pytest.raises(edabus.DecodeError):
        decode_message(Vec, payload, "arr/m/vec")


def test_object_arrays_are_refused_when_sent() -> None:
    """An array of Python objects cannot travel."""
    with pytest.raises(TypeError, match="Python objects"):
        encode(Vec(name="o", x=np.array([object()])))


sums: dict[str, float] = {}


class Summer(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.key = key

    @edabus.handler
    async def vec(self, msg: Vec) -> float:
        sums[self.key] = float(msg.x.sum())
        return sums[self.key]


async def test_an_array_from_a_raw_zenoh_publisher_reaches_the_actor() -> None:
    """A raw zenoh put carrying the documented extension is decoded and handled."""
    sums.clear()
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    app = edabus.App("arr")
    app.keyed(Summer, key="name")
    async with edabus.connect(listen=endpoint) as bus, edabus.Node(bus, [app]):
        raw = raw_session(endpoint)
        try:
            await anyio.to_thread.run_sync(lambda: raw.liveliness().get("@edabus/member/arr/**").recv())
            array = np.linspace(0.0, 1.0, 11, dtype="<f8")
            payload = msgspec.msgpack.encode({"x": msgspec.msgpack.Ext(ARRAY_EXT, raw_extension(array))})
            raw.put("arr/raw/vec", payload, congestion_control=zenoh.CongestionControl.BLOCK)
            await eventually(lambda: "raw" in sums)
            assert sums["raw"] == pytest.approx(5.5)
            assert await bus.request(Vec(name="b", x=np.ones((3, 3), dtype="<f4")), reply_type=float) == 9.0
        finally:
            raw.close()
