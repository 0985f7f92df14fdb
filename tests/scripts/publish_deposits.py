"""A short-lived edabus process: connect, publish deposits, exit at once.

    python tests/scripts/publish_deposits.py ENDPOINT ACCOUNT COUNT AMOUNT

No waiting and no explicit drain: closing the bus must deliver what was published.
"""

from __future__ import annotations

import sys

import anyio

import edabus
from examples.bank import Deposit


async def main(endpoint: str, account: str, count: int, amount: int) -> None:
    async with edabus.connect(endpoint) as bus:
        for _ in range(count):
            await bus.publish(Deposit(account=account, amount=amount))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
