"""A keyed app with durable state and plain (at-most-once) messages: publishers route each to its owner alone.

Unlike the vault's reliable deposits (queries that reach every node of the
group), an `Add` published with edabus goes only to the node its publisher sees
as the owner: a test can change a key's state on one node while another, paused,
hears nothing of it.

Host it: ``EDABUS_VAULT_DB=/tmp/t.db edabus run tests.cluster.tally_app:app``.
"""

from __future__ import annotations

import os

import msgspec

import edabus


class Add(edabus.Message, key="tally/{name}/add"):
    name: str
    amount: int


class Read(edabus.Message, key="tally/{name}/read"):
    name: str


class Total(msgspec.Struct):
    total: int = 0
    adds: int = 0


class Tally(edabus.Actor):
    state: Total

    def __init__(self, name: str) -> None:
        self.name = name

    @edabus.handler
    async def add(self, msg: Add) -> None:
        self.state.total += msg.amount
        self.state.adds += 1

    @edabus.handler
    async def read(self, msg: Read) -> Total:
        return self.state


app = edabus.App("tally", store=edabus.SQLiteStore(os.environ.get("EDABUS_VAULT_DB", "tally.db")))
app.keyed(Tally, key="name")
