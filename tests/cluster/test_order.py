"""Per-key order across an owner change: reliable steps 1, 2, 3... per account through kill -9 and a join.

A publisher process sends each of 100 accounts its steps in order, reliably, while
one of three nodes is killed with SIGKILL (or a third node joins, moving keys
while their old owners still hold them). Each account's stored state counts what
it applied and what came out of order: every account must end having applied
every step once, in the order sent. The same on PostgreSQL where its binaries are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import edabus
from tests.cluster._nodes import Cluster, load_report, start_load, wait_sent
from tests.cluster.ordered_app import GetOrder, Order
from tests.cluster.test_durability import Router, router_and_cluster
from tests.conftest import Processes

ACCOUNTS = 100
STEPS = 30  # per account
COUNT = ACCOUNTS * STEPS
RATE = 1_500.0

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def anyio_backend() -> str:
    """One backend: the behaviour under test lives in the node processes."""
    return "asyncio"


@pytest.fixture
def ordered(processes: Processes, tmp_path: Path) -> Iterator[tuple[Router, Cluster]]:
    """A router and a cluster of ordered-app nodes (not started yet)."""
    with router_and_cluster(processes, tmp_path, "tests.cluster.ordered_app:app", "ordered", "Steps") as made:
        yield made


async def orders(endpoint: str) -> dict[str, Order]:
    """Every account's order record, asked of its owner."""
    async with edabus.connect(endpoint) as bus:
        return {f"acct{i}": await bus.request(GetOrder(account=f"acct{i}"), reply_type=Order) for i in range(ACCOUNTS)}


async def steps_through(processes: Processes, router: Router, cluster: Cluster, mishap: str) -> None:
    nodes = ("n1", "n2") if mishap == "join" else ("n1", "n2", "n3")
    for node in nodes:
        await cluster.start(node, router.endpoint)
    await cluster.wait_converged()
    load = start_load(processes, router.endpoint, "step", COUNT, accounts=ACCOUNTS, rate=RATE, progress=COUNT // 3)
    await wait_sent(load, COUNT // 3)
    if mishap == "kill":
        cluster.kill("n2")
    else:
        await cluster.start("n3", router.endpoint)
    report = await load_report(load, timeout=120)
    assert report["undelivered"] == 0, report
    await cluster.wait_converged()
    expected = Order(last=STEPS, applied=STEPS, out_of_order=0)
    wrong = {account: order for account, order in (await orders(router.endpoint)).items() if order != expected}
    assert not wrong, f"{len(wrong)} accounts off (expected {expected}): {dict(list(wrong.items())[:5])}"


@pytest.mark.parametrize("store", ["sqlite_store", "postgres_store"])
async def test_each_key_applies_its_steps_in_order_through_kill_9(
    processes: Processes, ordered: tuple[Router, Cluster], store: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(store)  # sets the store the node processes will use
    await steps_through(processes, *ordered, "kill")


@pytest.mark.usefixtures("sqlite_store")
async def test_each_key_applies_its_steps_in_order_while_a_node_joins(
    processes: Processes, ordered: tuple[Router, Cluster]
) -> None:
    await steps_through(processes, *ordered, "join")
