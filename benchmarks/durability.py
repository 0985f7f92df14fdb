"""``python -m benchmarks.durability``: what durable state and reliable delivery cost, in one process.

Everything runs on the embedded default (``edabus.connect()`` + ``edabus.Node``), with
100 keyed accounts whose handler adds a deposit's amount to the balance; each
variant has its own message class, key, actor class and `edabus.App`, and every
run a fresh SQLite file in a temporary directory.

- throughput: ``--messages`` deposits published back to back (after one per account
  to activate them, which loads their state), timed from the first publish until
  the last was handled and, for reliable ones, until `Bus.wait_delivered` returned:

  a. at most once, the balance a plain attribute (no store): the baseline;
  b. at most once to a persistent actor (`edabus.SQLiteStore`, save_every=1);
  c. ``reliable=True`` to a persistent actor, save_every=1;
  d. ``reliable=True`` to a persistent actor, save_every=100;
  e. ``reliable=True`` to an actor without persistent state (acknowledged after the handler);
  f. as c, from a bus with a durable outbox (`edabus.SQLiteOutbox`): each publish is
     committed to the outbox file before it returns, and forgotten once acknowledged.

- request latency: ``--requests`` sequential `Bus.request` round trips (after a
  warm-up) to a handler that adds to an in-memory balance, and to a persistent
  actor that adds to its saved state, whose reply leaves only once the state is saved.

Every figure is the median over ``--repeats`` runs (variants interleaved); a ratio is
the median of the per-repeat ratios to the baseline of the same repeat. Every
deposit is counted in the actors and every final balance checked (read back from the
SQLite file for the persistent variants); the exit status is 1 if anything was lost
or a balance is wrong. It takes about 20 s on a 2-CPU machine (``--quick``: about 2 s).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import anyio
import msgspec

import edabus
from edabus._durability._persistence import Durability

from ._model import Tally, quiet_logging
from ._report import environment
from ._stats import percentile

__all__ = [
    "ACCOUNTS",
    "LATENCY_VARIANTS",
    "THROUGHPUT_VARIANTS",
    "LatencyRun",
    "LatencyVariant",
    "ThroughputRun",
    "ThroughputVariant",
    "latency_run",
    "main",
    "throughput_run",
]

ACCOUNTS: tuple[str, ...] = tuple(f"acct{i:03d}" for i in range(100))
_TIMEOUT_S = 120.0
_QUICK_DIVISOR = 5


def _amount(i: int) -> int:
    """The amount of the ``i``-th measured deposit: small, varied, never zero (so the state changes)."""
    return 1 + i % 7


# --- messages and actors ---------------------------------------------------------------------------


class Ledger(msgspec.Struct):
    """An account's persistent state."""

    balance: int = 0


class _SavedRow(msgspec.Struct, array_like=True):
    """A row of the store as SQLiteStore writes it: the state and the duplicate window."""

    state: Ledger
    seen: dict[str, int] = {}


_row_decoder = msgspec.msgpack.Decoder(_SavedRow)


class Balance(edabus.Message):
    """The reply to a bump: the balance after it."""

    balance: int


class Deposit(edabus.Message):
    """The fields every variant's deposit has; each variant subclasses it with its own key."""

    account: str
    amount: int


class MemoryDeposit(Deposit, key="bench/durable/memory/{account}/deposit"):
    """(a) at most once, in-memory balance."""


class SavedDeposit(Deposit, key="bench/durable/saved/{account}/deposit"):
    """(b) at most once, persistent balance."""


class ReliableDeposit(Deposit, key="bench/durable/reliable/{account}/deposit", reliable=True):
    """(c) reliable, persistent balance saved after each message."""


class BatchedDeposit(Deposit, key="bench/durable/batched/{account}/deposit", reliable=True):
    """(d) reliable, persistent balance saved every 100 messages (or when the mailbox runs empty)."""


class AckedDeposit(Deposit, key="bench/durable/acked/{account}/deposit", reliable=True):
    """(e) reliable, in-memory balance."""


class OutboxDeposit(Deposit, key="bench/durable/outbox/{account}/deposit", reliable=True):
    """(f) reliable, persistent balance, from a bus with a durable outbox."""


class MemoryBump(Deposit, key="bench/durable/memory/{account}/bump"):
    """A request that adds to the in-memory balance and gets it back."""


