"""The vault example (examples/vault.py) with its store named by the environment: for failover tests.

Each `Vault` keeps its balance in a `Holdings` state saved to the store named by
``EDABUS_TEST_STORE``: a SQLite file path, or a PostgreSQL DSN (``host=...``),
with the table in ``EDABUS_TEST_TABLE``. A node that dies leaves its balances in
the store, where the next owner finds them.

Host it: ``EDABUS_TEST_STORE=/tmp/v.db edabus run tests.cluster.vault_app:app``.
"""

from __future__ import annotations

import os

import edabus
from examples.vault import Deposit, GetHoldings, Holdings, Vault

__all__ = ["Deposit", "GetHoldings", "Holdings", "Vault", "app", "store_from_env"]


def store_from_env() -> edabus.StateStore:
    """The store ``EDABUS_TEST_STORE`` names (a PostgreSQL DSN has ``host=``; anything else is a path)."""
    spec = os.environ.get("EDABUS_TEST_STORE", "vault.db")
    if "host=" in spec or spec.startswith("postgresql://"):
        return edabus.PostgresStore(spec, table=os.environ.get("EDABUS_TEST_TABLE", "edabus_state"))
    return edabus.SQLiteStore(spec)


app = edabus.App("vault", store=store_from_env())
app.keyed(Vault, key="account")
