"""Garbage in: arbitrary bytes and wrong-schema maps from raw zenoh, interleaved with good messages."""

from __future__ import annotations

import anyio
import msgspec
import zenoh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edabus
from tests.conftest import eventually, free_port
from tests.test_wire import Ask, Ledger, Owed, raw_session

GOOD = msgspec.msgpack.encode({"acct": "gx", "amount": 1})
BAD_MAPS = st.dictionaries(
    st.sampled_from(["acct", "amount", "other"]),
    st.text(max_size=3) | st.floats(allow_nan=False) | st.lists(st.integers(0, 9), max_size=2),
    min_size=1,
).map(msgspec.msgpack.encode)
BAD_BYTES = st.binary(min_size=1, max_size=40)


def _is_good(payload: bytes) -> bool:
    try:
        msg = msgspec.msgpack.decode(payload)
    except (msgspec.DecodeError, ValueError):
        return False
    return isinstance(msg, dict) and type(msg.get("amount")) is int and msg.get("acct", "gx") == "gx"


async def scenario(bad: list[bytes]) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    app = edabus.App("wire")
    app.keyed(Ledger, key="acct")
    chance_good = [p for p in bad if _is_good(p)]  # a generated payload may be valid by chance
    expected = len(bad) + sum(msgspec.msgpack.decode(p)["amount"] for p in chance_good)
    async with edabus.connect(listen=endpoint) as bus, edabus.Node(bus, [app]) as node:
        raw = raw_session(endpoint)
        try:
            await bus.wait_for_group("wire", timeout=5)
            await anyio.to_thread.run_sync(lambda: raw.liveliness().get("@edabus/member/wire/**").recv())
            for payload in bad:
                raw.put("wire/acct/gx/credit", payload, congestion_control=zenoh.CongestionControl.BLOCK)
                raw.put("wire/acct/gx/credit", GOOD, congestion_control=zenoh.CongestionControl.BLOCK)
            sup = node.supervisor("Ledger")
            total = 2 * len(bad)
            await eventually(lambda: sup.statistics().received == total)
            stats = sup.statistics()
            owed = await bus.request(Ask(acct="gx"), reply_type=Owed)
        finally:
            raw.close()
    assert stats.dead_letters == len(bad) - len(chance_good)
    assert stats.handled + stats.dead_letters == stats.received  # every arrival accounted for
    assert owed.amount == expected  # every good message applied once


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(BAD_BYTES | BAD_MAPS, min_size=1, max_size=12))
def test_garbage_is_dead_lettered_and_good_messages_flow(bad: list[bytes]) -> None:
    """Each bad payload is counted and dead-lettered; each good one is handled; the node stays up."""
    anyio.run(scenario, bad)
