"""Apps and actor classes: declaration errors surface at import, naming the problem."""

from __future__ import annotations

import msgspec
import pytest

import edabus


class Order(edabus.Message, key="shop/order/{order}"):
    order: str


class AnyOrder(edabus.Message, key="shop/order/{ref}"):
    ref: str


class Keyless(edabus.Message):
    order: str


class Shop(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.key = key

    @edabus.handler
    async def order(self, msg: Order) -> None:
        pass


def test_a_group_needs_handlers() -> None:
    """An actor with no handlers cannot be supervised."""

    class Idle(edabus.Actor):
        pass

    with pytest.raises(edabus.DefinitionError, match=r"no @edabus\.handler"):
        edabus.App("a").singleton(Idle)


def test_keyed_group_needs_the_key_field_on_every_message() -> None:
    """keyed(key=...) must name a field every handled message has."""
    with pytest.raises(edabus.DefinitionError, match="no field 'customer'"):
        edabus.App("a").keyed(Shop, key="customer")


def test_handler_needs_a_message_annotation() -> None:
    """A handler's parameter must be annotated with a Message subclass."""

    class Sloppy(edabus.Actor):
        @edabus.handler
        async def any(self, msg: int) -> None:
            pass

    with pytest.raises(edabus.DefinitionError, match=r"Sloppy.any: annotate the message parameter"):
        edabus.App("a").singleton(Sloppy)


def test_two_handlers_for_one_type_are_refused() -> None:
    """One message type has one handler per actor class."""

    class Twice(edabus.Actor):
        @edabus.handler
        async def first(self, msg: Order) -> None:
            pass

        @edabus.handler
        async def second(self, msg: Order) -> None:
            pass

    with pytest.raises(edabus.DefinitionError, match="both take Order"):
        edabus.App("a").singleton(Twice)


def test_handled_messages_need_a_key() -> None:
    """A supervisor can only subscribe to messages that name their key."""

    class Lost(edabus.Actor):
        @edabus.handler
        async def got(self, msg: Keyless) -> None:
            pass

    with pytest.raises(edabus.DefinitionError, match="Keyless, which has no key="):
        edabus.App("a").singleton(Lost)


def test_overlapping_keys_in_one_group_are_refused() -> None:
    """Two handled types whose keys overlap would receive one message twice."""

    class Both(edabus.Actor):
        @edabus.handler
        async def one(self, msg: Order) -> None:
            pass

        @edabus.handler
        async def other(self, msg: AnyOrder) -> None:
            pass

    with pytest.raises(edabus.DefinitionError, match="overlapping keys"):
        edabus.App("a").singleton(Both)


def test_group_names_are_unique_and_valid() -> None:
    """Group and app names become key chunks: duplicates and slashes are refused."""
    app = edabus.App("shop")
    app.keyed(Shop, key="order")
    with pytest.raises(edabus.DefinitionError, match="already has a group named 'Shop'"):
        app.keyed(Shop, key="order")
    app.keyed(Shop, key="order", name="Shop2")
    with pytest.raises(edabus.DefinitionError, match="cannot stand in a key"):
        edabus.App("a/b")
    with pytest.raises(edabus.DefinitionError, match="size must be at least 1"):
        app.pool(Shop, size=0, name="p")
    assert [g.name for g in app.groups] == ["Shop", "Shop2"]


def test_a_keyed_actor_must_take_its_key() -> None:
    """A keyed actor is built as cls(key): a class that cannot be is refused at app.keyed(), naming the fix."""

    class NoKey(edabus.Actor):
        @edabus.handler
        async def order(self, msg: Order) -> None:
            pass

    with pytest.raises(edabus.DefinitionError, match=r"NoKey\(key\).*def __init__\(self, key: str\)"):
        edabus.App("a").keyed(NoKey, key="order")
    edabus.App("a").singleton(NoKey)  # a singleton is built as NoKey(): fine


def test_a_singleton_or_pool_actor_must_take_no_arguments() -> None:
    """Singleton and pool actors are built as cls(): one whose __init__ needs arguments is refused."""
    with pytest.raises(edabus.DefinitionError, match=r"builds each actor as Shop\(\)"):
        edabus.App("a").singleton(Shop)
    with pytest.raises(edabus.DefinitionError, match=r"builds each actor as Shop\(\)"):
        edabus.App("a").pool(Shop, size=2)


class Tally(msgspec.Struct):
    orders: int = 0
    last: str = ""


class Till(edabus.Actor):
    state: Tally

    def __init__(self, key: str) -> None:
        self.key = key

    @edabus.handler
    async def order(self, msg: Order) -> None:
        self.state.orders += 1
        self.state.last = msg.order


async def test_an_actor_with_persistent_state_can_be_tested_as_a_plain_class() -> None:
    """Outside a supervisor, ``state`` starts as its Struct's defaults: construct, call, check."""
    till = Till("t1")
    await till.order(Order(order="o1"))
    await till.order(Order(order="o2"))
    assert till.state == Tally(orders=2, last="o2")
    with pytest.raises(AttributeError, match="'Till' object has no attribute 'missing'"):
        till.missing  # type: ignore[attr-defined]  # noqa: B018 - the lookup is the test
