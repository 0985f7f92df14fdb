"""Publish a stream to a cluster from a process of its own, then print what was sent as JSON.

    python tests/scripts/load.py --connect EP --kind deposit|entry|job|vault|step --count N
        [--accounts M] [--rate MSGS_PER_S] [--times] [--progress K]

Message ``i`` goes to account ``acct{i % M}``: a bank `Deposit` of 1, a ledger
`Entry` with ``seq=i``, a pipeline `Job` with ``job_id=i``, a reliable vault
`Deposit` of 1, or a reliable `Step` numbered 1, 2, 3... per account (for these
two the process then waits until every one is acknowledged, up to
``--deliver-timeout``, and reports how many were not). The process waits
for a live group of the target app before its first publish, paces itself at
``--rate`` (0: as fast as the bus allows), and closes its bus, which drains what
it sent into every live node. ``--times`` adds each message's wall-clock send time;
``--progress K`` prints ``{"progress": i}`` after every K messages, as it goes.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import anyio

import edabus
from examples.bank import Deposit
from examples.pipeline import Job
from tests.cluster.ledger_app import Entry
from tests.cluster.ordered_app import Step
from tests.cluster.vault_app import Deposit as VaultDeposit

KINDS: dict[str, tuple[str, Callable[[int, int], edabus.Message]]] = {
    "deposit": ("bank", lambda i, accounts: Deposit(account=f"acct{i % accounts}", amount=1)),
    "entry": ("ledger", lambda i, accounts: Entry(account=f"acct{i % accounts}", seq=i)),
    "job": ("pipeline", lambda i, _: Job(job_id=i, text="the quick brown fox")),
    "vault": ("vault", lambda i, accounts: VaultDeposit(account=f"acct{i % accounts}", amount=1)),
    "step": ("ordered", lambda i, accounts: Step(account=f"acct{i % accounts}", n=i // accounts + 1)),
}
RELIABLE = {"vault", "step"}


async def main(args: argparse.Namespace) -> None:
    app, make = KINDS[args.kind]
    times: list[float] = []
    async with edabus.connect(args.connect, ack_timeout=args.ack_timeout) as bus:
        await bus.wait_for_group(app, timeout=20)
        started = time.perf_counter()
        for i in range(args.count):
            if args.rate:
                ahead = started + i / args.rate - time.perf_counter()
                if ahead > 0.001:  # pacing the stream, not waiting for anything to settle
                    await anyio.sleep(ahead)
            times.append(time.time())
            await bus.publish(make(i, args.accounts))
            if args.progress and (i + 1) % args.progress == 0:
                print(json.dumps({"progress": i + 1}), flush=True)  # noqa: T201 - for a test that waits on it
        elapsed = time.perf_counter() - started
        undelivered = 0
        if args.kind in RELIABLE:
            try:
                await bus.wait_delivered(timeout=args.deliver_timeout)
            except edabus.Undelivered:
                undelivered = bus.outbox.unacked
        resent = bus.outbox.resent if args.kind in RELIABLE else 0
    report: dict[str, object] = {
        "undelivered": undelivered,
        "resent": resent,
        "sent": args.count,
        "elapsed": elapsed,
        "rate": args.count / elapsed if elapsed else 0.0,
        "closed_after": time.perf_counter() - started,
    }
    if args.times:
        report["times"] = times
    print(json.dumps(report), flush=True)  # noqa: T201 - the report the test reads


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--connect", required=True)
    parser.add_argument("--kind", choices=sorted(KINDS), required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second (0: unpaced)")
    parser.add_argument("--times", action="store_true", help="report each message's send time")
    parser.add_argument("--progress", type=int, default=0, help="print the count sent after every K messages")
    parser.add_argument("--ack-timeout", type=float, default=2.0, help="vault: resend after this long unacked")
    parser.add_argument("--deliver-timeout", type=float, default=60.0, help="vault: how long to wait for acks")
    anyio.run(main, parser.parse_args())