class SavedBump(Deposit, key="bench/durable/saved/{account}/bump"):
    """A request that adds to the persistent balance and gets it back once saved."""


class Account(edabus.Actor):
    """What every variant's account shares: the count of handled deposits and the live instances."""

    tally: ClassVar[Tally] = Tally()
    instances: ClassVar[dict[str, Account]] = {}

    def __init__(self, account: str) -> None:
        self.account = account
        self.balance = 0  # the in-memory variants' balance; the persistent ones keep theirs in state
        Account.instances[account] = self

    @classmethod
    def reset(cls) -> Tally:
        """Forget every instance and start a fresh tally (before each run)."""
        Account.instances = {}
        Account.tally = Tally()
        return Account.tally


class DurableAccount(Account):
    """An account whose balance is persistent state."""

    state: Ledger


class MemoryAccount(Account):
    @edabus.handler
    async def deposit(self, msg: MemoryDeposit) -> None:
        self.balance += msg.amount
        Account.tally.hit()

    @edabus.handler
    async def bump(self, msg: MemoryBump) -> Balance:
        self.balance += msg.amount
        return Balance(balance=self.balance)


class SavedAccount(DurableAccount):
    @edabus.handler
    async def deposit(self, msg: SavedDeposit) -> None:
        self.state.balance += msg.amount
        Account.tally.hit()

    @edabus.handler
    async def bump(self, msg: SavedBump) -> Balance:
        self.state.balance += msg.amount
        return Balance(balance=self.state.balance)


class ReliableAccount(DurableAccount):
    @edabus.handler
    async def deposit(self, msg: ReliableDeposit) -> None:
        self.state.balance += msg.amount
        Account.tally.hit()


class BatchedAccount(DurableAccount):
    @edabus.handler
    async def deposit(self, msg: BatchedDeposit) -> None:
        self.state.balance += msg.amount
        Account.tally.hit()


class OutboxAccount(DurableAccount):
    @edabus.handler
    async def deposit(self, msg: OutboxDeposit) -> None:
        self.state.balance += msg.amount
        Account.tally.hit()


class AckedAccount(Account):
    @edabus.handler
    async def deposit(self, msg: AckedDeposit) -> None:
        self.balance += msg.amount
        Account.tally.hit()


# --- the variants ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThroughputVariant:
    """One way of sending deposits: the message class, the actor and whether it saves to SQLite."""

    label: str
    delivery: str
    state: str
    message: type[Deposit]
    actor: type[Account]
    persistent: bool
    save_every: int = 1
    durable_outbox: bool = False

    @property
    def reliable(self) -> bool:
        """Whether the deposits are reliable (acknowledged, resent)."""
        return self.message.__edabus_reliable__

    def app(self, store: edabus.SQLiteStore | None) -> edabus.App:
        """A fresh App hosting this variant's accounts."""
        app = edabus.App(f"durable-{self.label}", store=store if self.persistent else None)
        app.keyed(self.actor, key="account", save_every=self.save_every)
        return app


THROUGHPUT_VARIANTS: tuple[ThroughputVariant, ...] = (
    ThroughputVariant("a", "at most once", "in memory (baseline)", MemoryDeposit, MemoryAccount, persistent=False),
    ThroughputVariant("b", "at most once", "SQLite, save_every=1", SavedDeposit, SavedAccount, persistent=True),
    ThroughputVariant("c", "reliable", "SQLite, save_every=1", ReliableDeposit, ReliableAccount, persistent=True),
    ThroughputVariant(
        "d", "reliable", "SQLite, save_every=100", BatchedDeposit, BatchedAccount, persistent=True, save_every=100
    ),
    ThroughputVariant("e", "reliable", "in memory", AckedDeposit, AckedAccount, persistent=False),
    ThroughputVariant(
        "f", "reliable", "SQLite, durable outbox", OutboxDeposit, OutboxAccount, persistent=True, durable_outbox=True
    ),
)


@dataclass(frozen=True, slots=True)
class LatencyVariant:
    """One request handler: in-memory, or persistent with the reply after the save."""

    label: str
    title: str
    message: type[Deposit]
    actor: type[Account]
    persistent: bool

    def app(self, store: edabus.SQLiteStore | None) -> edabus.App:
        """A fresh App hosting this variant's accounts."""
        app = edabus.App(f"durable-{self.label}", store=store if self.persistent else None)
        app.keyed(self.actor, key="account")
        return app


