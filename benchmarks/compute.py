"""``python -m benchmarks.compute``: compute workers, batching and arrays, in one process.

Two scenarios on the embedded default (``edabus.connect()`` + ``edabus.Node``):

- similarity: the `examples.similarity` service (a pool of one `Scorer`) answering
  ``--requests`` queries with ``--concurrency`` in flight, once with its batch
  handler (max_batch=64, max_delay=0.002) and once with `SingleScorer`, the same
  math one query per call. Requests per second, p50/p99 round trip, batch gain.
- arrays: ``bus.publish`` of a message with a float32 ndarray field to keyed
  actors that read ``x[0]``, next to raw zenoh-python ``session.put`` (BLOCK) of
  the same array bytes to a callback subscriber that does the same; MB/s per size.

Every figure is the median over ``--repeats`` runs (variants interleaved); every
reply and every message is counted, and the exit status is 1 if any went missing.
It takes about 30 s on a 2-CPU machine on the numpy path (no GPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import anyio
import numpy as np
import zenoh

import edabus
from edabus._compute._gpus import gpu_count
from edabus._transport._config import make_config
from examples.similarity import DIM, Matches, Query, Scorer

from ._model import quiet_logging
from ._report import environment
from ._stats import percentile

__all__ = ["ArrayRun", "SimilarityRun", "SingleScorer", "main"]

_BLOCK = zenoh.CongestionControl.BLOCK
_TIMEOUT_S = 60.0
_K = 5
SIZES: tuple[tuple[str, int, int], ...] = (  # label, bytes per array, messages per run
    ("1 KiB", 1 << 10, 100_000),
    ("64 KiB", 64 << 10, 20_000),
    ("1 MiB", 1 << 20, 2_000),
)
_LANES = 4
_ARRAY_KEY = "bench/array/{lane}"


# --- a. similarity: batching on and off ---------------------------------------------------------


class SingleScorer(Scorer):
    """The example's `Scorer` with batching off: one query per handler call, the same math."""

    @edabus.handler
    async def score(self, query: Query) -> Matches:  # type: ignore[override]  # one query, not a list
        [matches] = await Scorer.score(self, [query])
        return matches


