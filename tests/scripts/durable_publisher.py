"""Reliable deposits from a bus with a durable outbox: for the crash tests of tests/cluster/test_outbox.py.

``python tests/scripts/durable_publisher.py --connect EP --outbox FILE --count N``
opens a bus on FILE's outbox (sending again what a predecessor left), deposits 1
into ``vault/{account}`` N times, printing ``published I`` after each publish
returns, then waits until every reliable message is acknowledged and prints
``delivered``. ``--hold`` waits forever after publishing instead (to be killed).
"""

from __future__ import annotations

import argparse

import anyio

import edabus
from tests.cluster.vault_app import Deposit


async def main(args: argparse.Namespace) -> None:
    async with edabus.connect(args.connect, outbox=edabus.SQLiteOutbox(args.outbox)) as bus:
        for i in range(1, args.count + 1):
            await bus.publish(Deposit(account=args.account, amount=1))
            print(f"published {i}", flush=True)  # noqa: T201 - the test reads it
        if args.hold:
            await anyio.sleep_forever()
        await bus.wait_delivered(timeout=args.timeout)
        print("delivered", flush=True)  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--connect", required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--account", default="d1")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--hold", action="store_true")
    anyio.run(main, parser.parse_args())