LATENCY_VARIANTS: tuple[LatencyVariant, ...] = (
    LatencyVariant("memory", "changes in-memory state (baseline)", MemoryBump, MemoryAccount, persistent=False),
    LatencyVariant("saved", "changes SQLite state, save_every=1", SavedBump, SavedAccount, persistent=True),
)


def _namespace(app: edabus.App) -> str:
    [group] = app.groups
    return f"{group.app}/{group.name}"


def _balances(path: Path, app: edabus.App, persistent: bool) -> dict[str, int]:
    """The final balances: read back from the SQLite file, or from the in-memory actors."""
    if not persistent:
        return {key: actor.balance for key, actor in Account.instances.items()}
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT key, data FROM edabus_state WHERE namespace = ?", (_namespace(app),)).fetchall()
    return {key: _row_decoder.decode(data).state.balance for key, data in rows}


def _wrong(expected: dict[str, int], got: dict[str, int]) -> int:
    """How many accounts hold a balance other than the one sent."""
    return sum(got.get(account, 0) != balance for account, balance in expected.items())


# --- 1. throughput ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThroughputRun:
    """One throughput run: ``messages`` deposits in ``seconds``; what was handled of what was sent."""

    messages: int
    seconds: float
    expected: int  # warm-up included
    handled: int
    wrong: int  # accounts whose final balance is not what was sent
    saves: int  # state saves during the measured window
    commits: int  # store batches (one transaction each) during the measured window
    resent: int  # reliable messages sent again (timeouts, refusals)

    @property
    def rate(self) -> float:
        """Messages per second over the measured window."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        """Deposits sent but not handled, or handled more than once."""
        return abs(self.expected - self.handled)


def _deposits(variant: ThroughputVariant, messages: int) -> tuple[list[Deposit], list[Deposit], dict[str, int]]:
    """The warm-up (one per account), the measured deposits, and the balances they add up to."""
    warmup = [variant.message(account=account, amount=1) for account in ACCOUNTS]
    measured = [variant.message(account=ACCOUNTS[i % len(ACCOUNTS)], amount=_amount(i)) for i in range(messages)]
    expected = dict.fromkeys(ACCOUNTS, 1)
    for msg in measured:
        expected[msg.account] += msg.amount
    return warmup, measured, expected


async def _deliver(bus: edabus.Bus, deposits: list[Deposit], tally: Tally, target: int, *, reliable: bool) -> float:
    """Publish ``deposits``; the time the tally reached ``target`` (and, if reliable, all were acknowledged)."""
    done = anyio.Event()
    tally.arm(target, done.set)
    for msg in deposits:
        await bus.publish(msg)
    with anyio.move_on_after(_TIMEOUT_S):
        await done.wait()
    ended = tally.target_time if done.is_set() else time.perf_counter()
    if reliable:
        with contextlib.suppress(edabus.Undelivered):  # what stays unacknowledged shows as not handled
            await bus.wait_delivered(timeout=_TIMEOUT_S)
        ended = max(ended, time.perf_counter())
    return ended


async def _wait_saved(durability: Durability | None, saves: int) -> None:
    """Wait until the group has saved ``saves`` times: the warm-up's saves must not spill into the window."""
    if durability is None or durability.store is None:
        return
    with anyio.fail_after(_TIMEOUT_S):
        while durability.saves < saves:  # noqa: ASYNC110 - Durability counts saves; it has no event to wait on
            await anyio.sleep(0.001)


async def throughput_run(variant: ThroughputVariant, messages: int, directory: Path) -> ThroughputRun:
    """Activate the 100 accounts, then publish ``messages`` deposits and time them."""
    path = directory / f"{variant.label}.db"
    store = edabus.SQLiteStore(path) if variant.persistent else None
    app = variant.app(store)
    warmup, measured, expected = _deposits(variant, messages)
    tally = Account.reset()
    outbox = edabus.SQLiteOutbox(directory / f"{variant.label}-outbox.db") if variant.durable_outbox else None
    async with edabus.connect(outbox=outbox) as bus, edabus.Node(bus, [app]) as node:
        durability = node.supervisor(variant.actor.__name__).hook(Durability)
        await _deliver(bus, warmup, tally, len(warmup), reliable=variant.reliable)
        await _wait_saved(durability, len(warmup))  # each warm-up deposit changes its account's state
        saves_before = durability.saves if durability is not None else 0
        commits_before = store.batches if store is not None else 0
        resent_before = bus.outbox.resent if variant.reliable else 0
        started = time.perf_counter()
        ended = await _deliver(bus, measured, tally, len(warmup) + messages, reliable=variant.reliable)
        saves = (durability.saves if durability is not None else 0) - saves_before
        commits = (store.batches if store is not None else 0) - commits_before
        resent = (bus.outbox.resent if variant.reliable else 0) - resent_before
    return ThroughputRun(
        messages=messages,
        seconds=ended - started,
        expected=len(warmup) + messages,
        handled=tally.total,
        wrong=_wrong(expected, _balances(path, app, variant.persistent)),
        saves=saves,
        commits=commits,
        resent=resent,
    )


