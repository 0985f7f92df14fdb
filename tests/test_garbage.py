"""Hostile input from raw zenoh: garbage, deep nesting, length bombs and oversized payloads, as puts and queries.

Whatever a payload makes the decoder raise (msgspec's errors, RecursionError,
MemoryError, an extension hook's error) or however big it is, the node must
stay up, apply every good message once, and dead-letter every bad one once,
with its reason, its size and at most a prefix of it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import anyio
import msgspec
import pytest
import zenoh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edabus
from tests.conftest import eventually, free_port
from tests.test_wire import raw_session

MAX_SIZE = 64 * 1024


class Put(edabus.Message, key="junk/acct/{acct}/put", max_size=MAX_SIZE):
    acct: str
    amount: int


class Sum(edabus.Message, key="junk/acct/{acct}/sum", max_size=MAX_SIZE):
    acct: str
    add: int = 0


class Total(edabus.Message):
    amount: int


class Tally(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.amount = 0

    @edabus.handler
    async def put(self, msg: Put) -> None:
        self.amount += msg.amount

    @edabus.handler
    async def sum(self, msg: Sum) -> Total:
        self.amount += msg.add
        return Total(amount=self.amount)


PUT_KEY, SUM_KEY = "junk/acct/gx/put", "junk/acct/gx/sum"
GOOD_PUT = msgspec.msgpack.encode({"acct": "gx", "amount": 1})
GOOD_SUM = msgspec.msgpack.encode({"acct": "gx", "add": 1})

# The payload: a valid map whose extra field nests 1,000 one-element arrays (about 1 KB).
NESTED_IN_MAP = b"\x83\xa6amount\x01\xa4acct\xa2gx\xa1z" + b"\x91" * 1000 + b"\x00"
# Deeper than any recursion limit (hypothesis raises Python's while it runs), and under max_size.
depth = st.integers(10_000, 60_000)
NESTED = st.one_of(
    depth.map(lambda d: b"\x91" * d + b"\x00"),  # arrays in arrays
    depth.map(lambda d: b"\x81\xa1a" * (d // 3) + b"\x00"),  # maps in maps
    depth.map(lambda d: b"\x83\xa6amount\x01\xa4acct\xa2gx\xa1z" + b"\x91" * d + b"\x00"),
    st.just(NESTED_IN_MAP),
)
# Headers that announce up to 4 Gi elements or bytes that never come.
LENGTH_BOMBS = st.sampled_from([b"\xdd", b"\xdf", b"\xdb", b"\xc6", b"\xc9"]).flatmap(
    lambda head: st.integers(2**20, 2**32 - 1).map(lambda n: head + n.to_bytes(4, "big") + b"\x00" * 8)
)
# Extensions: an unknown code, and malformed arrays (edabus's extension 42).
EXTS = st.one_of(
    st.integers(-128, 127).filter(lambda c: c != 42).map(lambda c: b"\xd4" + c.to_bytes(1, "big", signed=True) + b"x"),
    st.binary(max_size=30).map(lambda d: b"\xc7" + len(d).to_bytes(1, "big") + b"\x2a" + d),
)
BAD_MAPS = st.dictionaries(
    st.sampled_from(["acct", "amount", "add", "other"]),
    st.text(max_size=3) | st.floats(allow_nan=False) | st.lists(st.integers(0, 9), max_size=2),
    min_size=1,
).map(msgspec.msgpack.encode)
OVERSIZED = st.integers(MAX_SIZE + 1, 4 * MAX_SIZE).map(lambda n: b"\x91" * n)
BAD = st.one_of(NESTED, LENGTH_BOMBS, EXTS, BAD_MAPS, st.binary(min_size=1, max_size=64), OVERSIZED)


def _adds(payload: bytes, *, request: bool) -> int | None:
    """What a payload adds to the tally if it is valid by chance; None if it is bad (an independent oracle).

    Fields are those of `Sum` (a request) or `Put`; unknown ones are ignored, and
    ``acct`` may be left out (the key carries it).
    """
    if len(payload) > MAX_SIZE:
        return None
    try:
        fields = msgspec.msgpack.decode(payload)
    except Exception:  # noqa: BLE001 - the oracle only asks: valid or not
        return None
    if not isinstance(fields, dict) or ("acct" in fields and fields["acct"] != "gx"):
        return None
    name = "add" if request else "amount"
    if name not in fields:
        return 0 if request else None
    value = fields[name]
    return value if type(value) is int else None


@dataclass
class Outcome:
    letters: list[edabus.DeadLetter] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)


def _ask(raw: zenoh.Session, payload: bytes) -> str:
    """A raw query with ``payload``: how it was answered ("ok", "err" or "none")."""
    for reply in raw.get(SUM_KEY, payload=payload, timeout=5.0):
        return "ok" if reply.ok is not None else "err"
    return "none"


async def scenario(items: list[tuple[bytes, bool]]) -> None:
    """Send each bad payload (as a put, or as a query) followed by a good one; check what came of each."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    app = edabus.App("junk")
    app.keyed(Tally, key="acct")
    outcome = Outcome()
    lock = threading.Lock()

    def on_letter(sample: zenoh.Sample) -> None:
        with lock:
            outcome.letters.append(msgspec.msgpack.decode(sample.payload.to_bytes(), type=edabus.DeadLetter))

    bad = [(p, q) for p, q in items if _adds(p, request=q) is None]
    async with edabus.connect(listen=endpoint) as bus, edabus.Node(bus, [app]) as node:
        raw = raw_session(endpoint)
        try:
            raw.declare_subscriber("@edabus/deadletter/junk/**", on_letter)
            await bus.wait_for_group("junk", timeout=5)
            await anyio.to_thread.run_sync(lambda: raw.liveliness().get("@edabus/member/junk/**").recv())

            def send() -> None:
                for payload, as_query in items:
                    if as_query:
                        outcome.replies += [_ask(raw, payload), _ask(raw, GOOD_SUM)]
                    else:
                        raw.put(PUT_KEY, payload, congestion_control=zenoh.CongestionControl.BLOCK)
                        raw.put(PUT_KEY, GOOD_PUT, congestion_control=zenoh.CongestionControl.BLOCK)

            await anyio.to_thread.run_sync(send)
            sup = node.supervisor("Tally")
            await eventually(lambda: sup.statistics().received == 2 * len(items))
            total = await bus.request(Sum(acct="gx"), reply_type=Total)
            await eventually(lambda: len(outcome.letters) >= len(bad))
            stats = sup.statistics()
        finally:
            raw.close()

    expected = sum(1 + (_adds(p, request=q) or 0) for p, q in items)
    assert total.amount == expected  # every good message applied once, and the node still answers
    assert stats.handled + stats.dead_letters == stats.received
    assert stats.dead_letters == len(bad) == len(outcome.letters)  # each bad one dead-lettered once
    for (payload, _), letter in zip(bad, outcome.letters, strict=True):  # in order: one group, one key
        assert letter.error_type in {"DecodeError", "PayloadTooLarge"}
        assert letter.error
        assert letter.size == len(payload)
        if len(payload) > MAX_SIZE:  # refused unread
            assert (letter.error_type, letter.payload) == ("PayloadTooLarge", b"")
        else:  # carried whole up to 64 KiB (MAX_SIZE here)
            assert letter.payload == payload
    expected_replies = [
        kind
        for payload, as_query in items
        if as_query
        for kind in ("ok" if _adds(payload, request=True) is not None else "err", "ok")
    ]
    assert outcome.replies == expected_replies


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.tuples(BAD, st.booleans()), min_size=1, max_size=10))
def test_hostile_payloads_are_dead_lettered_and_good_messages_flow(
    backend: str, items: list[tuple[bytes, bool]]
) -> None:
    """Every bad payload, put or queried, is dead-lettered once with a reason; every good one applied; node up."""
    anyio.run(scenario, items, backend=backend)


def test_the_nested_1_kb_payload_is_a_dead_letter() -> None:
    """The ~1 KB payload that used to end a node (RecursionError), as a put and as a query."""
    assert len(NESTED_IN_MAP) < 1100
    anyio.run(scenario, [(NESTED_IN_MAP, False), (NESTED_IN_MAP, True)])
