"""An app that checks the order it is sent things in: for the per-key order tests across failover.

A `Step` carries ``n``, 1, 2, 3... per account; each `Steps` actor keeps, in its
stored state, the last ``n`` it applied, how many it applied, and how many came
out of order (not ``last + 1``). The store is the one ``EDABUS_TEST_STORE`` names,
as for tests/cluster/vault_app.py.
"""

from __future__ import annotations

import msgspec

import edabus
from tests.cluster.vault_app import store_from_env

__all__ = ["GetOrder", "Order", "Step", "Steps", "app"]


class Step(edabus.Message, key="ordered/{account}/step", reliable=True):
    account: str
    n: int


class GetOrder(edabus.Message, key="ordered/{account}/order"):
    account: str


class Order(msgspec.Struct):
    last: int = 0
    applied: int = 0
    out_of_order: int = 0


class Steps(edabus.Actor):
    state: Order

    def __init__(self, account: str) -> None:
        self.account = account

    @edabus.handler
    async def step(self, msg: Step) -> None:
        if msg.n != self.state.last + 1:
            self.state.out_of_order += 1
        self.state.last = msg.n
        self.state.applied += 1

    @edabus.handler
    async def order(self, msg: GetOrder) -> Order:
        return self.state


app = edabus.App("ordered", store=store_from_env())
app.keyed(Steps, key="account")
