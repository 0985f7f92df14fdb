"""A throwaway PostgreSQL server for the tests that need one.

`postgres_server` runs ``initdb`` in a temporary directory, starts ``postgres``
on a free loopback port with durability off (the data dies with the test run),
waits until it accepts connections and yields a DSN; on exit it stops the server
and removes the directory. PostgreSQL refuses to run as root, so under root the
server runs as the ``postgres`` user that Debian's ``postgresql`` package creates.
Without server binaries or psycopg the tests that need it are skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

__all__ = ["postgres_server"]

START_S = 30.0
STOP_S = 10.0
_RETRY_S = 0.05
_NOT_FOUND = "PostgreSQL server binaries not found; .ci/run installs Debian's postgresql"
# The data is thrown away with the run: skip every flush to disk.
_FAST = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]


def server_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: ``pg_config --bindir``, else Debian's newest."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        # Debian's pg_config comes with libpq-dev and names a bindir even without the server.
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)  # noqa: S603 - a binary found on PATH, fixed arguments
        bindir = Path(found.stdout.strip())
        if found.returncode == 0 and _has_server(bindir):
            return bindir
    candidates = [path for path in Path("/usr/lib/postgresql").glob("*/bin") if _has_server(path)]
    if candidates:
        return max(candidates, key=lambda path: _version(path.parent.name))
    initdb = shutil.which("initdb")
    if initdb is not None and _has_server(Path(initdb).resolve().parent):
        return Path(initdb).resolve().parent
    return None


def _has_server(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "postgres").is_file()


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server in a temporary directory; yield its DSN; stop it and remove the directory.

    Raises:
        pytest.skip.Exception: no server binaries, no psycopg, or root without a ``postgres`` user.

    """
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'edabus[postgres]'")
    bindir = server_bindir()
    if bindir is None:
        pytest.skip(_NOT_FOUND)
    as_user = _unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="edabus-pg-"))
    try:
        if as_user:
            shutil.chown(base, user=as_user["user"], group=as_user["group"])
        data = base / "data"
        log = base / "server.log"
        port = free_port()
        _initdb(bindir, data, log, as_user)
        with log.open("ab") as out:
            server: subprocess.Popen[bytes] = subprocess.Popen(  # noqa: S603 - the server binary, fixed arguments
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-k",
                    str(base),
                    *_FAST,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=base,
                **as_user,
            )
        try:
            dsn = f"host=127.0.0.1 port={port} user=edabus dbname=postgres"
            _wait_ready(dsn, server, log)
            yield dsn
        finally:
            _stop(server)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _unprivileged_user() -> dict[str, Any]:
    """Popen's ``user``/``group`` arguments to drop root for the ``postgres`` user; empty when not root.

    Popen switches user in the child itself, so the process we signal is the postmaster;
    ``runuser`` would sit between, answering our SIGINT with its own SIGTERM and SIGKILL.
    """
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run the server as")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _initdb(bindir: Path, data: Path, log: Path, as_user: dict[str, Any]) -> None:
    done = subprocess.run(  # noqa: S603 - the server's initdb, fixed arguments
        [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "edabus", "-E", "UTF8", "--no-locale"],
        capture_output=True,
        cwd=data.parent,
        timeout=START_S,
        check=False,
        **as_user,
    )
    log.write_bytes(done.stdout + done.stderr)
    if done.returncode != 0:
        msg = f"initdb failed ({done.returncode}):\n{_tail(log)}"
        raise RuntimeError(msg)


def _wait_ready(dsn: str, server: subprocess.Popen[bytes], log: Path) -> None:
    import psycopg  # noqa: PLC0415 - psycopg is optional: the importorskip above guards it

    deadline = time.monotonic() + START_S
    while True:
        if server.poll() is not None:
            msg = f"postgres exited with {server.returncode} before accepting connections:\n{_tail(log)}"
            raise RuntimeError(msg)
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                msg = f"postgres accepts no connections after {START_S} s ({exc}):\n{_tail(log)}"
                raise TimeoutError(msg) from exc
        time.sleep(_RETRY_S)  # polling the server: it announces readiness to nobody else


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Fast shutdown, then SIGKILL after ``STOP_S``.

    SIGINT is PostgreSQL's fast shutdown: it ends open sessions. SIGTERM (smart
    shutdown) would wait for every client, and a test that leaked one would hang here.
    """
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(STOP_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _tail(log: Path, limit: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-limit:]
    except OSError as exc:
        return f"(no log: {exc})"
