"""A durable outbox (``connect(outbox=SQLiteOutbox(path))``) through kill -9 of its publisher.

A publisher process deposits reliably into a durable vault, is killed with
SIGKILL, and a second process opens the same outbox file: it sends again what
was not acknowledged, as the same sender, so every deposit whose ``publish``
returned is applied, and none twice.
"""

from __future__ import annotations

import random
import subprocess
import threading
from pathlib import Path

import anyio
import pytest

import edabus
from tests.cluster._nodes import NodeProcess
from tests.cluster.vault_app import GetHoldings, Holdings
from tests.conftest import Processes

pytestmark = pytest.mark.timeout(120)
PUBLISHER = "tests/scripts/durable_publisher.py"


def publisher(processes: Processes, router: str, outbox: Path, *args: str) -> subprocess.Popen[bytes]:
    return processes.start([PUBLISHER, "--connect", router, "--outbox", str(outbox), *args])


def read_until(proc: subprocess.Popen[bytes], last: str, timeout: float = 60.0) -> list[str]:
    """The lines ``proc`` prints, up to and including ``last`` (AssertionError if it ends first)."""
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode().strip())
            if lines[-1] == last:
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(timeout), f"no {last!r} within {timeout} s: {lines[-3:]}"
    assert lines, f"no output before {last!r}, exit {proc.poll()}"
    assert lines[-1] == last, f"ended before {last!r}: {lines[-3:]}, exit {proc.poll()}"
    return lines


def last_published(proc: subprocess.Popen[bytes]) -> int:
    """The number of the last ``published N`` line a finished process printed (its pipe still holds the rest)."""
    assert proc.stdout is not None
    lines = proc.stdout.read().decode().splitlines()
    return max((int(line.split()[1]) for line in lines if line.startswith("published")), default=0)


def holdings(router: str, account: str = "d1") -> Holdings:
    async def ask() -> Holdings:
        async with edabus.connect(router) as bus:
            await bus.wait_for_group("vault", timeout=20)
            return await bus.request(GetHoldings(account=account), reply_type=Holdings, timeout=10)

    return anyio.run(ask)


def vault_node(processes: Processes, router: str, tmp_path: Path) -> NodeProcess:
    node = NodeProcess(
        processes,
        router,
        tmp_path / "vault.log",
        target="tests.cluster.vault_app:app",
        env={"EDABUS_TEST_STORE": str(tmp_path / "vault.db")},
    )
    node.wait_until_up("vault")
    return node


def test_deposits_kept_by_a_killed_publisher_are_delivered_by_the_next(
    processes: Processes, router: str, tmp_path: Path
) -> None:
    """50 deposits with no vault up, the publisher killed: the next process on its outbox delivers all 50."""
    outbox = tmp_path / "outbox.db"
    first = publisher(processes, router, outbox, "--count", "50", "--hold")
    read_until(first, "published 50")
    first.kill()
    first.wait()
    vault_node(processes, router, tmp_path)
    second = publisher(processes, router, outbox)
    read_until(second, "delivered")
    assert second.wait(10) == 0
    assert holdings(router) == Holdings(balance=50, deposits=50)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_publisher_killed_mid_stream_loses_nothing_and_doubles_nothing(
    processes: Processes, router: str, tmp_path: Path, seed: int
) -> None:
    """Killed after a random number of deposits while its owner acknowledges them: each applied exactly once.

    What the owner acknowledged but the outbox had not yet forgotten is sent again
    by the next process; the owner knows the sender and its numbers, and drops it.
    The next process's own deposits are numbered above all of them, so none is
    taken for an old one.
    """
    vault_node(processes, router, tmp_path)
    outbox = tmp_path / "outbox.db"
    kill_at = random.Random(seed).randint(50, 250)  # noqa: S311 - a seeded kill point, not a secret
    first = publisher(processes, router, outbox, "--count", "400")
    read_until(first, f"published {kill_at}")
    first.kill()
    first.wait()
    printed = max(kill_at, last_published(first))  # it may have gone on until the signal landed
    second = publisher(processes, router, outbox, "--count", "20")
    read_until(second, "delivered")
    assert second.wait(10) == 0
    held = holdings(router)
    assert held.balance == held.deposits  # no deposit applied twice
    # Every deposit whose publish returned (the second's 20 too), and perhaps the one in hand at the kill.
    assert printed + 20 <= held.balance <= printed + 21, (printed, held)


def test_a_second_bus_on_an_outbox_in_use_is_refused(processes: Processes, router: str, tmp_path: Path) -> None:
    """One bus at a time per outbox file: the second one fails with OutboxInUseError, the first goes on."""
    outbox = tmp_path / "outbox.db"
    first = publisher(processes, router, outbox, "--count", "1", "--hold")
    read_until(first, "published 1")

    async def open_second() -> None:
        async with edabus.connect(router, outbox=edabus.SQLiteOutbox(outbox)):
            pass

    with pytest.raises(edabus.OutboxInUseError, match="in use by another bus"):
        anyio.run(open_second)
    assert first.poll() is None
