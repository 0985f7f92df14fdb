"""Messages cross process boundaries through a router: nothing lost, nothing doubled.

Every test here runs a router and a bank node (``edabus run examples.bank:app``)
as subprocesses, sends deposits from other processes, and reads the balances
and the AuditLog's count back over the bus.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import edabus
from examples.bank import Audit, Balance, Deposit, GetAudit, GetBalance
from tests.cluster._nodes import WAIT_S, NodeProcess, cli_request, run_ok
from tests.conftest import ROOT, Processes, eventually

RAW_PUBLISHER = ROOT / "examples" / "raw_zenoh_publisher.py"
PUBLISH_DEPOSITS = ROOT / "tests" / "scripts" / "publish_deposits.py"


@pytest.fixture
def bank(processes: Processes, router: str, tmp_path: Path) -> Iterator[NodeProcess]:
    """A bank node on the router; stopped before the router is."""
    node = NodeProcess(processes, router, tmp_path / "node.log")
    yield node
    processes.stop(node.proc)


def _publish_deposits(processes: Processes, endpoint: str, account: str, count: int, amount: int) -> None:
    """One fresh edabus process: connect, publish ``count`` deposits, exit."""
    run_ok(processes, [str(PUBLISH_DEPOSITS), endpoint, account, str(count), str(amount)])


async def test_edabus_and_raw_zenoh_deposits_are_each_applied_once(processes: Processes, bank: NodeProcess) -> None:
    """Deposits from an edabus bus and from raw-zenoh processes all land once, on the right account."""
    async with edabus.connect(bank.endpoint) as bus:
        await bus.wait_for_group("bank", timeout=WAIT_S)
        # Two raw publishers (examples/raw_zenoh_publisher.py) run while this bus publishes:
        # one to an account only it touches, one to an account this bus deposits into too.
        raw = [
            processes.start([str(RAW_PUBLISHER), "--connect", bank.endpoint, "--account", account, "--count", "150"])
            for account in ("raw", "shared")
        ]
        expected = {"raw": 150, "shared": 150}
        for i in range(200):
            account = f"a{i % 5}" if i % 4 else "shared"
            await bus.publish(Deposit(account=account, amount=i))
            expected[account] = expected.get(account, 0) + i
        for proc in raw:
            out, err = await anyio.to_thread.run_sync(functools.partial(proc.communicate, timeout=WAIT_S))
            assert proc.returncode == 0, err.decode(errors="replace")
            assert b" holds " in out
        # This bus's requests queue behind its own deposits; each raw publisher had its
        # deposits drained and its own balance request answered before it exited.
        for account, amount in expected.items():
            balance = await bus.request(GetBalance(account=account), reply_type=Balance, timeout=10.0)
            assert balance == Balance(account=account, amount=amount)
        audit = await bus.request(GetAudit(), reply_type=Audit, timeout=10.0)
        assert audit == Audit(deposits=200 + 2 * 150, withdrawals=0)


def test_one_message_from_each_of_50_fresh_processes_is_handled(processes: Processes, bank: NodeProcess) -> None:
    """50 processes in a row that connect, publish one deposit and exit at once: all 50 arrive."""
    bank.wait_until_up()
    for _ in range(50):
        _publish_deposits(processes, bank.endpoint, "fresh", 1, 1)
    assert cli_request(processes, bank.endpoint, "bank/account/fresh/balance") == {"account": "fresh", "amount": 50}
    assert cli_request(processes, bank.endpoint, "bank/audit") == {"deposits": 50, "withdrawals": 0}


def test_a_burst_of_1000_from_a_process_that_exits_at_once_all_arrives(processes: Processes, bank: NodeProcess) -> None:
    """A fresh process publishes 1,000 deposits and exits: closing its bus delivers every one."""
    bank.wait_until_up()
    _publish_deposits(processes, bank.endpoint, "burst", 1000, 3)
    assert cli_request(processes, bank.endpoint, "bank/account/burst/balance") == {"account": "burst", "amount": 3000}
    assert cli_request(processes, bank.endpoint, "bank/audit") == {"deposits": 1000, "withdrawals": 0}


async def test_a_node_run_from_the_cli_freezes_what_start_up_built(bank: NodeProcess) -> None:
    """`edabus run` moves start-up's objects out of the collector's way once the node is up."""
    bank.wait_until_up()
    await eventually(lambda: "run.ready" in bank.events(), timeout=WAIT_S)
    (ready,) = [record for record in bank.records() if record["event"] == "run.ready"]
    assert ready["frozen_objects"] > 10_000
