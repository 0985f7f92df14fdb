"""`Message`: a msgspec Struct that knows the key it travels on.

    class Deposit(edabus.Message, key="bank/account/{account}/deposit"):
        account: str
        amount: int

The class keyword ``key=`` binds a `KeyTemplate` whose placeholders must be
fields of type ``str`` or ``int``; ``type_name=`` sets the type name carried in the
attachment (default: the class name); ``max_size=`` the largest payload a
receiver decodes (default `DEFAULT_MAX_SIZE`). Every class is entered in a
registry so a type can be found by name or by key.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self, TypeVar

import msgspec

from edabus._exceptions import DecodeError, DefinitionError, KeyTemplateError, PayloadTooLarge

from ._array import dec_hook, enc_hook, ext_hook
from ._keys import KeyTemplate, check_concrete_key

__all__ = [
    "DEFAULT_MAX_SIZE",
    "Message",
    "decode_message",
    "encode",
    "find_types_for_key",
    "key_for",
    "message_type",
    "too_large",
]

# The largest payload a receiver decodes, unless the type says otherwise (gRPC's default
# receive limit): bigger ones are refused before decoding, counted and dead-lettered.
DEFAULT_MAX_SIZE = 4 * 1024 * 1024

_M = TypeVar("_M", bound="Message")

_registry: dict[str, type[Message]] = {}
_encoder = msgspec.msgpack.Encoder(enc_hook=enc_hook)
_decoders: dict[type[Any], msgspec.msgpack.Decoder[Any]] = {}
_KEY_FIELD_TYPES = (str, int, "str", "int")
_EMPTY_MAP = b"\x80"


class _MessageMeta(msgspec.StructMeta):
    """Takes the ``key=``, ``type_name=``, ``reliable=`` and ``max_size=`` class keywords off before msgspec."""

    def __new__(  # noqa: PYI034 - a metaclass returns the new class, not Self
        mcls,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        *,
        key: str | None = None,
        type_name: str | None = None,
        reliable: bool | None = None,
        max_size: int | None = None,
        **kwargs: Any,
    ) -> _MessageMeta:
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        if not any(isinstance(base, _MessageMeta) for base in bases):
            return cls  # Message itself
        template = None
        if key is not None:
            template = KeyTemplate(key, owner=f"message {name}")
            annotations = _field_annotations(cls)
            for field in template.fields:
                if field not in annotations:
                    msg = (
                        f"message {name}: key template {key!r} names {{{field}}}, "
                        f"which is not a field of {name} (fields: {', '.join(annotations) or 'none'})"
                    )
                    raise KeyTemplateError(msg)
                if annotations[field] not in _KEY_FIELD_TYPES:
                    msg = (
                        f"message {name}: key field {field!r} has type {annotations[field]!r}; "
                        "a field in a key must be str or int"
                    )
                    raise KeyTemplateError(msg)
        else:
            template = getattr(cls, "__edabus_key__", None)
        cls.__edabus_key__ = template  # type: ignore[attr-defined]
        cls.__edabus_type__ = type_name or name  # type: ignore[attr-defined]
        if reliable is not None:
            if reliable and template is None:
                msg = f"message {name}: reliable=True needs a key= (it is delivered to an owner that acknowledges it)"
                raise DefinitionError(msg)
            cls.__edabus_reliable__ = reliable  # type: ignore[attr-defined]
        if max_size is not None:
            if type(max_size) is not int or max_size < 1:
                msg = f"message {name}: max_size must be a positive int (bytes), got {max_size!r}"
                raise DefinitionError(msg)
            cls.__edabus_max_size__ = max_size  # type: ignore[attr-defined]
        _registry[cls.__edabus_type__] = cls  # type: ignore[attr-defined,assignment]
        return cls


def raw_annotations(cls: type) -> dict[str, object]:
    """A class's annotations as written (strings, where they were), its bases' included.

    The fallback where type hints do not resolve (a name defined inside a function).
    """
    raw: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        raw.update(getattr(klass, "__annotations__", {}))
    return raw


def _field_annotations(cls: type) -> dict[str, object]:
    """Field name to type, falling back to the raw annotation when hints do not resolve."""
    try:
        return {f.name: f.type for f in msgspec.structs.fields(cls)}
    except (NameError, TypeError):
        raw = raw_annotations(cls)
        return {name: raw[name] for name in cls.__struct_fields__ if name in raw}  # type: ignore[attr-defined]


class Message(msgspec.Struct, metaclass=_MessageMeta):
    """Base class of every message: a msgspec Struct, encoded as a msgpack map.

    Class keywords:
        key: the key template, e.g. ``"bank/account/{account}/deposit"``.
            Leave it out for replies and for events published with an explicit key.
        type_name: the type name sent in the attachment (default: the class name).
        reliable: deliver at least once: the sender keeps each message until its
            owner acknowledges it (handled, state saved) and resends after a failover
            or timeout; the owner drops duplicates (docs/durability.md).
        max_size: the largest payload (bytes) a receiver accepts for this type; a larger
            one is refused undecoded and dead-lettered with `PayloadTooLarge`
            (default `DEFAULT_MAX_SIZE`, 4 MiB).
    """

    __edabus_key__: ClassVar[KeyTemplate | None]
    __edabus_type__: ClassVar[str]
    __edabus_reliable__: ClassVar[bool] = False
    __edabus_max_size__: ClassVar[int] = DEFAULT_MAX_SIZE

    def key(self) -> str:
        """The concrete key this message is published on."""
        template = type(self).__edabus_key__
        if template is None:
            msg = f"{type(self).__name__} has no key template; publish it with an explicit key="
            raise KeyTemplateError(msg)
        return template.format_obj(self)

    @classmethod
    def from_bytes(cls, payload: bytes, key: str | None = None) -> Self:
        """Decode a payload (and the fields in its key) into this type."""
        return decode_message(cls, payload, key)


def key_for(msg: Message, key: str | None) -> str:
    """The key ``msg`` goes to: its own, or ``key`` once checked against its template and fields."""
    if key is None:
        return msg.key()
    template = type(msg).__edabus_key__
    return check_concrete_key(key) if template is None else template.check_key(key, msg)


def message_type(name: str) -> type[Message] | None:
    """The message class registered under a type name, if any."""
    return _registry.get(name)


def find_types_for_key(key: str) -> list[type[Message]]:
    """The registered message classes whose key template fits a concrete key."""
    out = []
    for cls in _registry.values():
        template = cls.__edabus_key__
        if template is not None and template.matches(key):
            out.append(cls)
    return out


def encode(obj: object) -> bytes:
    """The msgpack encoding of a message (a map keyed by field name) or any value."""
    return _encoder.encode(obj)


_fills_key_fields: set[type] = set()  # message types whose payloads arrive without their key fields
_key_field_types: dict[type, dict[str, object]] = {}


def decoder_for(cls: type[_M]) -> msgspec.msgpack.Decoder[_M]:
    """The cached msgpack decoder for a type."""
    decoder = _decoders.get(cls)
    if decoder is None:
        decoder = _decoders[cls] = msgspec.msgpack.Decoder(cls, dec_hook=dec_hook, ext_hook=ext_hook)
    return decoder


def decode_message(cls: type[_M], payload: bytes, key: str | None = None) -> _M:
    """Decode ``payload`` as ``cls``; fields the key carries may be left out of the payload.

    Raises `DecodeError` when the payload is not msgpack, does not fit the type, or
    holds a key field whose value disagrees with the key it arrived on;
    `PayloadTooLarge` (a `DecodeError`) when it is over the type's ``max_size``.
    Whatever a hostile payload makes the decoder raise becomes a `DecodeError`.
    """
    if len(payload) > cls.__edabus_max_size__:
        raise PayloadTooLarge(too_large(cls, len(payload)))
    template = cls.__edabus_key__
    if not payload:
        payload = _EMPTY_MAP  # a bare `session.get(key)` sends nothing: read it as no fields
    try:
        if cls in _fills_key_fields and key is not None and template is not None:
            msg = _decode_with_key_fields(cls, template, payload, key, None)
        else:
            msg = decoder_for(cls).decode(payload)
    except msgspec.ValidationError as exc:
        if key is None or template is None or not template.fields:
            raise _json_instead(cls, payload) or DecodeError(f"{cls.__name__}: {exc}") from exc
        msg = _decode_with_key_fields(cls, template, payload, key, exc)
        # Its senders leave key fields out (raw publishers may): skip the failing fast try.
        _fills_key_fields.add(cls)
    except DecodeError:
        raise
    except Exception as exc:  # see _unreadable
        raise _unreadable(cls, exc, payload) from exc
    if key is not None and template is not None and template.fields:
        _check_key_fields(msg, template, key)
    return msg


def _unreadable(cls: type[Message], exc: Exception, payload: bytes) -> DecodeError:
    """The `DecodeError` for any error from decoding: all of them are the payload's.

    Bad msgpack or UTF-8, but also RecursionError (deep nesting), MemoryError (a
    length bomb) or whatever an extension hook raised. The text says what is wrong
    once (msgspec's "MessagePack data is malformed: ..." is not prefixed again), and
    a payload that is JSON is called JSON.
    """
    if isinstance(exc, msgspec.DecodeError | ValueError):
        json_instead = _json_instead(cls, payload)
        if json_instead is not None:
            return json_instead
        text = str(exc)
        if "msgpack" not in text.lower() and "messagepack" not in text.lower():  # msgspec's says it already
            text = f"payload is not valid msgpack: {text}"
        return DecodeError(f"{cls.__name__}: {text}")
    return DecodeError(f"{cls.__name__}: payload is not readable: {type(exc).__name__}: {exc}")


def _json_instead(cls: type[Message], payload: bytes) -> DecodeError | None:
    """The error for a payload sent as JSON (whose first byte msgpack reads as a small int); None if it is not."""
    if payload[:1] not in (b"{", b"["):
        return None
    try:
        msgspec.json.decode(payload)
    except Exception:  # noqa: BLE001 - a hostile payload may raise anything: then it is not JSON
        return None
    return DecodeError(f"{cls.__name__}: payload is JSON, not msgpack (edabus payloads are msgpack maps)")


def too_large(cls: type[Message], size: int) -> str:
    """The text of a `PayloadTooLarge` for a payload of ``size`` bytes."""
    return f"{cls.__name__}: payload of {size:,} bytes is over its max_size of {cls.__edabus_max_size__:,}"


def _check_key_fields(msg: Message, template: KeyTemplate, key: str) -> None:
    """Raise DecodeError unless the message's key fields equal the chunks of ``key``.

    Literal chunks are not compared: the subscription pattern already matched them.
    """
    chunks = key.split("/")
    if len(chunks) != template.chunk_count:
        raise DecodeError(f"{type(msg).__name__}: key {key!r} does not fit {template.template!r}")
    for name, index in template.field_positions:
        value = getattr(msg, name)
        if (value if type(value) is str else str(value)) != chunks[index]:
            raise DecodeError(f"{type(msg).__name__}: field {name!r} = {value!r} disagrees with the key {key!r}")


def _decode_with_key_fields(
    cls: type[_M], template: KeyTemplate, payload: bytes, key: str, first: Exception | None
) -> _M:
    """Slow path: fill key fields missing from the payload with the values in the key."""
    values = template.parse(key)
    try:
        raw = msgspec.msgpack.decode(payload, ext_hook=ext_hook)
    except Exception as exc:  # see _unreadable
        raise _unreadable(cls, exc, payload) from exc
    if values is None or not isinstance(raw, dict):
        raise DecodeError(f"{cls.__name__}: {first or 'payload is not a map'}") from first
    types = _key_field_types.get(cls)
    if types is None:
        types = _key_field_types[cls] = _field_annotations(cls)
    for name, text in values.items():
        if name in raw:
            continue
        if types.get(name) in (int, "int"):
            try:
                raw[name] = int(text)
            except ValueError:
                raise DecodeError(f"{cls.__name__}: key chunk {text!r} is not an int for field {name!r}") from None
        else:
            raw[name] = text
    try:  # strict, like the fast path: only the key's own text is converted above
        return msgspec.convert(raw, cls, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"{cls.__name__}: {exc}") from exc
    except Exception as exc:  # see _unreadable
        raise _unreadable(cls, exc, payload) from exc
