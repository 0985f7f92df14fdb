"""Helpers for tests that run edabus nodes and the edabus command as subprocesses."""

from __future__ import annotations

import functools
import json
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
import zenoh

import edabus
from tests.conftest import ROOT, Processes, eventually

WAIT_S = 20.0
LOAD = ROOT / "tests" / "scripts" / "load.py"


def client_config(endpoint: str) -> zenoh.Config:
    """A raw Zenoh client of the router at ``endpoint``, multicast off."""
    config = zenoh.Config()
    config.insert_json5("mode", '"client"')
    config.insert_json5("connect/endpoints", json.dumps([endpoint]))
    config.insert_json5("scouting/multicast/enabled", "false")
    return config


class NodeProcess:
    """``edabus run TARGET --connect ENDPOINT`` in a subprocess, logging JSON lines to a file."""

    def __init__(
        self,
        processes: Processes,
        endpoint: str,
        log: Path,
        *,
        target: str = "examples.bank:app",
        node_id: str | None = None,
        env: dict[str, str] | None = None,
        log_level: str = "info",
    ) -> None:
        self.endpoint = endpoint
        self.log = log
        self.node_id = node_id
        args = ["--log-json", "--log-level", log_level, "run", target, "--connect", endpoint]
        if node_id is not None:
            args += ["--node-id", node_id]
        with log.open("wb") as stderr:
            self.proc = processes.edabus(*args, stdout=subprocess.DEVNULL, stderr=stderr, env=env)

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records the node has written so far (a line still being written is left out)."""
        records = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def events(self) -> list[str]:
        """The structlog event names the node has logged so far."""
        return [record["event"] for record in self.records()]

    def wait_until_up(self, app: str = "bank", *, via: str | None = None) -> None:
        """Wait until one of ``app``'s groups holds its liveliness token (declared after every route).

        With a ``node_id``, the token must be this node's; ``via`` watches through another router.
        """
        live = threading.Event()

        def on_token(sample: zenoh.Sample) -> None:
            if sample.kind == zenoh.SampleKind.PUT:
                live.set()

        deadline = time.monotonic() + WAIT_S
        with zenoh.open(client_config(via or self.endpoint)) as session:
            tokens = session.liveliness().declare_subscriber(
                f"@edabus/member/{app}/*/{self.node_id or '*'}/gpus/*", on_token, history=True
            )
            try:
                while not live.wait(0.1):
                    if self.proc.poll() is not None:
                        msg = f"the node exited with {self.proc.returncode}:\n{self.log.read_text()}"
                        raise AssertionError(msg)
                    if time.monotonic() > deadline:
                        msg = f"no {app} group went live within {WAIT_S} s:\n{self.log.read_text()}"
                        raise AssertionError(msg)
            finally:
                tokens.undeclare()


def run_ok(processes: Processes, args: list[str], *, timeout: float = 30.0) -> str:
    """Run a Python subprocess that must exit 0; its stdout."""
    result = processes.run(args, timeout=timeout)
    assert result.returncode == 0, (args, result.stderr.decode(errors="replace")[-3000:])
    return result.stdout.decode()


def cli_request(processes: Processes, endpoint: str, key: str, fields: str = "{}") -> object:
    """A request sent by ``edabus request``; the reply it printed, decoded from JSON."""
    return json.loads(run_ok(processes, ["-m", "edabus", "request", key, fields, "--connect", endpoint]))


class Cluster:
    """Nodes of one app, started one after another, and each node's view of its group's members.

    A node reads the members alive when it starts (without logging them) and logs
    every later change as ``node.members_changed``. Nodes started one at a time,
    each once the tokens of the ones before it are live, so a node that has logged
    nothing for a group sees exactly the nodes started before it, and itself.
    """

    def __init__(self, processes: Processes, log_dir: Path, *, target: str, app: str, groups: tuple[str, ...]) -> None:
        self.processes = processes
        self.log_dir = log_dir
        self.target = target
        self.app = app
        self.groups = groups
        self.nodes: dict[str, NodeProcess] = {}
        self.gone: set[str] = set()
        self._initial: dict[str, frozenset[str]] = {}

    @property
    def live(self) -> tuple[str, ...]:
        """The ids of the nodes started and not stopped or killed, sorted."""
        return tuple(sorted(set(self.nodes) - self.gone))

    async def start(self, node_id: str, endpoint: str) -> NodeProcess:
        """Start a node and wait until its token is live (seen through its own router)."""
        self._initial[node_id] = frozenset({*self.live, node_id})
        node = NodeProcess(
            self.processes, endpoint, self.log_dir / f"{node_id}.log", target=self.target, node_id=node_id
        )
        self.nodes[node_id] = node
        await anyio.to_thread.run_sync(node.wait_until_up, self.app)
        return node

    def view(self, node_id: str, group: str) -> frozenset[str]:
        """The members of ``group`` as ``node_id`` sees them now."""
        changes = [
            record
            for record in self.nodes[node_id].records()
            if record["event"] == "node.members_changed" and record["group"] == group
        ]
        return frozenset(changes[-1]["members"]) if changes else self._initial[node_id]

    def converged(self) -> bool:
        """Whether every live node sees exactly the live nodes, in every group."""
        live = frozenset(self.live)
        return all(self.view(node, group) == live for node in live for group in self.groups)

    async def wait_converged(self, timeout: float = WAIT_S) -> None:
        """Wait until every live node sees exactly the live nodes (read from their logs)."""
        await eventually(self.converged, timeout=timeout)

    def changed_at(self, node_id: str, group: str, *, left: str = "", joined: str = "") -> float:
        """When ``node_id`` first logged that ``left`` left (or ``joined`` joined) ``group``: a Unix time."""
        for record in self.nodes[node_id].records():
            if record["event"] != "node.members_changed" or record["group"] != group:
                continue
            if left in record.get("left", ()) or joined in record.get("joined", ()):
                return datetime.fromisoformat(record["timestamp"]).timestamp()
        msg = f"{node_id} never logged that {left or joined} {'left' if left else 'joined'} {group}"
        raise AssertionError(msg)

    def logged_at(self, node_id: str, event: str) -> float:
        """When ``node_id`` first logged ``event``: a Unix time."""
        for record in self.nodes[node_id].records():
            if record["event"] == event:
                return datetime.fromisoformat(record["timestamp"]).timestamp()
        msg = f"{node_id} never logged {event}"
        raise AssertionError(msg)

    def kill(self, node_id: str) -> float:
        """SIGKILL a node; the Unix time just before the signal."""
        self.gone.add(node_id)
        at = time.time()
        self.nodes[node_id].proc.kill()
        return at

    def terminate(self, node_id: str) -> float:
        """SIGTERM a node (it stops gracefully); the Unix time just before the signal."""
        self.gone.add(node_id)
        at = time.time()
        self.nodes[node_id].proc.terminate()
        return at

    def stop_all(self) -> None:
        """SIGTERM every node at once, then wait for each (killed after 10 s)."""
        for node in self.nodes.values():
            if node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes.values():
            self.processes.stop(node.proc)


ClusterFactory = Callable[[str, str, tuple[str, ...]], Cluster]


async def live_actors(bus: edabus.Bus) -> dict[str, dict[str, list[str]]]:
    """Every node's live actors, by node id, then ``"app/group"`` (its ``@edabus/node/*/*/actors`` answers)."""
    actors: dict[str, dict[str, list[str]]] = {}
    for reply in await bus.query("@edabus/node/*/*/actors"):
        if reply.ok is not None:
            node = str(reply.ok.key_expr).split("/")[3]
            held = msgspec.msgpack.decode(reply.ok.payload.to_bytes(), type=dict[str, list[str]])
            actors.setdefault(node, {}).update(held)
    return actors