# --- 2. request latency ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencyRun:
    """One latency run: round-trip percentiles in microseconds; replies and balances checked."""

    requests: int  # measured; the warm-up comes on top
    p50_us: float
    p99_us: float
    expected: int  # replies, warm-up included
    answered: int  # replies carrying the balance expected after the request
    wrong: int  # accounts whose final balance is not what was sent

    @property
    def lost(self) -> int:
        """Requests without a reply, or with a wrong balance."""
        return self.expected - self.answered


async def latency_run(variant: LatencyVariant, requests: int, warmup: int, directory: Path) -> LatencyRun:
    """``warmup`` then ``requests`` sequential bumps, spread over the accounts."""
    path = directory / f"{variant.label}.db"
    store = edabus.SQLiteStore(path) if variant.persistent else None
    app = variant.app(store)
    expected = dict.fromkeys(ACCOUNTS, 0)
    times: list[float] = []
    answered = 0
    Account.reset()
    async with edabus.connect() as bus, edabus.Node(bus, [app]):
        for i in range(warmup + requests):
            account = ACCOUNTS[i % len(ACCOUNTS)]
            amount = _amount(i)
            started = time.perf_counter()
            try:
                reply = await bus.request(
                    variant.message(account=account, amount=amount), reply_type=Balance, timeout=_TIMEOUT_S
                )
            except edabus.EdabusError:
                continue  # counted as lost; the balance check tells whether it was applied
            elapsed = time.perf_counter() - started
            expected[account] += amount
            answered += reply.balance == expected[account]
            if i >= warmup:
                times.append(elapsed)
    values = sorted(times)
    return LatencyRun(
        requests=requests,
        p50_us=percentile(values, 50) * 1e6,
        p99_us=percentile(values, 99) * 1e6,
        expected=warmup + requests,
        answered=answered,
        wrong=_wrong(expected, _balances(path, app, variant.persistent)),
    )


# --- the run and the tables --------------------------------------------------------------------------


