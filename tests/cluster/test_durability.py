"""Nothing lost: durable state and reliable deposits through kill -9, a join and a router restart.

Three node processes host tests/cluster/vault_app.py, whose `Vault` actors keep
their balance as state in a shared store (a SQLite file, or a real PostgreSQL
server). A publisher process sends reliable deposits of 1 over 200 accounts at a
steady rate while something goes wrong; it waits until every deposit is
acknowledged. Then every balance must equal the deposits sent to its account:
nothing lost, nothing applied twice. Run with ``pytest -s`` to see the figures.
"""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

import edabus
from tests.cluster._nodes import Cluster, load_report, start_load, wait_sent
from tests.cluster.vault_app import GetHoldings, Holdings
from tests.conftest import Processes, free_port, wait_for_port

NODES = ("n1", "n2", "n3")
ACCOUNTS = 200
COUNT = 6_000
RATE = 2_000.0


@pytest.fixture
def anyio_backend() -> str:
    """One backend: the behaviour under test lives in the node processes."""
    return "asyncio"


class Router:
    """A router subprocess on a fixed port that the test can kill and start again."""

    def __init__(self, processes: Processes) -> None:
        self.processes = processes
        self.port = free_port()
        self.endpoint = f"tcp/127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, connect: str | None = None) -> None:
        """Start (again) on the same port; ``connect``: link to another router."""
        link = ["--connect", connect] if connect else []
        self.proc = self.processes.edabus(
            "router", "--listen", self.endpoint, *link, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, proc=self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            self.processes.stop(self.proc)


@contextmanager
def router_and_cluster(
    processes: Processes, tmp_path: Path, target: str, app: str, group: str
) -> Iterator[tuple[Router, Cluster]]:
    """A restartable router and a cluster of ``app``'s nodes (not started yet); nodes stop before the router."""
    router = Router(processes)
    router.start()
    cluster = Cluster(processes, tmp_path, target=target, app=app, groups=(group,))
    try:
        yield router, cluster
    finally:
        cluster.stop_all()
        if router.proc is not None:
            processes.stop(router.proc)


@pytest.fixture
def vault(processes: Processes, tmp_path: Path) -> Iterator[tuple[Router, Cluster]]:
    """A router and a cluster of vault nodes (not started yet)."""
    with router_and_cluster(processes, tmp_path, "tests.cluster.vault_app:app", "vault", "Vault") as made:
        yield made


async def holdings(endpoint: str) -> list[Holdings]:
    """Every account's holdings, asked of its owner."""
    async with edabus.connect(endpoint) as bus:
        return [await bus.request(GetHoldings(account=f"acct{i}"), reply_type=Holdings) for i in range(ACCOUNTS)]


async def stream_through(
    processes: Processes,
    router: Router,
    cluster: Cluster,
    mishap: Callable[[], Awaitable[None]],
    *,
    nodes: tuple[str, ...] = NODES,
) -> dict[str, object]:
    """Start ``nodes``, stream the deposits, run ``mishap`` a third of the way in; check every balance."""
    for node in nodes:
        await cluster.start(node, router.endpoint)
    await cluster.wait_converged()
    load = start_load(processes, router.endpoint, "vault", COUNT, accounts=ACCOUNTS, rate=RATE, progress=COUNT // 3)
    await wait_sent(load, COUNT // 3)
    await mishap()
    report = await load_report(load, timeout=120)
    assert report["undelivered"] == 0, report
    await cluster.wait_converged()
    balances = await holdings(router.endpoint)
    expected = Holdings(balance=COUNT // ACCOUNTS, deposits=COUNT // ACCOUNTS)
    wrong = {f"acct{i}": h for i, h in enumerate(balances) if h != expected}
    assert not wrong, f"{len(wrong)} accounts off (expected {expected}): {dict(list(wrong.items())[:5])}"
    figures = {
        "resent": report["resent"],
        "acks waited for after the last send (s)": round(float(report["closed_after"]) - float(report["elapsed"]), 3),
    }
    print(f"\n{mishap.__name__}: {COUNT} reliable deposits, every balance exact; {figures}")  # noqa: T201
    return figures


@pytest.mark.parametrize("store", ["sqlite_store", "postgres_store"])
async def test_kill_9_under_a_reliable_stream_loses_nothing(
    processes: Processes, vault: tuple[Router, Cluster], store: str, request: pytest.FixtureRequest
) -> None:
    """SIGKILL one of three nodes mid-stream, state in SQLite or PostgreSQL: every balance exact."""
    request.getfixturevalue(store)  # sets the store the node processes will use
    router, cluster = vault

    async def kill_9() -> None:
        cluster.kill("n2")

    await stream_through(processes, router, cluster, kill_9)


@pytest.mark.usefixtures("sqlite_store")
async def test_a_node_joining_mid_stream_loses_nothing(processes: Processes, vault: tuple[Router, Cluster]) -> None:
    """A third node joins mid-stream: keys move while their old owners still hold them (overlap)."""
    router, cluster = vault

    async def join() -> None:
        await cluster.start("n3", router.endpoint)

    await stream_through(processes, router, cluster, join, nodes=("n1", "n2"))


@pytest.mark.usefixtures("sqlite_store")
async def test_a_router_restart_mid_stream_loses_nothing(processes: Processes, vault: tuple[Router, Cluster]) -> None:
    """The router dies mid-stream and comes back on its port: once it is back, nothing is lost."""
    router, cluster = vault

    async def router_restart() -> None:
        router.kill()
        await anyio.sleep(0.5)  # the router stays down a while: the stream meets a dead link
        router.start()

    await stream_through(processes, router, cluster, router_restart)