async def group_stats(bus: edabus.Bus, app: str, group: str) -> dict[str, edabus.SupervisorStatistics]:
    """One group's counters on every node that hosts it, by node id (from ``@edabus/node/{app}/*/stats``)."""
    stats = {}
    for reply in await bus.query(f"@edabus/node/{app}/*/stats"):
        if reply.ok is not None:
            for record in msgspec.msgpack.decode(reply.ok.payload.to_bytes(), type=list[edabus.SupervisorStatistics]):
                if record.app == app and record.group == group:
                    stats[record.node] = record
    return stats


def start_load(
    processes: Processes,
    endpoint: str,
    kind: str,
    count: int,
    *,
    accounts: int = 1,
    rate: float = 0.0,
    progress: int = 0,
) -> subprocess.Popen[bytes]:
    """A publisher process (tests/scripts/load.py) that sends ``count`` messages; see `load_report`."""
    args = ["--connect", endpoint, "--kind", kind, "--count", str(count), "--accounts", str(accounts)]
    return processes.start([str(LOAD), *args, "--rate", str(rate), "--progress", str(progress), "--times"])


async def wait_sent(proc: subprocess.Popen[bytes], count: int) -> None:
    """Wait until a publisher started with ``progress`` reports sending ``count`` (fail if it exits first)."""

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # JSON lines, among structlog's default output
            if line.startswith(b"{") and json.loads(line).get("progress", 0) >= count:
                return
        msg = f"the publisher exited with {proc.wait()} before sending {count}"
        raise AssertionError(msg)

    await anyio.to_thread.run_sync(read)


async def load_report(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> dict[str, Any]:
    """What a publisher process sent (``sent``, ``rate``, ``times``...), once it has exited 0."""
    out, err = await anyio.to_thread.run_sync(functools.partial(proc.communicate, timeout=timeout))
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return dict(json.loads(out.decode().strip().splitlines()[-1]))