def _progress(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.durability",
        description=(
            "Durable state and reliable delivery in one process: deposit throughput to 100 keyed "
            "accounts (at most once / reliable, in memory / SQLite), and request latency with a save."
        ),
    )
    p.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    p.add_argument("--messages", type=int, default=20_000, help="measured deposits per throughput run (default 20000)")
    p.add_argument("--requests", type=int, default=2_000, help="measured requests per latency run (default 2000)")
    p.add_argument(
        "--quick", action="store_true", help=f"divide --messages and --requests by {_QUICK_DIVISOR}; one repeat"
    )
    return p


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _throughput(args: argparse.Namespace) -> tuple[list[str], int, int]:
    runs: dict[str, list[ThroughputRun]] = {v.label: [] for v in THROUGHPUT_VARIANTS}
    for rep in range(1, args.repeats + 1):
        for variant in THROUGHPUT_VARIANTS:
            with tempfile.TemporaryDirectory(prefix="edabus-durability-") as directory:
                run = anyio.run(throughput_run, variant, args.messages, Path(directory))
            runs[variant.label].append(run)
            _progress(
                f"[throughput] {rep}/{args.repeats} ({variant.label}) {variant.delivery}, {variant.state}: "
                f"{run.rate:,.0f} msg/s, {run.saves:,} saves in {run.commits:,} commits, resent {run.resent}, "
                f"lost {run.lost}, wrong balances {run.wrong}"
            )
    baseline = runs[THROUGHPUT_VARIANTS[0].label]
    rows = [
        "| variant | delivery | state | msg/s | vs (a) | saves | store commits | resent | lost / wrong balances |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for variant in THROUGHPUT_VARIANTS:
        done = runs[variant.label]
        ratio = _median([r.rate / b.rate for r, b in zip(done, baseline, strict=True) if b.rate > 0])
        rows.append(
            f"| ({variant.label}) | {variant.delivery} | {variant.state} | {_median([r.rate for r in done]):,.0f} "
            f"| {ratio:.2f} | {_median([r.saves for r in done]):,.0f} | {_median([r.commits for r in done]):,.0f} "
            f"| {_median([r.resent for r in done]):,.0f} | {sum(r.lost for r in done)} / {sum(r.wrong for r in done)} |"
        )
    lost = sum(r.lost for done in runs.values() for r in done)
    wrong = sum(r.wrong for done in runs.values() for r in done)
    return rows, lost, wrong


def _latency(args: argparse.Namespace) -> tuple[list[str], int, int]:
    warmup = max(len(ACCOUNTS), args.requests // 10)
    runs: dict[str, list[LatencyRun]] = {v.label: [] for v in LATENCY_VARIANTS}
    for rep in range(1, args.repeats + 1):
        for variant in LATENCY_VARIANTS:
            with tempfile.TemporaryDirectory(prefix="edabus-durability-") as directory:
                run = anyio.run(latency_run, variant, args.requests, warmup, Path(directory))
            runs[variant.label].append(run)
            _progress(
                f"[latency] {rep}/{args.repeats} {variant.label}: p50 {run.p50_us:,.0f} µs, p99 {run.p99_us:,.0f} µs, "
                f"lost {run.lost}, wrong balances {run.wrong}"
            )
    baseline = runs[LATENCY_VARIANTS[0].label]
    rows = [
        "| handler | p50 µs | p99 µs | p50 vs baseline | p99 vs baseline | lost / wrong balances |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for variant in LATENCY_VARIANTS:
        done = runs[variant.label]
        p50_ratio = _median([r.p50_us / b.p50_us for r, b in zip(done, baseline, strict=True)])
        p99_ratio = _median([r.p99_us / b.p99_us for r, b in zip(done, baseline, strict=True)])
        rows.append(
            f"| {variant.title} | {_median([r.p50_us for r in done]):,.0f} | {_median([r.p99_us for r in done]):,.0f} "
            f"| {p50_ratio:.2f} | {p99_ratio:.2f} | {sum(r.lost for r in done)} / {sum(r.wrong for r in done)} |"
        )
    lost = sum(r.lost for done in runs.values() for r in done)
    wrong = sum(r.wrong for done in runs.values() for r in done)
    return rows, lost, wrong


def main(argv: list[str] | None = None) -> int:
    """Run the durability benchmarks and print Markdown tables; 1 if anything was lost or a balance is wrong."""
    args = _parser().parse_args(argv)
    if min(args.repeats, args.messages, args.requests) < 1:
        msg = "--repeats, --messages and --requests must be positive"
        raise SystemExit(msg)
    if args.quick:
        args.repeats = 1
        args.messages = max(1, args.messages // _QUICK_DIVISOR)
        args.requests = max(1, args.requests // _QUICK_DIVISOR)
    quiet_logging()
    env = environment()
    _progress(
        f"{env['cpus']} CPUs ({env['cpu_model']}), Python {env['python']}, eclipse-zenoh {env['eclipse-zenoh']}, "
        f"SQLite {sqlite3.sqlite_version}, edabus at {env['commit']}; {args.repeats} repeats"
    )
    started = time.perf_counter()
    throughput_rows, lost, wrong = _throughput(args)
    latency_rows, latency_lost, latency_wrong = _latency(args)
    lost += latency_lost
    wrong += latency_wrong
    sections = [
        (
            f"throughput: {args.messages:,} deposits to {len(ACCOUNTS)} keyed accounts, after one each to "
            f"activate them (median of {args.repeats})"
        ),
        "",
        *throughput_rows,
        "",
        (
            f"request latency: {args.requests:,} sequential requests over {len(ACCOUNTS)} keyed accounts, "
            f"after {max(len(ACCOUNTS), args.requests // 10):,} to warm up (median of {args.repeats})"
        ),
        "",
        *latency_rows,
        "",
    ]
    print()
    print("\n".join(sections))
    if wrong:
        print(f"wrong balances in total: {wrong}")
    print(f"lost in total: {lost}; took {time.perf_counter() - started:.0f} s")
    return 1 if lost or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
