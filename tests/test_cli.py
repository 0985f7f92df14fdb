"""The ``edabus`` command, run as ``python -m edabus`` against a router and a bank node."""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
import zenoh

import edabus
from edabus._cluster._membership import rendezvous_owner
from examples.bank import Deposit
from examples.vault import Deposit as VaultDeposit
from tests.cluster._nodes import WAIT_S, NodeProcess, cli_request, client_config
from tests.conftest import Processes, free_port, wait_for_port

GREETER = """
import edabus

class Greet(edabus.Message, key="greeter/{name}/greet"):
    name: str

class Greeting(edabus.Message):
    text: str

class Greeter(edabus.Actor):
    def __init__(self, key: str) -> None:
        self.name = key

    @edabus.handler
    async def greet(self, msg: Greet) -> Greeting:
        return Greeting(text=f"hello {self.name}")

app = edabus.App("greeter")
app.keyed(Greeter, key="name")
"""


@pytest.fixture
def bank(processes: Processes, router: str, tmp_path: Path) -> Iterator[NodeProcess]:
    """A bank node on the router, up and serving; stopped before the router is."""
    node = NodeProcess(processes, router, tmp_path / "node.log")
    node.wait_until_up()
    yield node
    processes.stop(node.proc)


def edabus_cli(processes: Processes, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m edabus ARGS`` to completion; its exit status and decoded output."""
    result = processes.run(["-m", "edabus", *args], timeout=timeout)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


@contextmanager
def raw_session(endpoint: str) -> Iterator[zenoh.Session]:
    """A plain Zenoh client session on the router, closed on exit."""
    with zenoh.open(client_config(endpoint)) as session:
        yield session


def put(session: zenoh.Session, key: str, payload: bytes) -> None:
    session.put(key, payload, congestion_control=zenoh.CongestionControl.BLOCK)


class Lines:
    """JSON lines a subprocess prints, read with deadlines (select on the pipe, no threads)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._buffer = b""

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next line, decoded; None if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._fd], [], [], remaining)[0]:
                return None
            chunk = os.read(self._fd, 65536)
            if not chunk:
                msg = "the process closed its stdout"
                raise EOFError(msg)
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        decoded: dict[str, Any] = json.loads(line)
        return decoded

    def until(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0) -> list[dict[str, Any]]:
        """Read lines until ``done(lines so far)``; every line read."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not done(seen):
            line = self.next(deadline - time.monotonic())
            if line is None:
                msg = f"gave up after {timeout} s; lines so far: {seen}"
                raise AssertionError(msg)
            seen.append(line)
        return seen

    def wait_subscribed(self, session: zenoh.Session, probe_key: str) -> None:
        """Put a probe on ``probe_key`` until the process prints a line: it is subscribed by then."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            put(session, probe_key, msgspec.msgpack.encode({"probe": True}))
            if self.next(0.2) is not None:
                return
        msg = f"nothing printed after {WAIT_S} s of probes on {probe_key}"
        raise AssertionError(msg)


