"""The scenarios across processes: every session a client of one Python Zenoh router.

Throughput: a sink process and a publisher process start together; the
publisher waits for the sink's liveliness token (raw) or group token (edabus),
sends ``warmup + messages`` ticks, and the rate is taken end to end: from the
first measured message leaving the publisher to the last one handled by the sink
(wall clocks of the same host), so a backlog queued during the warm-up is not
counted as speed. Latency: a server process, then a
client process that times sequential requests. ``pin`` runs the receiving
process (sink or server) on that one CPU only.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Literal

from ._procs import Worker, free_port
from ._stats import LatencyRun, ThroughputRun

__all__ = ["Router", "Side", "request_latency", "throughput"]

Side = Literal["raw", "edabus"]
_START_TIMEOUT_S = 60.0


class Router:
    """A router worker on a free loopback port, for ``with Router() as endpoint``."""

    def __init__(self) -> None:
        self.endpoint = ""
        self._worker: Worker | None = None

    def __enter__(self) -> str:
        port = free_port()
        self._worker = Worker("router", {"port": port})
        try:
            self._worker.wait_ready(_START_TIMEOUT_S)
        except BaseException:
            self._worker.__exit__(None, None, None)
            raise
        self.endpoint = f"tcp/127.0.0.1:{port}"
        return self.endpoint

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._worker is not None:
            self._worker.__exit__(exc_type, exc, tb)


def throughput(
    side: Side,
    endpoint: str,
    messages: int,
    *,
    warmup: int,
    idle_s: float,
    sink_side: Side | None = None,
    pin: int | None = None,
    window: int | None = None,
) -> ThroughputRun:
    """One run: a ``side`` publisher process into a ``side`` (or ``sink_side``) sink process.

    ``window``: the credit an edabus sink grants (None: edabus's default; 0: none).
    """
    sink_side = sink_side or side
    expected = warmup + messages
    sink_args = {"endpoint": endpoint, "expected": expected, "mark": warmup, "idle_s": idle_s, "cpu": pin}
    if window is not None:
        sink_args["window"] = window
    pub_args = {"endpoint": endpoint, "start": 0, "stop": expected, "warmup": warmup, "mixed": sink_side != side}
    # Started together: the publisher waits for the sink's token, so start-up overlaps.
    with Worker(f"{sink_side}-sink", sink_args) as sink, Worker(f"{side}-pub", pub_args) as pub:
        sink.wait_ready(_START_TIMEOUT_S)
        record = sink.result(_START_TIMEOUT_S + expected / 1000.0 + 2 * idle_s)
        sent = pub.result(_START_TIMEOUT_S)
    # End to end: from the first measured message leaving the publisher to the last one
    # handled (wall clocks of one host). A window taken in the receiver alone would
    # count a backlog that queued during the warm-up as speed.
    seconds = float(record["done_at"]) - float(sent["measured_from"])
    return ThroughputRun(
        messages=int(record["messages"]),
        seconds=seconds if not math.isnan(seconds) else math.inf,
        expected=int(record["expected"]),
        received=int(record["received"]),
        misrouted=int(record["misrouted"]),
    )


def request_latency(
    side: Side, endpoint: str, requests: int, *, warmup: int, server_side: Side | None = None, pin: int | None = None
) -> LatencyRun:
    """One run: a ``side`` client process timing requests to a ``side`` (or ``server_side``) server process."""
    server_side = server_side or side
    client_args = {"endpoint": endpoint, "requests": requests, "warmup": warmup, "mixed": server_side != side}
    with Worker(f"{server_side}-server", {"endpoint": endpoint, "cpu": pin}) as server:
        server.wait_ready(_START_TIMEOUT_S)
        with Worker(f"{side}-client", client_args) as client:
            record = client.result(_START_TIMEOUT_S + (requests + warmup) * 0.05)
    return LatencyRun(
        requests=int(record["requests"]),
        p50_us=float(record["p50_us"]),
        p99_us=float(record["p99_us"]),
        mean_us=float(record["mean_us"]),
        lost=int(record["lost"]),
    )
