"""A keyed app with durable state and reliable deposits: for failover tests that count every unit.

Each `Vault` keeps its balance in a `Holdings` state saved to the store named by
the environment variable ``EDABUS_TEST_STORE``: a SQLite file path, or a
PostgreSQL DSN (``host=...``), with the table in ``EDABUS_TEST_TABLE``. A node
that dies leaves its balances in the store, where the next owner finds them.

Host it: ``EDABUS_TEST_STORE=/tmp/v.db edabus run tests.cluster.vault_app:app``.
"""

from __future__ import annotations

import os

import msgspec

import edabus


class Deposit(edabus.Message, key="vault/{account}/deposit", reliable=True):
    account: str
    amount: int


class GetHoldings(edabus.Message, key="vault/{account}/holdings"):
    account: str


class Holdings(msgspec.Struct):
    balance: int = 0
    deposits: int = 0


class Vault(edabus.Actor):
    """One per account; its holdings survive passivation, restarts and its node's death."""

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


def store_from_env() -> edabus.StateStore:
    """The store ``EDABUS_TEST_STORE`` names (a PostgreSQL DSN has ``host=``; anything else is a path)."""
    spec = os.environ.get("EDABUS_TEST_STORE", "vault.db")
    if "host=" in spec or spec.startswith("postgresql://"):
        return edabus.PostgresStore(spec, table=os.environ.get("EDABUS_TEST_TABLE", "edabus_state"))
    return edabus.SQLiteStore(spec)


app = edabus.App("vault", store=store_from_env())
app.keyed(Vault, key="account")
