"""`SQLiteOutbox`: what a durable outbox keeps between the buses that open it."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import zenoh

import edabus
from edabus._model._wire import Meta, decode_meta
from edabus._transport._outbox import KeptMessage
from examples.vault import Deposit


def message(key: str, seq: int) -> KeptMessage:
    return KeptMessage(key, seq, f"payload {seq}".encode(), "Deposit", f"trace {seq}")


async def test_a_reopened_outbox_keeps_its_sender_its_numbering_and_what_was_not_answered(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    first = edabus.SQLiteOutbox(path)
    kept = await first.open()
    assert (kept.high, kept.messages) == (0, [])
    for seq, key in enumerate(["b", "a", "b", "a"], start=1):
        await first.add(message(key, seq), seq)
    await first.remove([("a", 2), ("b", 3)])
    await first.close()

    second = edabus.SQLiteOutbox(path)
    again = await second.open()
    await second.close()
    assert again.sender == kept.sender  # the owners know it by this id
    assert again.high == 4  # new messages are numbered above every one given, answered or not
    assert again.messages == [message("a", 4), message("b", 1)]  # by key, then number


async def test_the_highest_number_never_goes_down(tmp_path: Path) -> None:
    outbox = edabus.SQLiteOutbox(tmp_path / "outbox.db")
    await outbox.open()
    await outbox.add(message("a", 7), 7)
    await outbox.add(message("b", 3), 5)
    await outbox.close()
    reopened = edabus.SQLiteOutbox(tmp_path / "outbox.db")
    assert (await reopened.open()).high == 7
    await reopened.close()


async def test_one_bus_at_a_time(tmp_path: Path) -> None:
    first = edabus.SQLiteOutbox(tmp_path / "outbox.db")
    await first.open()
    with pytest.raises(edabus.OutboxInUseError, match="in use by another bus"):
        await edabus.SQLiteOutbox(tmp_path / "outbox.db").open()
    await first.close()
    second = edabus.SQLiteOutbox(tmp_path / "outbox.db")
    await second.open()  # free again once the first closed
    await second.close()


async def test_a_restored_key_numbers_its_new_messages_above_everything_the_file_gave(tmp_path: Path) -> None:
    """Seq 2 still kept, 3 and 4 answered and forgotten: the next deposit on the key is 5, not 3.

    An owner that applied 4 would take a new 3 for a duplicate and drop it.
    """
    path = tmp_path / "outbox.db"
    seeded = edabus.SQLiteOutbox(path)
    sender = (await seeded.open()).sender
    await seeded.add(KeptMessage("vault/a1/deposit", 2, msgspec.msgpack.encode({"amount": 1}), "Deposit", ""), 4)
    await seeded.close()
    heard: list[Meta] = []

    def owner(query: zenoh.Query) -> None:  # acknowledges everything, noting what came
        heard.append(decode_meta(query.attachment.to_bytes() if query.attachment else None))
        query.reply(query.key_expr, b"")

    async with edabus.connect(outbox=edabus.SQLiteOutbox(path)) as bus:
        bus._session.declare_queryable("vault/*/deposit", owner)
        await bus.publish(Deposit(account="a1", amount=1))
        await bus.wait_delivered(timeout=10)
    assert {(meta.sender, meta.seq) for meta in heard} == {(sender, 2), (sender, 5)}
