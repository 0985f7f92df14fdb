"""Messages: the msgpack map on the wire, key fields, and payloads that do not decode."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edabus
from edabus import DecodeError
from edabus._model._message import decode_message, encode, find_types_for_key, message_type


class Reading(edabus.Message, key="sensors/{site}/{sensor}/reading"):
    site: str
    sensor: int
    value: float
    tags: list[str] = msgspec.field(default_factory=list)
    note: str | None = None


class Reply(edabus.Message):
    ok: bool


SITE = st.text(alphabet="abcdefghij0123456789_-", min_size=1, max_size=10)
READINGS = st.builds(
    Reading,
    site=SITE,
    sensor=st.integers(min_value=0, max_value=2**40),
    value=st.floats(allow_nan=False),
    tags=st.lists(st.text(max_size=5), max_size=3),
    note=st.none() | st.text(max_size=10),
)


@given(READINGS)
def test_codec_round_trips(msg: Reading) -> None:
    """Encoding a message and decoding it on its own key gives an equal message."""
    assert decode_message(Reading, encode(msg), msg.key()) == msg


@given(READINGS)
def test_payload_is_a_map_by_field_name(msg: Reading) -> None:
    """The payload is a plain msgpack map keyed by field name (the open wire contract)."""
    raw = msgspec.msgpack.decode(encode(msg))
    assert raw["site"] == msg.site
    assert raw["sensor"] == msg.sensor
    assert set(raw) <= set(Reading.__struct_fields__)


def test_key_fields_may_be_left_out_of_the_payload() -> None:
    """A raw publisher may send only the fields the key does not carry."""
    payload = msgspec.msgpack.encode({"value": 1.5})
    msg = decode_message(Reading, payload, "sensors/north/7/reading")
    assert msg == Reading(site="north", sensor=7, value=1.5)


def test_key_and_payload_must_agree() -> None:
    """A key field whose payload value disagrees with the key is a decode error."""
    payload = encode(Reading(site="south", sensor=7, value=1.0))
    with pytest.raises(DecodeError, match="disagrees with the key"):
        decode_message(Reading, payload, "sensors/north/7/reading")


@given(st.binary(max_size=64))
def test_garbage_bytes_raise_decode_error_only(payload: bytes) -> None:
    """Any byte string either decodes or raises DecodeError, never another exception."""
    with contextlib.suppress(DecodeError):
        decode_message(Reading, payload, "sensors/north/7/reading")


VALUES = st.integers(-(2**63), 2**63 - 1) | st.text(max_size=4) | st.none()


@given(st.dictionaries(st.text(max_size=6), VALUES, max_size=5))
def test_wrong_schema_maps_raise_decode_error(fields: dict[str, object]) -> None:
    """A msgpack map of the wrong shape raises DecodeError."""
    with contextlib.suppress(DecodeError):
        decode_message(Reading, msgspec.msgpack.encode(fields), "sensors/north/7/reading")


def test_messages_register_by_type_name_and_key() -> None:
    """The registry finds a class by its type name and by a concrete key."""
    assert message_type("Reading") is Reading
    assert Reading in find_types_for_key("sensors/x/1/reading")
    assert Reply.__edabus_key__ is None


def test_type_name_keyword_overrides_the_class_name() -> None:
    """type_name= sets the name carried in the attachment."""

    class Renamed(edabus.Message, key="renamed/{x}", type_name="acme.Renamed"):
        x: str

    assert Renamed.__edabus_type__ == "acme.Renamed"
    assert message_type("acme.Renamed") is Renamed


def test_message_without_key_cannot_say_its_key() -> None:
    """A keyless type asks for an explicit key when published."""
    with pytest.raises(edabus.KeyTemplateError, match="explicit key"):
        Reply(ok=True).key()


class Slot(edabus.Message, key="slots/{slot}/fill"):
    slot: int
    level: int = 0


def test_int_key_fields_come_from_the_key_text() -> None:
    """An int key field left out of the payload is converted from its key chunk; a non-int chunk is refused."""
    assert decode_message(Slot, msgspec.msgpack.encode({"level": 2}), "slots/12/fill") == Slot(slot=12, level=2)
    with pytest.raises(DecodeError, match="not an int"):
        decode_message(Slot, msgspec.msgpack.encode({}), "slots/twelve/fill")


def test_payload_fields_stay_strict_when_key_fields_are_filled() -> None:
    """Filling key fields does not loosen the other fields: "5" is not an int."""
    with pytest.raises(DecodeError, match="Expected `int`"):
        decode_message(Slot, msgspec.msgpack.encode({"level": "5"}), "slots/1/fill")


def test_an_empty_payload_reads_as_no_fields() -> None:
    """A bare query with no payload is a message whose fields all come from the key."""
    assert decode_message(Slot, b"", "slots/3/fill") == Slot(slot=3)


def test_max_size_is_checked_before_decoding() -> None:
    """A payload over the type's max_size raises PayloadTooLarge naming both sizes; at the bound it decodes."""

    class Small(edabus.Message, key="size/{name}/small", max_size=16):
        name: str

    fits = encode(Small(name="a" * 8))
    assert len(fits) <= 16
    assert decode_message(Small, fits).name == "a" * 8
    with pytest.raises(edabus.PayloadTooLarge, match=r"payload of 17 bytes is over its max_size of 16"):
        decode_message(Small, b"\x81" + b"\x00" * 16)
    assert issubclass(edabus.PayloadTooLarge, DecodeError)
    assert Reading.__edabus_max_size__ == 4 * 1024 * 1024  # the default


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1MB"])
def test_a_bad_max_size_fails_at_definition(bad: object) -> None:
    """max_size must be a positive int: anything else fails when the class is defined, naming the class."""
    with pytest.raises(edabus.DefinitionError, match=r"message Sized: max_size must be a positive int"):

        class Sized(edabus.Message, key="size/{name}/bad", max_size=bad):
            name: str


def test_deep_nesting_is_a_decode_error() -> None:
    """RecursionError from msgspec (a 1 KB map nesting 1,000 arrays) comes out as DecodeError."""
    payload = b"\x83\xa4name\xa1x\xa1t\x01\xa1z" + b"\x91" * 1000 + b"\x00"
    with pytest.raises(DecodeError, match="RecursionError"):
        decode_message(Reading, payload)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xc1", "Reading: MessagePack data is malformed: invalid opcode '\\xc1' (byte 0)"),
        (b'{"value": 1.5}', "Reading: payload is JSON, not msgpack (edabus payloads are msgpack maps)"),
        (b"[1, 2]", "Reading: payload is JSON, not msgpack (edabus payloads are msgpack maps)"),
        (b"\x81\xa5value", "Reading: payload is not valid msgpack: Input data was truncated"),
    ],
    ids=["malformed", "json-map", "json-array", "truncated"],
)
@pytest.mark.parametrize("key", [None, "sensors/north/7/reading"])
def test_an_unreadable_payload_says_what_is_wrong_once(payload: bytes, error: str, key: str | None) -> None:
    """The error (a dead letter's reason) names the type and the problem once; JSON sent as a payload is called so."""
    with pytest.raises(DecodeError) as raised:
        decode_message(Reading, payload, key)
    assert str(raised.value) == error
