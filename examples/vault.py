"""Durable state and reliable deposits: balances that survive the node that held them.

Each `Vault` actor keeps its account's `Holdings` as persistent state in a
SQLite file. `Deposit` is ``reliable=True``: the bus keeps each one until the
account's owner acknowledges it (handled, state saved) and resends it after a
failure. The script deposits, stops the node, starts a new one on the same
file, and reads the balances back from the new actors.

Host it:            edabus run examples.vault:app   (state in ./vault.db)
Run it in-process:  python examples/vault.py [--db PATH]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import anyio
import msgspec

import edabus


class Deposit(edabus.Message, key="vault/{account}/deposit", reliable=True):
    account: str
    amount: int


class GetHoldings(edabus.Message, key="vault/{account}/holdings"):
    account: str


class Holdings(msgspec.Struct):
    """An account's persistent state: every field has a default, so a new account starts empty."""

    balance: int = 0
    deposits: int = 0


class Vault(edabus.Actor):
    """One per account. ``state`` is loaded before its first message and saved after each change."""

    state: Holdings

    def __init__(self, account: str) -> None:
        self.account = account

    @edabus.handler
    async def deposit(self, msg: Deposit) -> None:
        self.state.balance += msg.amount
        self.state.deposits += 1

    @edabus.handler
    async def holdings(self, msg: GetHoldings) -> Holdings:
        return self.state


def make_app(db: str | Path) -> edabus.App:
    """The vault app with its state in the SQLite file ``db``."""
    app = edabus.App("vault", store=edabus.SQLiteStore(db))
    app.keyed(Vault, key="account")
    return app


app = make_app(os.environ.get("EDABUS_VAULT_DB", "vault.db"))


async def main(db: Path) -> None:
    """Deposit into three accounts, restart the node, read the balances back."""
    vault = make_app(db)
    async with edabus.connect() as bus:
        async with edabus.Node(bus, [vault]):
            for i in range(30):
                await bus.publish(Deposit(account=("alice", "bob", "carol")[i % 3], amount=i))
            await bus.wait_delivered(timeout=10)  # every deposit handled and saved
        print("node stopped; starting a new one on the same file")
        async with edabus.Node(bus, [vault]):
            for account in ("alice", "bob", "carol"):
                held = await bus.request(GetHoldings(account=account), reply_type=Holdings)
                print(f"{account} holds {held.balance} from {held.deposits} deposits")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="the SQLite file (default: a new temporary one)")
    args = parser.parse_args()
    if args.db is not None:
        anyio.run(main, args.db)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(main, Path(tmp) / "vault.db")
