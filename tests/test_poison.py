"""A hostile client against a node process and the ``edabus`` commands: nothing it sends may end them.

The payload is the one that used to end a node: a valid ``Deposit`` map whose
extra field nests 1,000 one-element arrays (1,023 bytes; msgspec raises
RecursionError on it).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import zenoh

from tests.cluster._nodes import NodeProcess, cli_request
from tests.conftest import Processes
from tests.test_cli import Lines, edabus_cli, put, raw_session

NESTED = b"\x83\xa7account\xa2a1\xa6amount\x01\xa1z" + b"\x91" * 1000 + b"\x00"


def test_the_issue_payload_is_1023_bytes() -> None:
    """The payload is the one the report measured."""
    assert len(NESTED) == 1023


def test_nested_payloads_end_neither_the_node_nor_tail(processes: Processes, router: str, tmp_path: Path) -> None:
    """Ten nested puts to ten keys and a nested query: the node answers after them, both tails print them."""
    node = NodeProcess(processes, router, tmp_path / "node.log")
    node.wait_until_up()
    with (tmp_path / "tail.log").open("wb") as stderr:
        tail = processes.edabus("tail", "bank/**", "--connect", router, stderr=stderr)
    with (tmp_path / "letters.log").open("wb") as stderr:
        letters = processes.edabus("tail", "--dead-letters", "--connect", router, stderr=stderr)
    tail_lines, letter_lines = Lines(tail), Lines(letters)
    keys = [f"bank/account/p{i}/deposit" for i in range(10)]
    with raw_session(router) as session:
        tail_lines.wait_subscribed(session, "bank/probe")
        letter_lines.wait_subscribed(session, "@edabus/deadletter/probe/probe")
        for key in keys:
            put(session, key, NESTED)
        replies = list(session.get("bank/account/a1/balance", payload=NESTED, timeout=5.0))
        seen = tail_lines.until(lambda seen: sum(line["key"] in keys for line in seen) == len(keys))
        # Each put is dead-lettered by both groups that take deposits (Account, AuditLog), the query by Account.
        dead = letter_lines.until(
            lambda seen: sum(line["key"] != "@edabus/deadletter/probe/probe" for line in seen) == 21
        )
    assert node.proc.poll() is None
    assert cli_request(processes, router, "bank/account/a1/balance") == {"account": "a1", "amount": 0}
    assert [reply.err is not None for reply in replies] == [True]
    error = msgspec.msgpack.decode(replies[0].err.payload.to_bytes())  # type: ignore[union-attr]
    assert error["type"] == "DecodeError"
    assert "RecursionError" in error["message"]
    shown = [line for line in seen if line["key"] in keys]
    assert all(line["fields"]["size"] == len(NESTED) for line in shown)  # unreadable: its size and first bytes
    assert all(bytes.fromhex(line["fields"]["undecodable"]) == NESTED[:256] for line in shown)
    letters_seen = [line for line in dead if line["key"] != "@edabus/deadletter/probe/probe"]
    assert {line["error_type"] for line in letters_seen} == {"DecodeError"}
    assert all(line["size"] == len(NESTED) for line in letters_seen)
    assert processes.stop(tail) == 0
    assert processes.stop(letters) == 0
    processes.stop(node.proc)


def test_status_and_request_survive_hostile_replies(processes: Processes, router: str, tmp_path: Path) -> None:
    """A fake node whose statistics and replies nest too deep: `status` lists it with a note, `request` prints it."""
    node = NodeProcess(processes, router, tmp_path / "node.log")
    node.wait_until_up()

    def answer_stats(query: zenoh.Query) -> None:
        query.reply("@edabus/node/bank/evil/stats", b"\x91" + NESTED)  # a list of one record, nested too deep

    def answer(query: zenoh.Query) -> None:
        query.reply(query.key_expr, NESTED)

    with raw_session(router) as session:
        token = session.liveliness().declare_token("@edabus/member/evil/Group/evil/gpus/0")
        stats = session.declare_queryable("@edabus/node/bank/evil/stats", answer_stats)
        asked = session.declare_queryable("evil/ask", answer)
        try:
            status = edabus_cli(processes, "status", "--connect", router)
            request = edabus_cli(processes, "request", "evil/ask", "{}", "--connect", router)
        finally:
            token.undeclare()
            stats.undeclare()
            asked.undeclare()
    assert status.returncode == 0, status.stderr
    assert "evil: unreadable statistics: RecursionError" in status.stdout
    assert "bank/Account" in status.stdout  # the real node is still listed
    assert request.returncode == 0, request.stderr
    assert "Traceback" not in request.stderr
    assert msgspec.json.decode(request.stdout)["size"] == len(NESTED)
    assert node.proc.poll() is None
    assert processes.stop(node.proc) == 0


def test_a_raw_query_with_an_oversized_payload_gets_payload_too_large(
    processes: Processes, router: str, tmp_path: Path
) -> None:
    """A 5 MiB query payload is refused undecoded (over the default 4 MiB max_size), with the sizes named."""
    node = NodeProcess(processes, router, tmp_path / "node.log")
    node.wait_until_up()
    with raw_session(router) as session:
        replies = list(session.get("bank/account/a1/balance", payload=b"\x00" * (5 << 20), timeout=10.0))
    assert len(replies) == 1
    assert replies[0].err is not None
    error = msgspec.msgpack.decode(replies[0].err.payload.to_bytes())
    assert error["type"] == "PayloadTooLarge"
    assert "5,242,880 bytes" in error["message"]
    assert "4,194,304" in error["message"]
    assert node.proc.poll() is None
    assert processes.stop(node.proc) == 0


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``predicate()`` holds (another process's log or state: no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            msg = f"not true within {timeout} s"
            raise AssertionError(msg)
        time.sleep(0.02)


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def test_oversized_garbage_leaves_the_node_s_memory_bounded(processes: Processes, router: str, tmp_path: Path) -> None:
    """30 puts of 10 MB garbage: refused unread, dead-lettered with their size; RSS does not grow per message."""
    node = NodeProcess(processes, router, tmp_path / "node.log")
    node.wait_until_up()
    blob = bytes(range(256)) * (10 * 4096)  # 10 MiB

    def dead_lettered(n: int) -> bool:
        return node.events().count("message.dead_lettered") == n

    rss = [_rss_mib(node.proc.pid)]
    with raw_session(router) as session:
        for round_ in (1, 2):
            for i in range(30):
                put(session, f"bank/account/big{i}/deposit", blob)
            # Each put is refused by both deposit groups (Account, AuditLog).
            wait_for(functools.partial(dead_lettered, 60 * round_))
            rss.append(_rss_mib(node.proc.pid))
    letters = [record for record in node.records() if record["event"] == "message.dead_lettered"]
    assert {record["error_type"] for record in letters} == {"PayloadTooLarge"}
    assert node.proc.poll() is None
    print(f"\nnode RSS: start {rss[0]:.0f} MiB, after 30 x 10 MB {rss[1]:.0f}, after 60 {rss[2]:.0f}")  # noqa: T201
    # Zenoh maps a shared-memory pool (about 35 MiB) and keeps a reassembly buffer: bounded, not per message.
    assert rss[1] - rss[0] < 100
    assert rss[2] - rss[1] < 16
    assert processes.stop(node.proc) == 0
