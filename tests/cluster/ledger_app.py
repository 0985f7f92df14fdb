"""A keyed app whose every handled message is visible from outside: for counting loss and duplicates.

A bank `Account` keeps its balance in memory, so a node that stops takes its
balances with it, and a balance cannot tell which deposits were applied. Here
each `Entry` a `Ledger` actor handles is announced as an `Applied` event naming
the entry's sequence number and the node that handled it: a test that listens
on ``ledger/*/applied`` sees every application, on every node, even after that
node is gone.

Host it: ``edabus run tests.cluster.ledger_app:app``.
"""

from __future__ import annotations

import time

import edabus


class Entry(edabus.Message, key="ledger/{account}/entry"):
    account: str
    seq: int


class Applied(edabus.Message, key="ledger/{account}/applied"):
    account: str
    seq: int
    node: str
    at: float  # wall-clock time the handler ran (time.time(), comparable across local processes)


class Ledger(edabus.Actor):
    """One per account; announces each entry it applies."""

    def __init__(self, key: str) -> None:
        self.account = key
        self.entries = 0

    @edabus.handler
    async def entry(self, msg: Entry) -> None:
        self.entries += 1
        await self.publish(Applied(account=msg.account, seq=msg.seq, node=self.context.node_id, at=time.time()))


app = edabus.App("ledger")
app.keyed(Ledger, key="account")
