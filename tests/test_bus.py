"""The bus: publish and subscribe, request and reply, liveliness, clean close, both backends."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import msgspec
import pytest
import zenoh

import edabus
from edabus._transport._config import make_config


class Ping(edabus.Message, key="test/bus/{n}/ping"):
    n: int


async def test_publish_reaches_a_subscription(bus: edabus.Bus) -> None:
    """A subscription on a wildcard sees every message published on a matching key, in order."""
    async with bus.subscribe("test/bus/*/ping") as sub:
        for n in range(100):
            await bus.publish(Ping(n=n))
        got = []
        with anyio.fail_after(5):
            async for envelope in sub:
                got.append(envelope)
                if len(got) == 100:
                    break
    assert [Ping.from_bytes(e.payload, e.key).n for e in got] == list(range(100))
    assert got[0].meta.type == "Ping"
    assert got[0].meta.sender == bus.node_id
    assert got[1].meta.id == got[0].meta.id + 1


class Note(edabus.Message):  # no key template: always published on an explicit key
    text: str


@pytest.mark.parametrize(
    ("msg", "key", "problem"),
    [
        (Ping(n=1), "test/bus/2/ping", "says n='2', but the message says n='1'"),
        (Ping(n=1), "test/bus/1/pong", "does not fit the template"),
        (Ping(n=1), "test/bus/*/ping", "wildcard"),
        (Note(text="x"), "notes/**", "wildcard"),
        (Note(text="x"), "notes/$*", "wildcard"),
        (Note(text="x"), "notes/ /x", "blank chunk"),
        (Note(text="x"), "notes//x", "blank chunk"),
        (Note(text="x"), "@edabus/x", "'@' namespace"),
    ],
)
async def test_an_explicit_key_is_checked_before_anything_is_sent(
    bus: edabus.Bus, msg: edabus.Message, key: str, problem: str
) -> None:
    """``key=`` must be concrete and agree with the message's key fields; both publish and request say so."""
    async with bus.subscribe("**") as sub:
        with pytest.raises(edabus.KeyValueError, match=re.escape(problem)):
            await bus.publish(msg, key=key)
        with pytest.raises(edabus.KeyValueError, match=re.escape(problem)):
            await bus.request(msg, key=key, timeout=1)
        await bus.publish(Note(text="after"), key="notes/after")  # a marker: nothing came before it
        with anyio.fail_after(5):
            first = await sub.__anext__()
    assert first.key == "notes/after"


def test_a_blank_key_field_is_refused() -> None:
    """A field that is only whitespace cannot name an actor (it used to spawn one called ' ')."""
    with pytest.raises(edabus.KeyValueError, match="non-blank"):
        Blank(name=" ").key()


class Blank(edabus.Message, key="test/bus/{name}/blank"):
    name: str


async def test_request_with_no_live_group_fails_fast(bus: edabus.Bus) -> None:
    """A request nobody serves raises NoRouteError at once, not after the timeout."""
    with anyio.fail_after(2):
        with pytest.raises(edabus.NoRouteError, match="test/bus/1/ping"):
            await bus.request(Ping(n=1), timeout=30)


async def test_request_times_out_when_nobody_answers(bus: edabus.Bus) -> None:
    """A queryable that never replies makes the request raise RequestTimeout."""
    held: list[zenoh.Query] = []
    queryable = bus._session.declare_queryable("test/bus/*/ping", held.append)
    try:
        with anyio.fail_after(5), pytest.raises(edabus.RequestTimeout):
            await bus.request(Ping(n=2), timeout=0.3)
    finally:
        for query in held:
            query.drop()
        queryable.undeclare()


async def test_liveliness_tokens_are_seen(bus: edabus.Bus) -> None:
    """wait_for_group returns once a member token of the group is alive."""
    token = bus._session.liveliness().declare_token("@edabus/member/shop/Cart/n1/gpus/0")
    try:
        with anyio.fail_after(5):
            key = await bus.wait_for_group("shop", "Cart", timeout=5)
        assert key == "@edabus/member/shop/Cart/n1/gpus/0"
        assert await bus.live_tokens("@edabus/member/shop/**") == [key]
    finally:
        token.undeclare()


async def test_wait_for_group_times_out() -> None:
    """wait_for_group raises TimeoutError when the group never comes."""
    async with edabus.connect() as bus:
        with pytest.raises(TimeoutError):
            await bus.wait_for_group("nobody", timeout=0.2)


async def test_closed_bus_refuses_work() -> None:
    """After close, publishing raises BusClosedError and no callback runs any more."""
    async with edabus.connect() as bus:
        sub = bus.subscribe("test/bus/**")
    assert bus.closed
    with pytest.raises(edabus.BusClosedError):
        await bus.publish(Ping(n=1))
    assert await sub.receive_batch() == []


async def test_two_peers_exchange_messages_over_tcp() -> None:
    """A listening peer and a connecting peer on loopback see each other's messages."""
    from tests.conftest import free_port  # noqa: PLC0415

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    async with edabus.connect(listen=endpoint) as server, edabus.connect(endpoint, mode="peer") as client:
        async with server.subscribe("test/bus/**") as sub:
            with anyio.fail_after(10):
                # The subscriber's declaration reaches the client asynchronously: retry until it does.
                while True:
                    await client.publish(Ping(n=7))
                    with anyio.move_on_after(0.2):
                        envelope = await anext(sub)
                        break
        assert envelope.key == "test/bus/7/ping"


def test_default_config_never_sends_multicast(tmp_path: Path) -> None:
    """Every config edabus builds has multicast scouting off, even over a user file that turns it on."""
    assert msgspec.json.decode(make_config().get_json("scouting/multicast/enabled")) is False
    user = tmp_path / "user.json5"
    # A user file that asks for multicast (written as JSON; edabus must override it, and never
    # opens a session with it here).
    user.write_text(json.dumps({"mode": "peer", "scouting": {"multicast": {"enabled": True}}}))
    cfg = make_config(config=user)
    assert msgspec.json.decode(cfg.get_json("scouting/multicast/enabled")) is False
    assert msgspec.json.decode(cfg.get_json("mode")) == "peer"


def test_connect_makes_a_client_and_the_default_listens_nowhere() -> None:
    """The embedded default is a peer with no endpoints; connect= alone makes a client."""
    default = make_config()
    assert msgspec.json.decode(default.get_json("mode")) == "peer"
    assert msgspec.json.decode(default.get_json("listen/endpoints")) == []
    client = make_config(connect="tcp/127.0.0.1:7447")
    assert msgspec.json.decode(client.get_json("mode")) == "client"


def test_exit_leaves_no_zenoh_thread_running() -> None:
    """After the bus closes, the process exits promptly: run in a subprocess with a deadline."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import anyio, edabus\n"
        "async def main():\n"
        "    async with edabus.connect() as bus:\n"
        "        async with bus.subscribe('x/**'):\n"
        "            await bus.publish_raw('x/1', b'\\x80')\n"
        "anyio.run(main)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20, check=False)  # noqa: S603
    assert proc.returncode == 0, proc.stderr.decode()