def wait_for_signal_handler(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Wait until ``proc`` catches ``signum`` (Linux: the SigCgt mask in /proc/PID/status).

    A signal sent before the command installs its handler would kill it outright,
    which is not the shutdown these tests pin.
    """
    deadline = time.monotonic() + WAIT_S
    while proc.poll() is None and time.monotonic() < deadline:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
        if mask >> (signum - 1) & 1:
            return
        time.sleep(0.01)  # polling another process's state: there is no event to wait on
    msg = f"process {proc.pid} did not catch signal {signum} (exit status {proc.poll()})"
    raise AssertionError(msg)


# -- publish and request ------------------------------------------------------------------------


def test_publish_and_request_reach_each_app_when_three_share_a_router(processes: Processes, three_apps: str) -> None:
    """Each command finds the node of the app whose key it names, every time (it used to guess half the time)."""
    endpoint = ("--connect", three_apps)
    for _ in range(3):
        for key in ("bank/account/a1/deposit", "vault/y1/deposit"):
            result = edabus_cli(processes, "publish", key, '{"amount": 5}', *endpoint)
            assert result.returncode == 0, (key, result.stderr)
    assert cli_request(processes, three_apps, "bank/account/a1/balance") == {"account": "a1", "amount": 15}
    assert cli_request(processes, three_apps, "vault/y1/holdings") == {"balance": 15, "deposits": 3}
    reply = cli_request(processes, three_apps, "pipeline/jobs/1", '{"text": "three apps, one bus"}')
    assert isinstance(reply, dict)
    assert (reply["job_id"], reply["words"]) == (1, 4)


def test_publish_of_a_reliable_type_waits_for_its_acknowledgement(
    processes: Processes, router: str, tmp_path: Path
) -> None:
    """A vault deposit is reliable: `publish` sends it as one and exits 1 if its owner (paused) never acknowledges it.

    A plain put would have exited 0 with the deposit unconfirmed. Once the owner runs
    again, a second publish is acknowledged and applied. The pause (about 3 s) stays
    under the members' lease (8 unanswered rounds of 1 s, each waiting 2 s): past it,
    v1 would take the key over and acknowledge the deposit itself (tests/cluster/test_trust.py).
    """
    env = {"EDABUS_VAULT_DB": str(tmp_path / "vault.db")}
    nodes = {}
    for node_id in ("v1", "v2"):  # one after the other: v1 logs v2's join
        nodes[node_id] = NodeProcess(
            processes, router, tmp_path / f"{node_id}.log", target="examples.vault:app", node_id=node_id, env=env
        )
        nodes[node_id].wait_until_up("vault")
    # v1 counts v2 once v2 has answered for its token: only then is the account v2's in v1's eyes.
    deadline = time.monotonic() + WAIT_S
    while not any(r.get("joined") == ["v2"] for r in nodes["v1"].records() if r["event"] == "node.members_changed"):
        assert time.monotonic() < deadline, "v1 never counted v2 as a member"
        time.sleep(0.05)  # polling another process's log: there is no event to wait on
    account = next(f"p{i}" for i in range(100) if rendezvous_owner(("v1", "v2"), f"p{i}") == "v2")
    owner = nodes["v2"].proc
    connect = ("--connect", router)
    owner.send_signal(signal.SIGSTOP)
    try:
        result = edabus_cli(
            processes, "publish", f"vault/{account}/deposit", '{"amount": 5}', "--timeout", "1", *connect
        )
    finally:
        owner.send_signal(signal.SIGCONT)
    assert result.returncode == 1, result.stderr
    assert "not acknowledged within 1" in result.stderr
    result = edabus_cli(processes, "publish", f"vault/{account}/deposit", '{"amount": 7}', *connect)
    assert result.returncode == 0, result.stderr
    # The first deposit's sender is gone: only the second is sure (the first may have landed too).
    holdings = cli_request(processes, router, f"vault/{account}/holdings")
    assert holdings in ({"balance": 7, "deposits": 1}, {"balance": 12, "deposits": 2})


def test_publish_refuses_a_field_the_type_does_not_have(processes: Processes, three_apps: str) -> None:
    """A misspelt field is refused (exit 2, naming it and the real ones) rather than taking a default unseen."""
    result = edabus_cli(processes, "publish", "bank/account/a1/deposit", '{"amout": 5}', "--connect", three_apps)
    assert result.returncode == 2
    assert "'amout'" in result.stderr
    assert "account, amount" in result.stderr


@pytest.mark.parametrize(
    "key",
    ["bank/account/*/deposit", "bank/account/**", "bank/account/$*/deposit", "bank/account/ /deposit", "bank//x"],
)
@pytest.mark.parametrize("command", ["publish", "request"])
def test_publish_and_request_refuse_a_key_that_is_not_concrete(
    processes: Processes, router: str, command: str, key: str
) -> None:
    """Wildcards and blank chunks are refused before anything is sent: exit 2, a message that names the key."""
    result = edabus_cli(processes, command, key, '{"amount": 5}', "--connect", router)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: key {key!r}"), result.stderr
    assert ".rs" not in result.stderr  # no Rust source paths


def test_publish_applies_a_message_given_as_json(processes: Processes, bank: NodeProcess) -> None:
    """`publish` of valid JSON exits 0, and the deposit shows in the balance `request` prints."""
    result = edabus_cli(processes, "publish", "bank/account/x/deposit", '{"amount": 5}', "--connect", bank.endpoint)
    assert result.returncode == 0, result.stderr
    assert cli_request(processes, bank.endpoint, "bank/account/x/balance") == {"account": "x", "amount": 5}


def test_publish_rejects_text_that_is_not_json(processes: Processes, router: str) -> None:
    """`publish` of text that is not JSON exits 2 and says the JSON is invalid."""
    result = edabus_cli(processes, "publish", "bank/account/x/deposit", "{amount: 5", "--connect", router)
    assert result.returncode == 2
    assert "invalid JSON" in result.stderr


def test_publish_rejects_json_that_does_not_fit_the_type(processes: Processes, bank: NodeProcess) -> None:
    """`publish` of JSON that does not fit the message type exits 2, names the type, and sends nothing."""
    result = edabus_cli(
        processes, "publish", "bank/account/x/deposit", '{"amount": "lots"}', "--connect", bank.endpoint
    )
    assert result.returncode == 2
    # The type is named once: the node's own error text ("Deposit: Expected ...") is not repeated.
    assert result.stderr == (
        "error: the JSON does not fit Deposit (bank/account/{account}/deposit): "
        "Expected `int`, got `str` - at `$.amount`\n"
    )
    assert cli_request(processes, bank.endpoint, "bank/account/x/balance") == {"account": "x", "amount": 0}


def test_publish_of_an_integer_beyond_64_bits_exits_2(processes: Processes, router: str) -> None:
    """JSON with an integer msgpack cannot carry is the user's input: one line, exit 2 (it was an OverflowError)."""
    big = '{"amount": 99999999999999999999999}'
    result = edabus_cli(processes, "publish", "bank/account/x/deposit", big, "--connect", router)
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: the JSON holds an integer beyond 64 bits, which msgpack cannot carry\n"


def test_publish_help_says_what_its_timeout_bounds(processes: Processes) -> None:
    """`publish --help` says what --timeout waits for."""
    result = edabus_cli(processes, "publish", "--help")
    assert result.returncode == 0
    assert "seconds to wait for the nodes' catalogs and the validation" in " ".join(result.stdout.split())


def test_publish_to_a_key_no_group_serves_warns_and_exits_1(processes: Processes, bank: NodeProcess) -> None:
    """`publish` to a key that no live group serves warns on stderr and exits 1."""
    result = edabus_cli(processes, "publish", "nobody/listens/here", '{"x": 1}', "--connect", bank.endpoint)
    assert result.returncode == 1
    assert "warning" in result.stderr
    assert "nobody/listens/here" in result.stderr


def test_request_prints_the_remote_error_and_exits_1(processes: Processes, bank: NodeProcess) -> None:
    """`request` whose handler raises prints the remote error type and message on stderr, exits 1."""
    result = edabus_cli(
        processes, "request", "bank/account/poor/withdraw", '{"amount": 100}', "--connect", bank.endpoint
    )
    assert result.returncode == 1
    assert "InsufficientFunds" in result.stderr
    assert "cannot withdraw 100" in result.stderr
    assert result.stdout == ""


# -- tail ---------------------------------------------------------------------------------------


def test_tail_prints_one_json_line_per_message(processes: Processes, bank: NodeProcess, tmp_path: Path) -> None:
    """`tail` prints each message on its key expression once, as JSON with its key, type and fields."""
    with (tmp_path / "tail.log").open("wb") as stderr:
        tail = processes.edabus("tail", "bank/**", "--connect", bank.endpoint, stderr=stderr)
    lines = Lines(tail)
    with raw_session(bank.endpoint) as session:
        lines.wait_subscribed(session, "bank/probe")
    for amount in (3, 4):
        fields = json.dumps({"amount": amount})
        result = edabus_cli(processes, "publish", "bank/account/t1/deposit", fields, "--connect", bank.endpoint)
        assert result.returncode == 0, result.stderr
    seen = lines.until(lambda seen: any(line["fields"].get("amount") == 4 for line in seen))
    assert [line for line in seen if line["key"] != "bank/probe"] == [
        {"key": "bank/account/t1/deposit", "kind": "put", "type": "Deposit", "fields": {"account": "t1", "amount": 3}},
        {"key": "bank/account/t1/deposit", "kind": "put", "type": "Deposit", "fields": {"account": "t1", "amount": 4}},
    ]
    assert processes.stop(tail) == 0


def test_tail_names_the_type_of_a_raw_message_from_the_catalogs(
    processes: Processes, bank: NodeProcess, tmp_path: Path
) -> None:
    """A put with no edabus attachment shows the type the live groups list for its key, marked raw (it was null)."""
    with (tmp_path / "tail.log").open("wb") as stderr:
        tail = processes.edabus("tail", "bank/**", "--connect", bank.endpoint, stderr=stderr)
    lines = Lines(tail)
    with raw_session(bank.endpoint) as session:
        lines.wait_subscribed(session, "bank/probe")
        put(session, "bank/account/r1/deposit", msgspec.msgpack.encode({"amount": 3}))
        put(session, "bank/nobody/here", msgspec.msgpack.encode({"x": 1}))
        seen = lines.until(lambda seen: any(line["key"] == "bank/nobody/here" for line in seen))
    assert [line for line in seen if line["key"] != "bank/probe"] == [
        {"key": "bank/account/r1/deposit", "kind": "put", "type": "Deposit", "raw": True, "fields": {"amount": 3}},
        {"key": "bank/nobody/here", "kind": "put", "type": None, "raw": True, "fields": {"x": 1}},
    ]
    assert processes.stop(tail) == 0


def test_tail_requests_shows_requests_and_reliable_messages_and_slows_none(
    processes: Processes, three_apps: str, tmp_path: Path
) -> None:
    """`tail --requests` prints requests and reliable messages (Zenoh queries) once each; requests stay fast.

    The tail's queryable ends its part of each query at once, with no reply: a
    request that is only acknowledged still returns at once, and a querier that asks
    only the best-matching queryables still reaches the group.
    """
    with (tmp_path / "tail.log").open("wb") as stderr:
        tail = processes.edabus("tail", "--requests", "--connect", three_apps, stderr=stderr)
    lines = Lines(tail)
    with raw_session(three_apps) as session:
        lines.wait_subscribed(session, "bank/probe")  # the queryable was declared before the subscriber
        best_matching = list(session.get("bank/account/q1/balance", payload=msgspec.msgpack.encode({}), timeout=5))
    assert [reply.ok is not None for reply in best_matching] == [True]
    assert cli_request(processes, three_apps, "bank/account/q1/balance") == {"account": "q1", "amount": 0}

    async def publish() -> float:
        async with edabus.connect(three_apps) as bus:
            await bus.publish(VaultDeposit(account="y7", amount=5))
            await bus.wait_delivered(timeout=WAIT_S)
            started = time.monotonic()
            assert await bus.request(Deposit(account="q1", amount=2), timeout=5.0) is None  # only acknowledged
            return time.monotonic() - started

    acknowledged_in = anyio.run(publish)
    assert acknowledged_in < 2.0  # a tail that held the query open would make it wait out its 5 s and fail
    seen = lines.until(lambda seen: any(line["key"] == "bank/account/q1/deposit" for line in seen))
    shown = [(line["key"], line["kind"], line["type"], line["fields"]) for line in seen if line["key"] != "bank/probe"]
    assert shown == [
        ("bank/account/q1/balance", "request", "GetBalance", {}),  # the raw get: its type from the catalogs
        ("bank/account/q1/balance", "request", "GetBalance", {"account": "q1"}),
        ("vault/y7/deposit", "reliable", "Deposit", {"account": "y7", "amount": 5}),
        ("bank/account/q1/deposit", "request", "Deposit", {"account": "q1", "amount": 2}),
    ]
    assert [line.get("raw") for line in seen if line["key"] == "bank/account/q1/balance"] == [True, None]
    reliable = next(line for line in seen if line["kind"] == "reliable")
    assert reliable["seq"] >= 1
    assert processes.stop(tail) == 0


def test_tail_dead_letters_shows_an_undecodable_payload(
    processes: Processes, bank: NodeProcess, tmp_path: Path
) -> None:
    """`tail --dead-letters` shows the dead letter each group publishes for a payload that is not msgpack."""
    with (tmp_path / "tail.log").open("wb") as stderr:
        tail = processes.edabus("tail", "--dead-letters", "--connect", bank.endpoint, stderr=stderr)
    lines = Lines(tail)
    garbage = b"\xc1 is never msgpack"
    with raw_session(bank.endpoint) as session:
        lines.wait_subscribed(session, "@edabus/deadletter/probe/probe")
        put(session, "bank/account/z/deposit", garbage)
        seen = lines.until(lambda seen: sum(line["key"] == "bank/account/z/deposit" for line in seen) == 2)
    letters = [line for line in seen if line["key"] == "bank/account/z/deposit"]
    assert {letter["group"] for letter in letters} == {"Account", "AuditLog"}
    for letter in letters:
        assert letter["app"] == "bank"
        assert letter["error_type"] == "DecodeError"
        # The reason says what is wrong once (it was "payload is not valid msgpack: MessagePack data is ...").
        assert letter["error"] == "Deposit: MessagePack data is malformed: invalid opcode '\\xc1' (byte 0)"
        assert base64.b64decode(letter["payload"]) == garbage
    assert bank.proc.poll() is None
    assert processes.stop(tail) == 0


# -- router, run, demo --------------------------------------------------------------------------


def test_router_on_a_port_in_use_says_so_in_one_line_and_exits_1(processes: Processes, router: str) -> None:
    """A second router on a taken port: one line naming the cause, exit 1 (it was a 30-line ExceptionGroup)."""
    result = edabus_cli(processes, "router", "--listen", router)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: cannot start the router: "), result.stderr
    assert "Address already in use" in result.stderr
    assert result.stderr.count("\n") == 1
    assert ".rs" not in result.stderr  # no Rust source paths


@pytest.mark.parametrize(
    "args",
    [
        ("router", "--listen", "127.0.0.1:7447"),
        ("router", "--listen", "tcp/127.0.0.1:99999"),
        ("status", "--connect", "tcp/127.0.0.1:99999999999999999999999"),
        ("run", "examples.bank:app", "--listen", "tcp/localhost"),
    ],
    ids=["no-protocol", "port-too-big", "port-huge", "no-port"],
)
def test_a_malformed_endpoint_is_a_usage_error(processes: Processes, args: tuple[str, ...]) -> None:
    """An endpoint without PROTOCOL/ or with a port out of range: exit 2, a line that says how to write one."""
    result = edabus_cli(processes, *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert ".rs" not in result.stderr
    assert "argument --" in result.stderr
    assert "tcp/127.0.0.1:7447" in result.stderr  # the example of a good one


@pytest.mark.parametrize("value", ["-1", "0", "inf", "1e300", "1e400", "nan", "soon"])
@pytest.mark.parametrize("command", ["status", "request", "publish"])
def test_a_timeout_must_be_positive_finite_seconds(processes: Processes, command: str, value: str) -> None:
    """--timeout takes seconds above 0 and at most a day: anything else is exit 2 with one clear line."""
    message = () if command == "status" else ("bank/account/a1/deposit", "{}")
    result = edabus_cli(processes, command, *message, "--timeout", value)
    assert result.returncode == 2, result.stderr
    assert f"argument --timeout: {value!r}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_router_that_cannot_be_reached_is_one_line_without_rust_paths(processes: Processes) -> None:
    """A connection error prints Zenoh's message without its Rust source path, exit 1."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    result = edabus_cli(processes, "status", "--connect", endpoint)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot open a Zenoh session (Unable to connect"), result.stderr
    assert endpoint in result.stderr
    assert result.stderr.count("\n") == 1
    assert ".rs" not in result.stderr


def test_version_names_edabus_and_zenoh(processes: Processes) -> None:
    """`--version` prints both versions and exits 0."""
    result = edabus_cli(processes, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("edabus 0.")
    assert "eclipse-zenoh 1." in result.stdout


def test_log_options_work_after_the_subcommand_too(processes: Processes, tmp_path: Path) -> None:
    """`edabus router --listen EP --log-json --log-level debug` logs JSON lines (they were refused there)."""
    port = free_port()
    log = tmp_path / "router.log"
    with log.open("wb") as stderr:
        proc = processes.edabus(
            "router", "--listen", f"tcp/127.0.0.1:{port}", "--log-json", "--log-level", "debug", stderr=stderr
        )
    wait_for_port(port, proc=proc)
    assert processes.stop(proc) == 0
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]  # JSON, every line
    assert "router.started" in events
    assert events[-1] == "router.stopped"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_router_stops_cleanly_on_a_signal(processes: Processes, tmp_path: Path, signum: signal.Signals) -> None:
    """`router` closes its session and exits 0 on SIGTERM and on SIGINT."""
    port = free_port()
    log = tmp_path / "router.log"
    with log.open("wb") as stderr:
        proc = processes.edabus("--log-json", "router", "--listen", f"tcp/127.0.0.1:{port}", stderr=stderr)
    wait_for_port(port, proc=proc)
    wait_for_signal_handler(proc, signal.SIGTERM)  # installed together with the SIGINT handler
    proc.send_signal(signum)
    assert proc.wait(timeout=10) == 0
    assert "router.stopped" in log.read_text()


def test_run_stops_cleanly_on_sigterm(processes: Processes, router: str, tmp_path: Path) -> None:
    """`run` stops its actors (on_stop runs), withdraws the node and exits 0 on SIGTERM."""
    bank = NodeProcess(processes, router, tmp_path / "node.log", log_level="debug")  # actor.stopped is at debug
    bank.wait_until_up()
    cli_request(processes, bank.endpoint, "bank/account/live/balance")  # an actor is alive now
    wait_for_signal_handler(bank.proc, signal.SIGTERM)
    bank.proc.send_signal(signal.SIGTERM)
    assert bank.proc.wait(timeout=10) == 0
    assert "actor.stopped" in bank.events()
    assert [r["event"] for r in bank.records() if r["level"] != "debug"][-1] == "node.stopped"


@pytest.mark.parametrize("attr", [":app", ""], ids=["named", "default"])
def test_run_loads_an_app_from_a_file_path(processes: Processes, router: str, tmp_path: Path, attr: str) -> None:
    """`run path/to/file.py:app` hosts an app defined in a file outside any package; `:app` may be left out."""
    (tmp_path / "greeter.py").write_text(GREETER)
    node = NodeProcess(processes, router, tmp_path / "node.log", target=f"{tmp_path / 'greeter.py'}{attr}")
    node.wait_until_up("greeter")
    assert cli_request(processes, router, "greeter/ada/greet") == {"text": "hello ada"}
    assert processes.stop(node.proc) == 0


def test_run_of_a_module_that_does_not_exist_exits_2(processes: Processes) -> None:
    """`run` of a target it cannot import exits 2 and says so."""
    result = edabus_cli(processes, "run", "no_such_module_here:app")
    assert result.returncode == 2
    assert "cannot import" in result.stderr


def test_demo_runs_the_bank_and_prints_balances(processes: Processes) -> None:
    """`demo` exits 0 within 30 s and prints each account's balance."""
    result = edabus_cli(processes, "demo", timeout=30.0)
    assert result.returncode == 0, result.stderr
    for balance in ("alice: 125", "bob: 25", "carol: 7"):
        assert balance in result.stdout
