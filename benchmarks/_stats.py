"""Run records and the arithmetic over them: rates, percentiles, medians."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "LatencyRun",
    "ThroughputRun",
    "latency_run",
    "percentile",
    "summarize_latency",
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
