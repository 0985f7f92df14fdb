"""Fixtures shared by the suite: free ports, a router subprocess, reaped processes.

Every Zenoh session here runs on 127.0.0.1 with multicast scouting off; every
process a test starts is reaped by its fixture, even when the test fails.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import edabus

ROOT = Path(__file__).resolve().parent.parent

# pytest-timeout's signal method cannot end a test whose main thread is stuck in
# native code holding the GIL (a Zenoh call waiting for a lock that a Zenoh thread
# holds while it waits for the GIL): no Python code runs again, its timer thread's
# included. This watchdog is C code: past this many seconds for one test (setup,
# call and teardown) it prints every thread's stack and ends the run with exit 1,
# so a hang costs minutes, not CI's whole budget.
WATCHDOG_S = 150.0
_watchdog_stderr: int | None = None


def pytest_configure() -> None:
    """Keep a descriptor of the real stderr: during a test, fd 2 is pytest's capture file."""
    global _watchdog_stderr  # noqa: PLW0603 - one per run, set before the first test
    _watchdog_stderr = os.dup(sys.__stderr__.fileno() if sys.__stderr__ is not None else 2)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol() -> Iterator[None]:
    """Arm the watchdog around each test."""
    if _watchdog_stderr is not None:
        faulthandler.dump_traceback_later(WATCHDOG_S, exit=True, file=_watchdog_stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_sessionfinish() -> None:
    """Re-arm it for the exit: a Zenoh session left open by a test would hang the process there."""
    if _watchdog_stderr is not None:
        faulthandler.dump_traceback_later(WATCHDOG_S, exit=True, file=_watchdog_stderr)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on both anyio backends."""
    return str(request.param)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            msg = f"process exited with {proc.returncode} before listening on {port}"
            raise RuntimeError(msg)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)  # polling a port: there is no event to wait on
    msg = f"nothing listens on 127.0.0.1:{port} after {timeout} s"
    raise TimeoutError(msg)


class Processes:
    """Starts subprocesses with the test's Python and reaps all of them at teardown."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: Sequence[str], *, env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        """Start ``python ARGS`` in the repository root, ``env`` added to ours; stdout, stderr piped unless given."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **(env or {})}
        proc: subprocess.Popen[bytes] = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, *args], cwd=ROOT, env=env, **kwargs
        )
        self.started.append(proc)
        return proc

    def edabus(self, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start the ``edabus`` command line (as ``python -m edabus``)."""
        return self.start(["-m", "edabus", *args], **kwargs)

    def run(
        self, args: Sequence[str], *, timeout: float = 30.0, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a process to completion (killed at the timeout)."""
        proc = self.start(args, env=env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            msg = f"{args} ran past {timeout} s; stderr: {err.decode(errors='replace')[-2000:]}"
            raise AssertionError(msg) from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def stop(self, proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return int(proc.returncode)

    def reap(self) -> None:
        for proc in self.started:
            self.stop(proc, timeout=5.0)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Start subprocesses; all are ended when the test ends, pass or fail."""
    procs = Processes()
    try:
        yield procs
    finally:
        procs.reap()


@pytest.fixture
def router(processes: Processes) -> Iterator[str]:
    """A router subprocess (``edabus router``) on a free loopback port; yields its endpoint."""
    port = free_port()
    endpoint = f"tcp/127.0.0.1:{port}"
    proc = processes.edabus("router", "--listen", endpoint, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc=proc)
    yield endpoint
    processes.stop(proc)


@pytest.fixture
def three_apps(processes: Processes, router: str, tmp_path: Path) -> Iterator[str]:
    """A bank, a pipeline and a vault node on one router, each up; yields the router's endpoint.

    The examples' apps: bank and vault both name a type ``Deposit``. The vault keeps
    its state in ``tmp_path / "vault.db"``.
    """
    from tests.cluster._nodes import NodeProcess  # noqa: PLC0415 - it imports this module

    apps = ("bank", "pipeline", "vault")
    env = {"EDABUS_VAULT_DB": str(tmp_path / "vault.db")}
    nodes = [
        NodeProcess(processes, router, tmp_path / f"{app}.log", target=f"examples.{app}:app", env=env) for app in apps
    ]
    for app, node in zip(apps, nodes, strict=True):
        node.wait_until_up(app)
    yield router
    for node in nodes:
        processes.stop(node.proc)


@pytest.fixture
async def bus() -> AsyncIterator[edabus.Bus]:
    """A bus on the embedded default: a peer that listens on nothing."""
    async with edabus.connect() as opened:
        yield opened


async def eventually(predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, checking at every short tick, failing after ``timeout``.

    For state that no event announces (another group's counters, another process).
    """
    import anyio  # noqa: PLC0415

    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - polling a condition with a deadline, not a settle
            await anyio.sleep(0.005)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL server shared by the whole run; its DSN (tests skip where none can start)."""
    from tests.postgres import postgres_server  # noqa: PLC0415 - tests.postgres imports this module

    with postgres_server() as dsn:
        yield dsn
