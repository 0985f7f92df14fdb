"""``edabus status``: the live nodes, their groups and counters, read from another process."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

import edabus
from edabus._cluster._status import ClusterStatus, NodeStatus, gather_status, render_json, render_table
from examples.bank import Deposit
from tests.cluster._nodes import WAIT_S, NodeProcess, live_actors
from tests.conftest import Processes

pytestmark = pytest.mark.timeout(120)

DEPOSITS = {"alice": 4, "bob": 3, "carol": 5, "dave": 2, "erin": 1}  # deposits per account
GROUPS = ["bank/Account", "bank/AuditLog"]


def status_cli(processes: Processes, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m edabus status ARGS`` to completion; its exit status and decoded output."""
    result = processes.run(["-m", "edabus", "status", *args])
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def logged(node: NodeProcess) -> list[dict[str, Any]]:
    """Every JSON log line the node has finished writing so far."""
    text = node.log.read_text()
    complete = text[: text.rfind("\n") + 1]  # the last line may be half written
    return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]


def wait_logged(node: NodeProcess, what: str, found: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """Wait until ``found(the node's log lines)``; the log lines then."""
    deadline = time.monotonic() + WAIT_S
    while not found(lines := logged(node)):
        if node.proc.poll() is not None or time.monotonic() > deadline:
            msg = f"no {what} (exit status {node.proc.poll()}):\n{node.log.read_text()}"
            raise AssertionError(msg)
        time.sleep(0.02)  # polling another process's log: there is no event to wait on
    return lines


def sees_all(size: int) -> Callable[[list[dict[str, Any]]], bool]:
    """Whether a node's log shows it counting ``size`` members in every bank group."""

    def check(lines: list[dict[str, Any]]) -> bool:
        seen = {
            f"{line['app']}/{line['group']}"
            for line in lines
            if line["event"] == "node.members_changed" and len(line["members"]) == size
        }
        return seen == set(GROUPS)

    return check


@pytest.fixture
def cluster(processes: Processes, router: str, tmp_path: Path) -> Iterator[list[str]]:
    """Three bank nodes on the router, each knowing the other two; yields their ids; stopped before the router."""
    nodes: list[NodeProcess] = []
    ids: list[str] = []
    try:
        for i in range(3):
            # One at a time: each learns the earlier ones as it starts, and they log its arrival.
            node = NodeProcess(processes, router, tmp_path / f"node{i}.log")
            nodes.append(node)
            lines = wait_logged(node, "node.started", lambda lines: any(e["event"] == "node.started" for e in lines))
            ids.append(next(line["node"] for line in lines if line["event"] == "node.started"))
        for node in nodes[:-1]:
            wait_logged(node, "3 members in each group", sees_all(3))
        yield ids
    finally:
        for node in nodes:
            processes.stop(node.proc)


async def deposit_and_wait(endpoint: str) -> None:
    """Publish every deposit in DEPOSITS, then wait until the nodes' counters show them all handled."""
    total = sum(DEPOSITS.values())
    async with edabus.connect(endpoint) as bus:
        for account, count in DEPOSITS.items():
            for _ in range(count):
                await bus.publish(Deposit(account=account, amount=10))
        with anyio.fail_after(WAIT_S):
            while True:
                totals = {f"{t.app}/{t.group}": t for t in (await gather_status(bus, timeout=2.0)).totals()}
                if all(g in totals and totals[g].handled >= total for g in GROUPS):  # the test checks ==
                    return
                await anyio.sleep(0.02)  # counters in other processes: no event announces them


def test_status_lists_every_node_its_groups_and_counters(processes: Processes, router: str, cluster: list[str]) -> None:
    """`status --json` on a 3-node bank lists each node's groups and counters; the table names them all."""
    anyio.run(deposit_and_wait, router)
    total = sum(DEPOSITS.values())

    result = status_cli(processes, "--connect", router, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [node["node"] for node in document["nodes"]] == sorted(cluster)
    assert document["members"] == dict.fromkeys(GROUPS, sorted(cluster))
    by_group: dict[str, list[dict[str, Any]]] = {group: [] for group in GROUPS}
    for node in document["nodes"]:
        assert node["error"] is None
        assert [f"{g['app']}/{g['group']}" for g in node["groups"]] == GROUPS
        for stats in node["groups"]:
            assert stats["node"] == node["node"]
            by_group[f"{stats['app']}/{stats['group']}"].append(stats)
    accounts = by_group["bank/Account"]
    assert sum(s["handled"] for s in accounts) == total
    assert sum(s["live_actors"] for s in accounts) == len(DEPOSITS)
    # The publisher routed each deposit to its owner: no node heard another's.
    assert [s["received"] for s in accounts] == [s["handled"] for s in accounts]
    assert [s["not_owned"] for s in accounts] == [0, 0, 0]
    assert sum(s["handled"] for s in by_group["bank/AuditLog"]) == total
    assert sum(s["live_actors"] for s in by_group["bank/AuditLog"]) == 1
    assert all(s["failed"] == s["dead_letters"] == s["dropped"] == s["restarts"] == 0 for s in accounts)
    assert [(t["node"], t["group"], t["handled"], t["live_actors"]) for t in document["totals"]] == [
        ("*", "Account", total, len(DEPOSITS)),
        ("*", "AuditLog", total, 1),
    ]

    table = status_cli(processes, "--connect", router)
    assert table.returncode == 0, table.stderr
    for name in [*cluster, *GROUPS, "HANDLED", "NOT OWNED"]:
        assert name in table.stdout
    account_total = next(
        line.split() for line in table.stdout.splitlines() if line.startswith("*  ") and "Account" in line
    )
    assert account_total[:4] == ["*", "bank/Account", "keyed", str(len(DEPOSITS))]
    assert account_total[6:8] == [str(total), str(total)]  # received, handled


@pytest.mark.parametrize("where", ["router", "embedded"])
def test_status_with_no_live_node_exits_1(processes: Processes, router: str, where: str) -> None:
    """`status` where no node is live exits 1, prints nothing on stdout and says so on stderr."""
    result = status_cli(processes, *(["--connect", router] if where == "router" else []))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "no live edabus node" in result.stderr
    assert ("--connect" in result.stderr) == (where == "embedded")  # the hint, only where it helps


def test_a_node_that_does_not_answer_is_listed_with_a_note() -> None:
    """A node holding member tokens but sending no statistics shows as dashes, a note, and an error in JSON."""
    stats = edabus.SupervisorStatistics(
        app="bank", group="Account", kind="keyed", node="n1", received=3, handled=3, failed=0, restarts=0,
        escalations=0, dead_letters=0, dropped=0, passivated=0, live_actors=2, mailbox_depth=0, mailbox_peak=1,
        handler_seconds=0.003,
    )  # fmt: skip
    status = ClusterStatus(
        nodes=(NodeStatus(node="n1", groups=(stats,)), NodeStatus(node="n2", error="no statistics reply within 2 s")),
        members={"bank/Account": ("n1", "n2")},
    )
    table = render_table(status)
    assert "n2: no statistics reply within 2 s" in table
    silent = next(line.split() for line in table.splitlines() if line.startswith("n2"))
    assert silent[1:] == ["bank/Account", *["-"] * 13]
    total = next(line.split() for line in table.splitlines() if line.startswith("*  "))
    assert total[:8] == ["*", "bank/Account", "keyed", "2", "0/1", "0/0", "3", "3"]
    assert total[-1] == "1.000"  # mean handler time, in ms
    document = json.loads(render_json(status))
    assert [(node["node"], node["error"]) for node in document["nodes"]] == [
        ("n1", None),
        ("n2", "no statistics reply within 2 s"),
    ]


def _actor_rows(table: str) -> set[tuple[str, ...]]:
    """The rows under the ``GROUP KEY NODE`` header of `status --actors`."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == ["GROUP", "KEY", "NODE"])
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(tuple(line.split()))
    return set(rows)


def test_status_actors_shows_which_node_holds_each_key(processes: Processes, router: str, cluster: list[str]) -> None:
    """`status --actors` lists each live actor with the node that holds it, as the nodes' actor queryables say."""
    anyio.run(deposit_and_wait, router)

    async def held() -> dict[str, dict[str, list[str]]]:
        async with edabus.connect(router) as bus:
            return await live_actors(bus)

    expected = {
        (group, key or "-", node)
        for node, groups in anyio.run(held).items()
        for group, keys in groups.items()
        for key in keys
    }
    assert {key for group, key, _ in expected if group == "bank/Account"} == set(DEPOSITS)
    assert {node for _, _, node in expected} <= set(cluster)

    result = status_cli(processes, "--connect", router, "--actors")
    assert result.returncode == 0, result.stderr
    assert _actor_rows(result.stdout) == expected
    assert f"{len(expected)} live actors." in result.stdout

    document = json.loads(status_cli(processes, "--connect", router, "--json", "--actors").stdout)
    accounts = document["actors"]["bank/Account"]
    assert sorted(accounts) == sorted(DEPOSITS)
    assert {(key, tuple(nodes)) for key, nodes in accounts.items()} == {
        (key, (node,)) for group, key, node in expected if group == "bank/Account"
    }

    plain = status_cli(processes, "--connect", router)  # the default stays counts only
    assert "GROUP  KEY" not in plain.stdout
    assert "actors" not in json.loads(status_cli(processes, "--connect", router, "--json").stdout)


def test_the_actors_table_marks_singletons_and_keys_on_two_nodes() -> None:
    """A singleton's key shows as '-'; a key two nodes hold while it moves shows both; none live says so."""
    status = ClusterStatus(
        nodes=(NodeStatus(node="n1"), NodeStatus(node="n2")),
        members={"bank/Account": ("n1", "n2")},
        actors={"bank/Account": {"a1": ("n1",), "a2": ("n1", "n2")}, "bank/AuditLog": {"": ("n2",)}},
    )
    table = render_table(status)
    assert _actor_rows(table) == {
        ("bank/Account", "a1", "n1"),
        ("bank/Account", "a2", "n1,n2"),
        ("bank/AuditLog", "-", "n2"),
    }
    assert "3 live actors." in table
    assert json.loads(render_json(status))["actors"]["bank/Account"]["a2"] == ["n1", "n2"]
    empty = render_table(msgspec.structs.replace(status, actors={}))
    assert empty.splitlines()[-3:] == ["GROUP  KEY  NODE", "", "No live actor."]


def test_status_names_every_group_every_time(router: str, cluster: list[str]) -> None:
    """Ten fresh buses in a row each see every group's members (a get from the bus's session lost them 1 in 4)."""

    async def members_seen() -> list[dict[str, tuple[str, ...]]]:
        seen = []
        for _ in range(10):
            async with edabus.connect(router) as bus:
                seen.append((await gather_status(bus, timeout=2.0)).members)
        return seen

    assert anyio.run(members_seen) == [dict.fromkeys(GROUPS, tuple(sorted(cluster)))] * 10
