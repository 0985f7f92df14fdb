"""Key templates: patterns, formatting, parsing, and the errors of bad ones."""

from __future__ import annotations

import pytest
import zenoh
from hypothesis import given
from hypothesis import strategies as st

import edabus
from edabus import KeyTemplate, KeyTemplateError, KeyValueError

CHUNK = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=8)
FIELD = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)


@st.composite
def templates(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A template of literal chunks and distinct placeholders, with values for them."""
    chunks = draw(st.lists(st.one_of(CHUNK, FIELD.map(lambda f: "{" + f + "}")), min_size=1, max_size=6))
    seen: set[str] = set()
    out = []
    for chunk in chunks:
        if chunk.startswith("{") and chunk in seen:
            continue
        seen.add(chunk)
        out.append(chunk)
    values = {chunk[1:-1]: draw(CHUNK) for chunk in out if chunk.startswith("{")}
    return "/".join(out), values


@given(templates())
def test_format_then_parse_round_trips(case: tuple[str, dict[str, str]]) -> None:
    """Formatting field values into a template and parsing the key back gives the same values."""
    text, values = case
    template = KeyTemplate(text)
    key = template.format(values)
    assert template.parse(key) == values
    assert zenoh.KeyExpr(template.pattern).intersects(zenoh.KeyExpr(key))


def test_pattern_replaces_placeholders_with_star() -> None:
    """Each {field} chunk becomes a * chunk in the subscription pattern."""
    template = KeyTemplate("bank/account/{account}/deposit")
    assert template.pattern == "bank/account/*/deposit"
    assert template.fields == ("account",)


def test_parse_rejects_keys_that_do_not_fit() -> None:
    """A key with other literals or another chunk count does not parse."""
    template = KeyTemplate("bank/account/{account}/deposit")
    assert template.parse("bank/account/a1/withdraw") is None
    assert template.parse("bank/account/a1/deposit/x") is None


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("bank/*/deposit", "wildcard"),
        ("bank/**", "wildcard"),
        ("bank/ab$*", "wildcard"),
        ("bank/acct-{id}", "whole chunk"),
        ("bank//x", "not a valid Zenoh key"),
        ("/bank", "not a valid Zenoh key"),
        ("bank/{a}/{a}", "twice"),
        ("", "non-empty"),
    ],
)
def test_bad_templates_name_the_problem(template: str, needle: str) -> None:
    """Invalid templates raise KeyTemplateError whose text says what is wrong."""
    with pytest.raises(KeyTemplateError, match=needle):
        KeyTemplate(template, owner="message M")


@pytest.mark.parametrize("value", ["", "a/b", "a*", "x$y", "q?", "h#", "@admin"])
def test_values_that_cannot_be_chunks_are_refused(value: str) -> None:
    """A field value with a slash, a wildcard or a leading @ cannot be formatted into a key."""
    with pytest.raises(KeyValueError, match="cannot stand in a key"):
        KeyTemplate("t/{x}").format({"x": value})


def test_message_class_with_unknown_field_fails_at_definition() -> None:
    """A template naming a field the class lacks fails when the class is defined, naming the class."""
    with pytest.raises(KeyTemplateError, match=r"message Bad: .*\{missing\}"):

        class Bad(edabus.Message, key="t/{missing}"):
            present: str


def test_message_class_with_non_scalar_key_field_fails() -> None:
    """A key field must be str or int."""
    with pytest.raises(KeyTemplateError, match="must be str or int"):

        class BadType(edabus.Message, key="t/{tags}"):
            tags: list[str]


def test_message_class_with_wildcard_key_fails() -> None:
    """A wildcard in a message's key fails at definition."""
    with pytest.raises(KeyTemplateError, match="message Wild"):

        class Wild(edabus.Message, key="t/*"):
            x: int
