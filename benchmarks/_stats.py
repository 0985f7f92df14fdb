"""Run records and the arithmetic over them: rates, percentiles, medians."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "ClusterRun",
    "LatencyRun",
    "MemoryRun",
    "Run",
    "ThroughputRun",
    "latency_run",
    "percentile",
    "run_record",
    "summarize",
    "summarize_cluster",
    "summarize_latency",
    "summarize_memory",
    "summarize_throughput",
]


@dataclass(frozen=True, slots=True)
class ThroughputRun:
    """One throughput run: ``messages`` measured in ``seconds``; what arrived of what was sent."""

    messages: int
    seconds: float
    expected: int
    received: int
    misrouted: int = 0

    @property
    def rate(self) -> float:
        """Messages per second over the measured window."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        """Messages sent but never handled (warm-up included)."""
        return self.expected - self.received


@dataclass(frozen=True, slots=True)
class LatencyRun:
    """One request/reply run: round-trip percentiles in microseconds, and requests left unanswered."""

    requests: int
    p50_us: float
    p99_us: float
    mean_us: float
    lost: int


@dataclass(frozen=True, slots=True)
class MemoryRun:
    """One memory run: resident memory before and after ``count`` items were made, and how many live."""

    count: int
    rss_before: int
    rss_after: int
    live: int

    @property
    def per_item(self) -> float:
        """Resident-memory growth per item, in bytes."""
        return (self.rss_after - self.rss_before) / self.count if self.count else math.nan

    @property
    def lost(self) -> int:
        """Items asked for but not live at the end (actors not activated, or evicted)."""
        return abs(self.count - self.live)


@dataclass(frozen=True, slots=True)
class ClusterRun:
    """One round through a cluster: per node, arrivals taken off the bus and messages handled."""

    messages: int
    seconds: float
    received: dict[str, int]
    handled: dict[str, int]

    def ratio(self, node: str) -> float:
        """What ``node`` received for each message it handled (1.0: it saw only its own)."""
        handled = self.handled[node]
        return self.received[node] / handled if handled else math.inf

    @property
    def max_ratio(self) -> float:
        """The highest received/handled over the nodes."""
        return max((self.ratio(node) for node in self.handled), default=math.nan)

    @property
    def lost(self) -> int:
        """Messages no node handled."""
        return max(0, self.messages - sum(self.handled.values()))

    @property
    def misrouted(self) -> int:
        """Messages handled more than once (by two nodes)."""
        return max(0, sum(self.handled.values()) - self.messages)


Run = ThroughputRun | LatencyRun | MemoryRun | ClusterRun


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def latency_run(seconds: Sequence[float], *, lost: int = 0) -> LatencyRun:
    """Summarize round-trip times given in seconds."""
    values = sorted(seconds)
    return LatencyRun(
        requests=len(values),
        p50_us=percentile(values, 50) * 1e6,
        p99_us=percentile(values, 99) * 1e6,
        mean_us=statistics.fmean(values) * 1e6 if values else math.nan,
        lost=lost,
    )


def summarize_throughput(runs: Sequence[ThroughputRun]) -> dict[str, float]:
    """The median rate over runs, its spread, and the total lost."""
    rates = [r.rate for r in runs]
    return {
        "rate": statistics.median(rates),
        "rate_min": min(rates),
        "rate_max": max(rates),
        "lost": sum(r.lost for r in runs),
        "misrouted": sum(r.misrouted for r in runs),
    }


def summarize_latency(runs: Sequence[LatencyRun]) -> dict[str, float]:
    """The median p50 and p99 over runs, and the total lost."""
    return {
        "p50_us": statistics.median(r.p50_us for r in runs),
        "p99_us": statistics.median(r.p99_us for r in runs),
        "mean_us": statistics.median(r.mean_us for r in runs),
        "lost": sum(r.lost for r in runs),
    }


def summarize_memory(runs: Sequence[MemoryRun]) -> dict[str, float]:
    """The median growth per item over runs, its spread, and the total lost."""
    per_item = [r.per_item for r in runs]
    return {
        "bytes_per_item": statistics.median(per_item),
        "bytes_per_item_min": min(per_item),
        "bytes_per_item_max": max(per_item),
        "lost": sum(r.lost for r in runs),
    }


def summarize_cluster(runs: Sequence[ClusterRun]) -> dict[str, float]:
    """The median over rounds of the highest received/handled of any node; rate, lost, handled twice."""
    nodes = sorted({node for r in runs for node in r.handled})
    summary = {
        "max_ratio": statistics.median(r.max_ratio for r in runs),
        "rate": statistics.median(r.messages / r.seconds if r.seconds > 0 else 0.0 for r in runs),
        "lost": sum(r.lost for r in runs),
        "misrouted": sum(r.misrouted for r in runs),
    }
    for node in nodes:
        summary[f"ratio {node}"] = statistics.median(r.ratio(node) for r in runs if node in r.handled)
    return summary


def summarize(runs: Sequence[Run]) -> dict[str, float]:
    """The summary that fits the runs' kind (all runs of one variant are of one kind)."""
    first = runs[0]
    if isinstance(first, ThroughputRun):
        return summarize_throughput([r for r in runs if isinstance(r, ThroughputRun)])
    if isinstance(first, LatencyRun):
        return summarize_latency([r for r in runs if isinstance(r, LatencyRun)])
    if isinstance(first, MemoryRun):
        return summarize_memory([r for r in runs if isinstance(r, MemoryRun)])
    return summarize_cluster([r for r in runs if isinstance(r, ClusterRun)])


def run_record(run: Run) -> dict[str, Any]:
    """One run as a JSON-ready dict, derived figures included."""
    record = asdict(run)
    if isinstance(run, ThroughputRun):
        record["rate"] = run.rate
    elif isinstance(run, MemoryRun):
        record["bytes_per_item"] = run.per_item
    elif isinstance(run, ClusterRun):
        record["max_ratio"] = run.max_ratio
    return record
