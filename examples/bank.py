"""The bank: keyed `Account` actors, spawned on demand, and an `AuditLog` singleton.

Host it:            edabus run examples.bank:app
Run it in-process:  python examples/bank.py
"""

from __future__ import annotations

import anyio

import edabus


class Deposit(edabus.Message, key="bank/account/{account}/deposit"):
    account: str
    amount: int


class Withdraw(edabus.Message, key="bank/account/{account}/withdraw"):
    account: str
    amount: int


class GetBalance(edabus.Message, key="bank/account/{account}/balance"):
    account: str


class Balance(edabus.Message):
    account: str
    amount: int


class GetAudit(edabus.Message, key="bank/audit"):
    pass


class Audit(edabus.Message):
    deposits: int
    withdrawals: int


class InsufficientFunds(Exception):
    """A withdrawal larger than the balance."""


class Account(edabus.Actor):
    """One bank account; one instance per account id, spawned on its first message."""

    def __init__(self, key: str) -> None:
        self.account = key
        self.balance = 0

    @edabus.handler
    async def deposit(self, msg: Deposit) -> None:
        self.balance += msg.amount

    @edabus.handler
    async def withdraw(self, msg: Withdraw) -> None:
        if msg.amount > self.balance:
            raise InsufficientFunds(f"account {self.account} holds {self.balance}, cannot withdraw {msg.amount}")
        self.balance -= msg.amount

    @edabus.handler
    async def get_balance(self, msg: GetBalance) -> Balance:
        return Balance(account=self.account, amount=self.balance)


class AuditLog(edabus.Actor):
    """Counts every deposit and withdrawal on the bus; exactly one instance."""

    def __init__(self) -> None:
        self.deposits = 0
        self.withdrawals = 0

    @edabus.handler
    async def on_deposit(self, msg: Deposit) -> None:
        self.deposits += 1

    @edabus.handler
    async def on_withdraw(self, msg: Withdraw) -> None:
        self.withdrawals += 1

    @edabus.handler
    async def get(self, msg: GetAudit) -> Audit:
        return Audit(deposits=self.deposits, withdrawals=self.withdrawals)


app = edabus.App("bank")
app.keyed(Account, key="account")
app.singleton(AuditLog)


async def main() -> None:
    """Host the bank in this process, deposit, and ask for a balance."""
    async with edabus.connect() as bus, edabus.Node(bus, [app]):
        for account, amount in [("alice", 50), ("bob", 20), ("alice", 25)]:
            await bus.publish(Deposit(account=account, amount=amount))
        balance = await bus.request(GetBalance(account="alice"), reply_type=Balance)
        print(f"alice holds {balance.amount}")


if __name__ == "__main__":
    anyio.run(main)
