"""Worker subprocesses: spawned (never forked), spoken to by lines, always ended.

A worker is ``python -m benchmarks._worker ROLE JSON``. It prints marker lines
on stdout (``BENCH-READY``, ``BENCH-RESULT {json}``), anything else it prints
is ignored, and it stops when its stdin closes. `Worker` is a context manager
whose exit closes stdin, waits, and kills the process if it does not end. The
worker's side of that talk is `say_ready`, `say_result` and `wait_stdin_closed`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["READY", "RESULT", "Worker", "WorkerError", "free_port", "say_ready", "say_result", "wait_stdin_closed"]

ROOT = Path(__file__).resolve().parent.parent
READY = "BENCH-READY"
RESULT = "BENCH-RESULT "
_STOP_TIMEOUT_S = 15.0


class WorkerError(RuntimeError):
    """A worker died, timed out or said something unexpected."""


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def say_ready() -> None:
    """In a worker: tell the parent it is ready."""
    _say(READY)


def say_result(record: dict[str, Any]) -> None:
    """In a worker: hand the parent its result record."""
    _say(RESULT + json.dumps(record))


def wait_stdin_closed() -> None:
    """In a worker: block until the parent closes our stdin (its cue to stop)."""
    sys.stdin.read()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Worker:
    """One worker subprocess; use as ``with Worker(role, args) as w: w.result(timeout)``."""

    def __init__(self, role: str, args: dict[str, Any]) -> None:
        self.role = role
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self._popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "benchmarks._worker", role, json.dumps(args)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"bench-{role}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self._popen.stdout
        assert stdout is not None
        for line in stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _expect(self, prefix: str, timeout: float) -> str:
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                msg = f"{self.role}: nothing starting with {prefix.strip()!r} within {timeout} s"
                raise WorkerError(msg) from None
            if line is None:
                self._popen.wait()
                msg = f"{self.role} exited ({self._popen.returncode}) before {prefix.strip()!r}: {self.stderr_tail()}"
                raise WorkerError(msg)
            if line.startswith(prefix):
                return line[len(prefix) :]

    def wait_ready(self, timeout: float) -> None:
        """Wait until the worker says it is ready."""
        self._expect(READY, timeout)

    def result(self, timeout: float) -> dict[str, Any]:
        """The worker's result record."""
        record: dict[str, Any] = json.loads(self._expect(RESULT, timeout))
        return record

    def stderr_tail(self, limit: int = 2000) -> str:
        """The end of what the worker wrote on stderr."""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-limit:]

    def ask_to_stop(self) -> None:
        """Close stdin, the worker's cue to exit, without waiting (to stop several at once)."""
        stdin = self._popen.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):  # it is gone already
                stdin.close()

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> int:
        """Close stdin (the worker's cue to exit), wait, kill if it lingers; the exit code."""
        popen = self._popen
        try:
            self.ask_to_stop()
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        finally:
            self._reader.join(timeout=5)
            if popen.stdout is not None:
                popen.stdout.close()
        return popen.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            code = self.stop()
            if code != 0 and exc_type is None:
                msg = f"{self.role} exited with {code}: {self.stderr_tail()}"
                raise WorkerError(msg)
        finally:
            self._stderr.close()
