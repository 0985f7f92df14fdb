"""Helpers for tests that run edabus nodes and the edabus command as subprocesses."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import zenoh

from tests.conftest import Processes

WAIT_S = 20.0


def client_config(endpoint: str) -> zenoh.Config:
    """A raw Zenoh client of the router at ``endpoint``, multicast off."""
    config = zenoh.Config()
    config.insert_json5("mode", '"client"')
    config.insert_json5("connect/endpoints", json.dumps([endpoint]))
    config.insert_json5("scouting/multicast/enabled", "false")
    return config


class NodeProcess:
    """``edabus run TARGET --connect ENDPOINT`` in a subprocess, logging JSON lines to a file."""

    def __init__(self, processes: Processes, endpoint: str, log: Path, *, target: str = "examples.bank:app") -> None:
        self.endpoint = endpoint
        self.log = log
        with log.open("wb") as stderr:
            self.proc = processes.edabus(
                "--log-json", "run", target, "--connect", endpoint, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def events(self) -> list[str]:
        """The structlog event names the node has logged so far."""
        return [json.loads(line)["event"] for line in self.log.read_text().splitlines() if line.startswith("{")]

    def wait_until_up(self, app: str = "bank") -> None:
        """Wait until one of ``app``'s groups holds its liveliness token (declared after every route)."""
        live = threading.Event()

        def on_token(sample: zenoh.Sample) -> None:
            if sample.kind == zenoh.SampleKind.PUT:
                live.set()

        deadline = time.monotonic() + WAIT_S
        with zenoh.open(client_config(self.endpoint)) as session:
            tokens = session.liveliness().declare_subscriber(f"@edabus/member/{app}/**", on_token, history=True)
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