@dataclass(frozen=True, slots=True)
class SimilarityRun:
    """One run of the similarity scenario."""

    requests: int
    seconds: float
    p50_us: float
    p99_us: float
    answered: int
    calls: int  # handler calls (batches) during the measured requests

    @property
    def rate(self) -> float:
        """Requests per second over the measured window."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        """Requests without a well-formed reply."""
        return self.requests - self.answered


def _similarity_app(batched: bool) -> edabus.App:
    app = edabus.App("simbench")
    app.pool(Scorer if batched else SingleScorer, size=1, allow_cpu=True)
    return app


async def _ask(bus: edabus.Bus, queries: list[np.ndarray], concurrency: int) -> tuple[list[float], int]:
    """Send every query, ``concurrency`` in flight at a time; round trips in seconds and good replies."""
    times: list[float] = []
    answered = 0
    next_index = 0

    async def client(lane: int) -> None:
        nonlocal answered, next_index
        while next_index < len(queries):
            i = next_index
            next_index += 1
            started = time.perf_counter()
            reply = await bus.request(
                Query(client=f"c{lane}", vector=queries[i], k=_K), timeout=_TIMEOUT_S, reply_type=Matches
            )
            times.append(time.perf_counter() - started)
            if isinstance(reply, Matches) and len(reply.ids) == _K and len(reply.scores) == _K:
                answered += 1

    async with anyio.create_task_group() as tg:
        for lane in range(concurrency):
            tg.start_soon(client, lane)
    return times, answered


async def similarity_run(*, batched: bool, requests: int, concurrency: int, warmup: int) -> SimilarityRun:
    """Host the scorer pool and send it ``warmup`` then ``requests`` concurrent queries."""
    rng = np.random.default_rng(11)
    queries = [rng.standard_normal(DIM).astype(np.float32) for _ in range(requests + warmup)]
    async with edabus.connect() as bus, edabus.Node(bus, [_similarity_app(batched)]):
        await _ask(bus, queries[:warmup], concurrency)  # starts the worker, loads the corpus
        calls_before = Scorer.calls
        started = time.perf_counter()
        times, answered = await _ask(bus, queries[warmup:], concurrency)
        seconds = time.perf_counter() - started
        calls = Scorer.calls - calls_before
    values = sorted(times)
    return SimilarityRun(
        requests=requests,
        seconds=seconds,
        p50_us=percentile(values, 50) * 1e6,
        p99_us=percentile(values, 99) * 1e6,
        answered=answered,
        calls=calls,
    )


# --- b. arrays on the wire: edabus vs raw zenoh ---------------------------------------------------


class Blob(edabus.Message, key=_ARRAY_KEY):
    """A message carrying one float32 array."""

    lane: str
    x: np.ndarray


class ArraySink(edabus.Actor):
    """A keyed actor that touches every array it receives (reads ``x[0]``) and counts it."""

    received: ClassVar[int] = 0
    checksum: ClassVar[float] = 0.0
    target: ClassVar[int] = 0
    done: ClassVar[anyio.Event | None] = None
    done_at: ClassVar[float] = 0.0

    def __init__(self, lane: str) -> None:
        self.lane = lane

    @classmethod
    def arm(cls, target: int) -> anyio.Event:
        """Set an event when ``target`` messages in all have been received."""
        cls.target, cls.done = target, anyio.Event()
        if cls.received >= target:
            cls.done.set()
        return cls.done

    @edabus.handler
    async def blob(self, msg: Blob) -> None:
        cls = ArraySink
        cls.checksum += float(msg.x[0])
        cls.received += 1
        if cls.received >= cls.target and cls.done is not None and not cls.done.is_set():
            cls.done_at = time.perf_counter()
            cls.done.set()


class RawArraySink:
    """The raw counterpart: a callback subscriber that views the bytes as float32 and reads ``x[0]``."""

    def __init__(self) -> None:
        self.received = 0
        self.checksum = 0.0
        self.target = 0
        self.done = threading.Event()
        self.done_at = 0.0

    def arm(self, target: int) -> threading.Event:
        """Set an event when ``target`` samples in all have been received."""
        self.target, self.done = target, threading.Event()
        if self.received >= target:
            self.done.set()
        return self.done

    def on_sample(self, sample: zenoh.Sample) -> None:  # Zenoh's callback thread
        x = np.frombuffer(sample.payload.to_bytes(), dtype=np.float32)
        self.checksum += float(x[0])
        self.received += 1
        if self.received >= self.target and not self.done.is_set():
            self.done_at = time.perf_counter()
            self.done.set()


@dataclass(frozen=True, slots=True)
class ArrayRun:
    """One array throughput run: ``messages`` arrays of ``nbytes`` each in ``seconds``."""

    nbytes: int
    messages: int
    seconds: float
    expected: int
    received: int

    @property
    def mb_per_s(self) -> float:
        """Array bytes per second over the measured window, in MB (10^6 bytes)."""
        return self.nbytes * self.messages / self.seconds / 1e6 if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        """Messages sent but never handled (warm-up included)."""
        return self.expected - self.received


def _array(nbytes: int) -> np.ndarray:
    return np.arange(nbytes // 4, dtype=np.float32)


def raw_array_run(nbytes: int, messages: int, *, warmup: int) -> ArrayRun:
    """Raw zenoh-python: ``session.put`` (BLOCK) of the array bytes into a callback subscriber."""
    payload = _array(nbytes).tobytes()
    keys = [_ARRAY_KEY.format(lane=f"lane{i}") for i in range(_LANES)]
    sink = RawArraySink()
    with zenoh.open(make_config()) as session:
        sub = session.declare_subscriber("bench/array/*", sink.on_sample)
        try:
            warmed = sink.arm(warmup)
            for i in range(warmup):
                session.put(keys[i % _LANES], payload, congestion_control=_BLOCK)
            warmed.wait(_TIMEOUT_S)
            done = sink.arm(warmup + messages)
            started = time.perf_counter()
            for i in range(messages):
                session.put(keys[i % _LANES], payload, congestion_control=_BLOCK)
            finished = done.wait(_TIMEOUT_S)
        finally:
            sub.undeclare()
    return ArrayRun(
        nbytes=nbytes,
        messages=messages,
        seconds=(sink.done_at if finished else time.perf_counter()) - started,
        expected=warmup + messages,
        received=sink.received,
    )


async def edabus_array_run(nbytes: int, messages: int, *, warmup: int) -> ArrayRun:
    """edabus: ``bus.publish`` of `Blob` messages to keyed `ArraySink` actors on the same bus."""
    x = _array(nbytes)
    blobs = [Blob(lane=f"lane{i}", x=x) for i in range(_LANES)]
    app = edabus.App("arraybench")
    app.keyed(ArraySink, key="lane", mailbox_size=64)  # at most 64 queued arrays per lane
    ArraySink.received = 0
    async with edabus.connect() as bus, edabus.Node(bus, [app]):
        warmed = ArraySink.arm(warmup)
        for i in range(warmup):
            await bus.publish(blobs[i % _LANES])
        with anyio.move_on_after(_TIMEOUT_S):
            await warmed.wait()
        done = ArraySink.arm(warmup + messages)
        started = time.perf_counter()
        for i in range(messages):
            await bus.publish(blobs[i % _LANES])
        with anyio.move_on_after(_TIMEOUT_S):
            await done.wait()
    return ArrayRun(
        nbytes=nbytes,
        messages=messages,
        seconds=(ArraySink.done_at if done.is_set() else time.perf_counter()) - started,
        expected=warmup + messages,
        received=ArraySink.received,
    )


# --- the run and the table ------------------------------------------------------------------------


def _progress(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compute",
        description="Compute workers in one process: similarity with batching on/off; array payloads vs raw zenoh.",
    )
    p.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    p.add_argument("--requests", type=int, default=1000, help="measured similarity requests per run (default 1000)")
    p.add_argument("--concurrency", type=int, default=64, help="similarity requests in flight (default 64)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the array message counts (default 1)")
    p.add_argument("--only", choices=("similarity", "arrays"), help="run one scenario only")
    return p


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _similarity(args: argparse.Namespace) -> tuple[list[str], int]:
    runs: dict[str, list[SimilarityRun]] = {"batched": [], "single": []}
    for rep in range(1, args.repeats + 1):
        for variant, done in runs.items():
            run = anyio.run(
                lambda v=variant: similarity_run(  # type: ignore[misc]
                    batched=v == "batched", requests=args.requests, concurrency=args.concurrency, warmup=128
                )
            )
            done.append(run)
            _progress(
                f"[similarity] {rep}/{args.repeats} {variant}: {run.rate:,.0f} req/s, p50 {run.p50_us:,.0f} µs, "
                f"p99 {run.p99_us:,.0f} µs, {run.requests / max(run.calls, 1):.1f} per call, lost {run.lost}"
            )
    rows = ["| variant | req/s | p50 µs | p99 µs | requests per handler call | lost |", "|---|--:|--:|--:|--:|--:|"]
    rates = {}
    for variant, done in runs.items():
        rates[variant] = _median([r.rate for r in done])
        rows.append(
            f"| {'batch handler (max_batch=64, max_delay=0.002)' if variant == 'batched' else 'one query per call'} "
            f"| {rates[variant]:,.0f} | {_median([r.p50_us for r in done]):,.0f} "
            f"| {_median([r.p99_us for r in done]):,.0f} "
            f"| {_median([r.requests / max(r.calls, 1) for r in done]):.1f} | {sum(r.lost for r in done)} |"
        )
    rows.append("")
    rows.append(f"batching gain (req/s batched / one per call): {rates['batched'] / rates['single']:.2f}x")
    lost = sum(r.lost for done in runs.values() for r in done)
    return rows, lost


def _arrays(args: argparse.Namespace) -> tuple[list[str], int]:
    rows = [
        "| array | messages | raw zenoh MB/s | edabus MB/s | edabus/raw | lost raw / edabus |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    lost_total = 0
    for label, nbytes, count in SIZES:
        messages = max(1, round(count * args.scale))
        warmup = max(_LANES, messages // 10)
        variants: dict[str, Callable[[], ArrayRun]] = {
            "raw": lambda n=nbytes, m=messages, w=warmup: raw_array_run(n, m, warmup=w),  # type: ignore[misc]
            "edabus": lambda n=nbytes, m=messages, w=warmup: anyio.run(  # type: ignore[misc]
                lambda: edabus_array_run(n, m, warmup=w)
            ),
        }
        runs: dict[str, list[ArrayRun]] = {v: [] for v in variants}
        for rep in range(1, args.repeats + 1):
            for variant, fn in variants.items():
                run = fn()
                runs[variant].append(run)
                _progress(f"[arrays {label}] {rep}/{args.repeats} {variant}: {run.mb_per_s:,.0f} MB/s, lost {run.lost}")
        raw = _median([r.mb_per_s for r in runs["raw"]])
        ours = _median([r.mb_per_s for r in runs["edabus"]])
        lost_raw, lost_ours = sum(r.lost for r in runs["raw"]), sum(r.lost for r in runs["edabus"])
        lost_total += lost_raw + lost_ours
        rows.append(
            f"| {label} float32 | {messages:,} | {raw:,.0f} | {ours:,.0f} | {ours / raw:.2f} "
            f"| {lost_raw} / {lost_ours} |"
        )
    return rows, lost_total


def main(argv: list[str] | None = None) -> int:
    """Run the compute benchmarks and print Markdown tables; 1 if anything was lost."""
    args = _parser().parse_args(argv)
    if min(args.repeats, args.requests, args.concurrency) < 1 or args.scale <= 0:
        msg = "--repeats, --requests, --concurrency and --scale must be positive"
        raise SystemExit(msg)
    quiet_logging()
    env = environment()
    _progress(
        f"{env['cpus']} CPUs ({env['cpu_model']}), Python {env['python']}, eclipse-zenoh {env['eclipse-zenoh']}, "
        f"numpy {np.__version__}, edabus at {env['commit']}; {args.repeats} repeats"
    )
    started = time.perf_counter()
    lost = 0
    sections: list[str] = []
    if args.only in (None, "similarity"):
        rows, missing = _similarity(args)
        lost += missing
        sections += [
            (
                f"similarity: {args.requests:,} requests, {args.concurrency} in flight, one Scorer "
                f"on {'cupy, GPU 0' if gpu_count() else 'numpy (no GPU)'} "
                f"(median of {args.repeats})"
            ),
            "",
            *rows,
            "",
        ]
    if args.only in (None, "arrays"):
        rows, missing = _arrays(args)
        lost += missing
        sections += [f"arrays: one message per array, to 4 keyed actors (median of {args.repeats})", "", *rows, ""]
    print()
    print("\n".join(sections))
    print(f"lost in total: {lost}; took {time.perf_counter() - started:.0f} s")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
