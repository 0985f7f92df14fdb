"""Key templates: ``"bank/account/{account}/deposit"`` and what follows from one.

A template is a Zenoh key expression whose chunks are either literal text or a
``{field}`` placeholder that fills the whole chunk. From it come the
subscription pattern (each placeholder becomes ``*``), the key for a given
message, and the field values recovered from a received key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import zenoh

from edabus._exceptions import KeyTemplateError, KeyValueError

__all__ = ["KeyTemplate", "check_concrete_key", "check_key_value"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FORBIDDEN_IN_VALUE = frozenset("/*$?#")
_KEY_CACHE = 10_000  # formatted keys a template remembers per field value


def check_key_value(field: str, value: object) -> str:
    """Return ``value`` as a key chunk, or raise `KeyValueError` if it cannot be one."""
    text = str(value)
    if not text.strip() or text.startswith("@") or not _FORBIDDEN_IN_VALUE.isdisjoint(text):
        msg = (
            f"field {field!r} = {text!r} cannot stand in a key: it must be non-blank, "
            "not start with '@', and hold none of '/', '*', '$', '?', '#'"
        )
        raise KeyValueError(msg)
    return text


def check_concrete_key(key: str) -> str:
    """Return ``key`` if one message can be published on it, or raise `KeyValueError` saying why.

    A concrete key is a valid Zenoh key expression with no wildcard (``*``, ``**``,
    ``$*``), no blank chunk, and not in the ``@`` namespace (Zenoh's and edabus's own).
    """
    if not isinstance(key, str) or not key:
        msg = f"a key must be a non-empty str, got {key!r}"
        raise KeyValueError(msg)
    for chunk in key.split("/"):
        if not chunk.strip():
            msg = f"key {key!r} has an empty or blank chunk; each chunk between slashes needs text"
            raise KeyValueError(msg)
        if "*" in chunk or "$" in chunk:
            msg = f"key {key!r} holds a wildcard ({chunk!r}); a message goes to one concrete key"
            raise KeyValueError(msg)
        if "?" in chunk or "#" in chunk:
            msg = f"key {key!r}: chunk {chunk!r} holds '?' or '#', which Zenoh keys cannot carry"
            raise KeyValueError(msg)
    if key.startswith("@"):
        msg = f"key {key!r} is in the '@' namespace, which belongs to Zenoh and edabus"
        raise KeyValueError(msg)
    try:
        zenoh.KeyExpr(key)
    except zenoh.ZError:
        msg = f"key {key!r} is not a valid Zenoh key expression (no leading, trailing or double '/')"
        raise KeyValueError(msg) from None
    return key


class KeyTemplate:
    """A parsed, validated key template.

    Attributes:
        template: the text as written, e.g. ``"bank/account/{account}/deposit"``.
        pattern: the subscription key expression, e.g. ``"bank/account/*/deposit"``.
        fields: the placeholder names, in order.

    """

    __slots__ = (
        "_chunks",
        "_field_positions",
        "_keys",
        "_positions",
        "_prefix",
        "_single",
        "_suffix",
        "fields",
        "pattern",
        "template",
    )

    def __init__(self, template: str, *, owner: str = "") -> None:
        where = f"{owner}: " if owner else ""
        if not isinstance(template, str) or not template:
            msg = f"{where}key template must be a non-empty str, got {template!r}"
            raise KeyTemplateError(msg)
        chunks = template.split("/")
        fields: list[str] = []
        positions: list[int] = []
        pattern_chunks: list[str] = []
        for index, chunk in enumerate(chunks):
            match = _PLACEHOLDER.fullmatch(chunk)
            if match:
                name = match.group(1)
                if name in fields:
                    msg = f"{where}key template {template!r} uses field {{{name}}} twice"
                    raise KeyTemplateError(msg)
                fields.append(name)
                positions.append(index)
                pattern_chunks.append("*")
                continue
            if "{" in chunk or "}" in chunk:
                msg = (
                    f"{where}key template {template!r}: chunk {chunk!r} is not valid; "
                    "a {field} placeholder must fill a whole chunk between slashes"
                )
                raise KeyTemplateError(msg)
            if "*" in chunk or "$" in chunk:
                msg = (
                    f"{where}key template {template!r} holds a wildcard ({chunk!r}); "
                    "a message is published on one concrete key, so use a {field} placeholder"
                )
                raise KeyTemplateError(msg)
            pattern_chunks.append(chunk)
        pattern = "/".join(pattern_chunks)
        try:
            zenoh.KeyExpr(pattern)
        except zenoh.ZError as exc:
            msg = f"{where}key template {template!r} is not a valid Zenoh key expression: {exc}"
            raise KeyTemplateError(msg) from exc
        self.template = template
        self.pattern = pattern
        self.fields = tuple(fields)
        self._chunks = tuple(chunks)
        self._positions = tuple(positions)
        self._field_positions = tuple(zip(self.fields, self._positions, strict=True))
        # One field: the key is prefix + value + suffix, and a value seen once is known valid.
        self._single = self.fields[0] if len(self.fields) == 1 else None
        self._prefix = self._suffix = ""
        if self._single is not None:
            index = self._positions[0]
            self._prefix = "/".join(chunks[:index]) + ("/" if index else "")
            self._suffix = ("/" if index < len(chunks) - 1 else "") + "/".join(chunks[index + 1 :])
        self._keys: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"KeyTemplate({self.template!r})"

    @property
    def chunk_count(self) -> int:
        """How many chunks a key of this template has."""
        return len(self._chunks)

    @property
    def field_positions(self) -> tuple[tuple[str, int], ...]:
        """(field name, chunk index) for each placeholder."""
        return self._field_positions

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyTemplate) and other.template == self.template

    def __hash__(self) -> int:
        return hash(self.template)

    def format(self, values: Mapping[str, object]) -> str:
        """The concrete key for these field values."""
        if not self.fields:
            return self.template
        chunks = list(self._chunks)
        for name, index in zip(self.fields, self._positions, strict=True):
            chunks[index] = check_key_value(name, values[name])
        return "/".join(chunks)

    def format_obj(self, obj: object) -> str:
        """The concrete key for an object whose attributes hold the fields."""
        if not self.fields:
            return self.template
        if self._single is not None:  # one str field: the hot case, cached per value
            value = getattr(obj, self._single)
            if type(value) is str:
                key = self._keys.get(value)
                if key is None:
                    key = self._prefix + check_key_value(self._single, value) + self._suffix
                    if len(self._keys) >= _KEY_CACHE:
                        self._keys.clear()
                    self._keys[value] = key
                return key
        chunks = list(self._chunks)
        for name, index in zip(self.fields, self._positions, strict=True):
            chunks[index] = check_key_value(name, getattr(obj, name))
        return "/".join(chunks)

    def parse(self, key: str) -> dict[str, str] | None:
        """The field values in a concrete key, or None if the key does not fit."""
        chunks = key.split("/")
        if len(chunks) != len(self._chunks):
            return None
        for index, chunk in enumerate(self._chunks):
            if index not in self._positions and chunks[index] != chunk:
                return None
        return {name: chunks[i] for name, i in zip(self.fields, self._positions, strict=True)}

    def check_key(self, key: str, values: object) -> str:
        """Return ``key`` if it fits this template and carries ``values``'s key fields; else `KeyValueError`."""
        check_concrete_key(key)
        found = self.parse(key)
        if found is None:
            msg = f"key {key!r} does not fit the template {self.template!r}"
            raise KeyValueError(msg)
        for name, chunk in found.items():
            value = str(getattr(values, name))
            if value != chunk:
                msg = f"key {key!r} says {name}={chunk!r}, but the message says {name}={value!r}"
                raise KeyValueError(msg)
        return key

    def matches(self, key: str) -> bool:
        """Whether a concrete key fits this template."""
        return self.parse(key) is not None
