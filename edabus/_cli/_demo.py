"""`edabus demo`: the bank example in one process, on the embedded default bus."""

from __future__ import annotations

import importlib
import sys

from edabus._exceptions import RemoteError
from edabus._host._app import App
from edabus._host._connect import connect
from edabus._host._node import Node

__all__ = ["run_demo"]

_DEPOSITS, _WITHDRAWALS = 4, 2  # what the script below sends; the audit must count exactly these


def _say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - the demo talks to the person running it


async def run_demo() -> int:
    """Host the bank, send it deposits, a bad withdrawal and requests; print what happens."""
    # examples/ ships in the wheel as edabus.examples (see pyproject.toml); loaded only when asked.
    bank = importlib.import_module("edabus.examples.bank")

    app: App = bank.app
    _say("edabus demo: the bank example (examples/bank.py), one process, no router.")
    _say(f"  groups: {', '.join(f'{g.name} ({g.kind})' for g in app.groups)}\n")
    async with connect() as bus, Node(bus, [app]) as node:
        _say("1. Deposits to three accounts that no actor holds yet: each spawns on demand.")
        for account, amount in [("alice", 100), ("bob", 40), ("carol", 7), ("alice", 25)]:
            await bus.publish(bank.Deposit(account=account, amount=amount))
            _say(f"   published Deposit(account={account!r}, amount={amount})")
        _say("\n2. A withdrawal larger than the balance, sent as a request: the error comes back.")
        try:
            await bus.request(bank.Withdraw(account="bob", amount=500), timeout=5.0)
        except RemoteError as exc:
            _say(f"   RemoteError: {exc.type_name}: {exc.message}")
        await bus.request(bank.Withdraw(account="bob", amount=15), timeout=5.0)
        _say("   Withdraw(bob, 15) acknowledged")
        _say("\n3. Balances, by request (the reply type comes from the handler's annotation).")
        for account in ("alice", "bob", "carol"):
            balance = await bus.request(bank.GetBalance(account=account), reply_type=bank.Balance, timeout=5.0)
            _say(f"   {balance.account}: {balance.amount}")
        audit = await bus.request(bank.GetAudit(), reply_type=bank.Audit, timeout=5.0)
        _say(f"\n4. The AuditLog singleton saw {audit.deposits} deposits and {audit.withdrawals} withdrawals.")
        _say("\n5. Statistics per group on this node:")
        _say(f"   {'group':<10} {'kind':<10} {'received':>8} {'handled':>8} {'failed':>7} {'actors':>6}")
        for stats in node.statistics():
            _say(
                f"   {stats.group:<10} {stats.kind:<10} {stats.received:>8} {stats.handled:>8} "
                f"{stats.failed:>7} {stats.live_actors:>6}"
            )
        ok = (audit.deposits, audit.withdrawals) == (_DEPOSITS, _WITHDRAWALS)
    _say("\nDone: actors stopped, bus closed." if ok else "\nUnexpected counts: see above.")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    import anyio

    sys.exit(anyio.run(run_demo))
