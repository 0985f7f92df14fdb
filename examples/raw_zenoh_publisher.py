"""Deposit into the bank app (examples/bank.py) with plain zenoh-python and msgspec.

No edabus import: this is what any process on the bus can do, following the
wire contract in docs/wire-format.md.

- A deposit is a bare msgpack map ``{"account": ..., "amount": ...}`` put on
  ``bank/account/<id>/deposit``, reliable, congestion control BLOCK, with no
  attachment: the bank finds the message type from the key.
- Before the first put, wait until the bank's ``Account`` group is live (its
  liveliness token): a message sent before any node subscribes is lost.
- After the last put, drain with a barrier query to every node, so that
  ``close()`` cannot lose the tail of the stream.
- A balance request is a Zenoh query on ``bank/account/<id>/balance``; the
  reply payload is the msgpack map of a ``Balance``.

Try it against a bank node that listens on a port:

    edabus run examples.bank:app --listen tcp/127.0.0.1:7447
    python examples/raw_zenoh_publisher.py --connect tcp/127.0.0.1:7447 --count 10 --account a1
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

import msgspec
import zenoh

APP = "bank"
# The group that owns deposits. Its token is declared only after the node's
# subscribers, so a live token means a deposit published now will be received.
MEMBERS = f"@edabus/member/{APP}/Account/**"
# The barrier queryable of every node of the app. A node answers only after
# everything that arrived before the query, so a reply means our puts have reached it.
BARRIERS = f"@edabus/node/{APP}/*/barrier"
NIL = b"\xc0"  # msgpack nil: the reply of a handler that returns None


def open_session(connect: list[str], config: str | None) -> zenoh.Session:
    """Open a Zenoh session that never sends multicast: a client, unless ``config`` says otherwise."""
    conf = zenoh.Config.from_file(config) if config else zenoh.Config()
    if config is None:
        # A client works with a router or with a peer that listens (an edabus node
        # started with --listen); it accepts no connections itself.
        conf.insert_json5("mode", '"client"')
    if connect:
        conf.insert_json5("connect/endpoints", json.dumps(connect))
    conf.insert_json5("scouting/multicast/enabled", "false")
    return zenoh.open(conf)


def wait_until_live(session: zenoh.Session, key_expr: str, timeout: float) -> bool:
    """Wait until a liveliness token matching ``key_expr`` exists; False on timeout."""
    live = threading.Event()

    def on_change(sample: zenoh.Sample) -> None:
        if sample.kind == zenoh.SampleKind.PUT:
            live.set()

    # history=True also reports the tokens that already exist, so there is no race
    # between declaring the subscriber and a node that came up just before.
    sub = session.liveliness().declare_subscriber(key_expr, on_change, history=True)
    try:
        return live.wait(timeout)
    finally:
        sub.undeclare()


def drain(session: zenoh.Session, timeout: float) -> bool:
    """Barrier query to every node; True once all of them replied."""
    replies = list(
        session.get(
            BARRIERS,
            target=zenoh.QueryTarget.ALL,  # every node, not just the nearest
            consolidation=zenoh.ConsolidationMode.NONE,  # one reply per node, none merged
            timeout=timeout,
        )
    )
    return bool(replies) and all(reply.ok is not None for reply in replies)


def request_balance(session: zenoh.Session, account: str, timeout: float) -> Any:
    """Send GetBalance as a Zenoh query; the decoded reply, or raise on an error reply."""
    replies = session.get(
        f"{APP}/account/{account}/balance",
        # GetBalance's map. {} would do too, as the key carries the account, but an
        # empty payload would not: it is not msgpack.
        payload=msgspec.msgpack.encode({"account": account}),
        target=zenoh.QueryTarget.ALL,
        consolidation=zenoh.ConsolidationMode.NONE,
        timeout=timeout,
    )
    acknowledged = False
    for reply in replies:  # one reply per group that handles the key
        if reply.err is not None:
            raw = reply.err.payload.to_bytes()
            try:
                error: Any = msgspec.msgpack.decode(raw)  # edabus sends {"type": ..., "message": ...}
            except msgspec.DecodeError:
                error = raw.decode(errors="replace")  # Zenoh's own errors are text, e.g. "Timeout"
            msg = f"the bank answered with an error: {error}"
            raise RuntimeError(msg)
        if reply.ok is not None:
            payload = reply.ok.payload.to_bytes()
            if payload == NIL:  # a group whose handler returns None only acknowledges
                acknowledged = True
                continue
            # The attachment, a msgpack map, names the reply type: {"type": "Balance"}.
            return msgspec.msgpack.decode(payload)
    if acknowledged:
        return None
    msg = f"no reply to the balance request for {account!r}: no bank node is live"
    raise RuntimeError(msg)


def main(argv: list[str] | None = None) -> int:
    """Wait for the bank, deposit, drain, ask for the balance; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--connect",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="a router or listening node, e.g. tcp/127.0.0.1:7447",
    )
    parser.add_argument("--config", metavar="FILE", help="a Zenoh json5 file (e.g. with TLS settings)")
    parser.add_argument("--count", type=int, default=10, help="how many deposits of 1 to send")
    parser.add_argument("--account", default="a1")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the bank")
    args = parser.parse_args(argv)

    # Closed by the with-block, on the main thread: exiting with an open session hangs.
    try:
        session = open_session(args.connect, args.config)
    except zenoh.ZError as exc:  # a client raises at once when nothing answers at --connect
        print(f"cannot connect: {exc}", file=sys.stderr)
        return 1
    with session:
        if not wait_until_live(session, MEMBERS, args.timeout):
            print(f"no live {APP} node within {args.timeout} s", file=sys.stderr)
            return 1
        publisher = session.declare_publisher(
            f"{APP}/account/{args.account}/deposit",
            # put() defaults to DROP, which discards silently under load; BLOCK slows us down instead.
            congestion_control=zenoh.CongestionControl.BLOCK,
            reliability=zenoh.Reliability.RELIABLE,
        )
        for _ in range(args.count):
            publisher.put(msgspec.msgpack.encode({"account": args.account, "amount": 1}))
        if not drain(session, args.timeout):
            print("warning: not every node confirmed the deposits", file=sys.stderr)
        publisher.undeclare()

        balance = request_balance(session, args.account, args.timeout)
        print(f"{args.account} holds {balance['amount']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
