"""Every scenario of one ``python -m benchmarks`` run, in row order, each repeated and summarized.

A scenario is a list of steps; each step makes one run per variant (``raw``,
``edabus``, ``pykka``...). Every step runs once per repeat, the steps of a
repeat one after another, so drift in the machine's load hits every variant
alike. The cluster scenario repeats its rounds inside one cluster instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from . import _activation, _cluster, _cross, _inproc, _memory
from ._model import NAMES
from ._report import ScenarioResult
from ._stats import ClusterRun, LatencyRun, MemoryRun, Run, ThroughputRun, run_record, summarize

__all__ = ["PYKKA", "SCENARIOS", "run_scenarios"]

SCENARIOS = (
    "tell-one",
    "local-throughput",
    "router-throughput",
    "local-request",
    "router-request",
    "activation",
    "memory",
    "cluster",
)
ROUTED = ("router-throughput", "router-request", "cluster")
PYKKA = importlib.util.find_spec("pykka") is not None
LOCAL_TIMEOUT_S = 120.0
IDLE_S = 10.0

Step = Callable[[], Mapping[str, Run]]


def progress(text: str) -> None:
    """A line on stderr, so that a long run shows it is alive."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def describe(run: Run) -> str:
    """One run in a few words."""
    if isinstance(run, ThroughputRun):
        return f"{run.rate:,.0f} msg/s, lost {run.lost}" + (f", misrouted {run.misrouted}" if run.misrouted else "")
    if isinstance(run, LatencyRun):
        return f"p50 {run.p50_us:,.0f} µs, p99 {run.p99_us:,.0f} µs, lost {run.lost}"
    if isinstance(run, MemoryRun):
        return f"{run.per_item:,.0f} B per item ({run.count:,}), lost {run.lost}"
    ratios = ", ".join(f"{node} {run.ratio(node):.2f}" for node in sorted(run.handled))
    return f"received/handled {ratios}; lost {run.lost}, handled twice {run.misrouted}"


def _one(variant: str, fn: Callable[[], Run]) -> Step:
    return lambda: {variant: fn()}


def _result(name: str, title: str, runs: dict[str, list[Run]]) -> ScenarioResult:
    first = next(iter(runs.values()))[0]
    kind = {ThroughputRun: "throughput", LatencyRun: "latency", MemoryRun: "memory", ClusterRun: "cluster"}
    result = ScenarioResult(name=name, title=title, kind=kind[type(first)])
    for variant, done in runs.items():
        result.summaries[variant] = summarize(done)
        result.runs[variant] = [run_record(r) for r in done]
    return result


def measure(name: str, title: str, steps: list[Step], repeats: int) -> ScenarioResult:
    """Run every step ``repeats`` times, interleaved; the summaries per variant.

    Each repeat starts one step later than the one before (a rotation), so that no
    variant always runs in the same place in the order, which could favour one.
    """
    runs: dict[str, list[Run]] = {}
    for rep in range(1, repeats + 1):
        shift = (rep - 1) % len(steps)
        for step in steps[shift:] + steps[:shift]:
            for variant, run in step().items():
                runs.setdefault(variant, []).append(run)
                progress(f"[{name}] {rep}/{repeats} {variant}: {describe(run)}")
    return _result(name, title, runs)


def _local(settings: dict[str, Any], chosen: list[str]) -> dict[str, tuple[str, list[Step]]]:
    """The one-process scenarios that were chosen: name -> (title, steps)."""
    messages, warmup = settings["messages"], settings["warmup"]
    requests, request_warmup = settings["requests"], settings["request_warmup"]
    timeout = LOCAL_TIMEOUT_S
    scenarios: dict[str, tuple[str, list[Step]]] = {}
    if "tell-one" in chosen:
        scenarios["tell-one"] = (
            "tell, 1 actor (a singleton on a fixed key), one process",
            [
                _one("raw", lambda: _inproc.raw_throughput(messages, warmup=warmup, timeout=timeout, solo=True)),
                _one(
                    "edabus",
                    lambda: anyio.run(
                        lambda: _inproc.edabus_throughput(messages, warmup=warmup, timeout=timeout, solo=True)
                    ),
                ),
            ],
        )
    if "local-throughput" in chosen:
        scenarios["local-throughput"] = (
            "tell, 1,000 keyed actors, one process",
            [
                _one("raw", lambda: _inproc.raw_throughput(messages, warmup=warmup, timeout=timeout)),
                _one(
                    "edabus",
                    lambda: anyio.run(lambda: _inproc.edabus_throughput(messages, warmup=warmup, timeout=timeout)),
                ),
            ],
        )
    if "local-request" in chosen:
        scenarios["local-request"] = (
            "request, one process",
            [
                _one("raw", lambda: _inproc.raw_request_latency(requests, warmup=request_warmup)),
                _one(
                    "edabus",
                    lambda: anyio.run(lambda: _inproc.edabus_request_latency(requests, warmup=request_warmup)),
                ),
            ],
        )
    if PYKKA:
        from . import _pykka  # noqa: PLC0415 - optional: only where pykka is installed

        pykka_steps = {
            "tell-one": _one("pykka", lambda: _pykka.tell_throughput(1, messages, warmup=warmup, timeout=timeout)),
            "local-throughput": _one(
                "pykka", lambda: _pykka.tell_throughput(len(NAMES), messages, warmup=warmup, timeout=timeout)
            ),
            "local-request": _one("pykka", lambda: _pykka.ask_latency(len(NAMES), requests, warmup=request_warmup)),
        }
        for name, (_, steps) in scenarios.items():
            steps.append(pykka_steps[name])
    return scenarios


def _routed(settings: dict[str, Any], chosen: list[str], endpoint: str) -> dict[str, tuple[str, list[Step]]]:
    """The scenarios across processes that were chosen (the cluster aside): name -> (title, steps)."""
    messages, warmup, pin = settings["messages"], settings["warmup"], settings["pin_receivers"]
    requests, request_warmup = settings["requests"], settings["request_warmup"]
    scenarios: dict[str, tuple[str, list[Step]]] = {}
    if "router-throughput" in chosen:

        def tell(side: _cross.Side, sink: _cross.Side | None = None, window: int | None = None) -> Run:
            return _cross.throughput(
                side, endpoint, messages, warmup=warmup, idle_s=IDLE_S, sink_side=sink, pin=pin, window=window
            )

        steps = [_one("raw", lambda: tell("raw")), _one("edabus", lambda: tell("edabus"))]
        # The same without credit (the node grants none): what flow control costs, in this run.
        steps.append(_one("edabus, no credit", lambda: tell("edabus", window=0)))
        if settings["mixed"]:
            steps.append(_one("raw pub -> edabus node", lambda: tell("raw", "edabus")))
            steps.append(_one("edabus pub -> raw sub", lambda: tell("edabus", "raw")))
        scenarios["router-throughput"] = ("tell, 1,000 keyed actors, 2 processes via router", steps)
    if "router-request" in chosen:

        def ask(side: _cross.Side, server: _cross.Side | None = None) -> Run:
            return _cross.request_latency(side, endpoint, requests, warmup=request_warmup, server_side=server, pin=pin)

        steps = [_one("raw", lambda: ask("raw")), _one("edabus", lambda: ask("edabus"))]
        if settings["mixed"]:
            steps.append(_one("raw client -> edabus node", lambda: ask("raw", "edabus")))
            steps.append(_one("edabus client -> raw queryable", lambda: ask("edabus", "raw")))
        scenarios["router-request"] = ("request, 2 processes via router", steps)
    return scenarios


def _actors(settings: dict[str, Any], chosen: list[str]) -> dict[str, tuple[str, list[Step]]]:
    """Activation and memory: name -> (title, steps)."""
    keys, warmup = settings["actors"], settings["warmup"]
    scenarios: dict[str, tuple[str, list[Step]]] = {}
    if "activation" in chosen:
        scenarios["activation"] = (
            f"activation: {keys:,} messages to new keys vs to 1,000 live keys",
            [lambda: anyio.run(lambda: _activation.activation(keys, warmup=warmup, timeout=LOCAL_TIMEOUT_S))],
        )
    if "memory" in chosen:
        scenarios["memory"] = (
            f"memory: {keys:,} idle keyed actors vs a dict of {keys:,} objects, fresh processes",
            [
                _one("edabus", lambda: _memory.per_item("edabus", keys, timeout=LOCAL_TIMEOUT_S)),
                _one("raw", lambda: _memory.per_item("raw", keys, timeout=LOCAL_TIMEOUT_S)),
            ],
        )
    return scenarios


def run_scenarios(settings: dict[str, Any]) -> list[ScenarioResult]:
    """Run the chosen scenarios in row order; a summary per scenario."""
    chosen, repeats = settings["scenarios"], settings["repeats"]
    results = []
    with contextlib.ExitStack() as stack:
        endpoint = ""
        if any(name in ROUTED for name in chosen):
            endpoint = stack.enter_context(_cross.Router())
            progress(f"router on {endpoint}")
        scenarios = _local(settings, chosen) | _routed(settings, chosen, endpoint) | _actors(settings, chosen)
        for name in SCENARIOS:
            started = time.perf_counter()
            if name in scenarios:
                title, steps = scenarios[name]
                results.append(measure(name, title, steps, repeats))
            elif name == "cluster" and name in chosen:
                rounds = _cluster.cluster_rounds(
                    endpoint,
                    settings["messages"],
                    warmup=settings["warmup"],
                    rounds=repeats,
                    idle_s=IDLE_S,
                )
                for n, run in enumerate(rounds, 1):
                    progress(f"[cluster] {n}/{repeats} edabus: {describe(run)}")
                results.append(
                    _result(name, "cluster of 3 nodes via router: received/handled per node", {"edabus": [*rounds]})
                )
            else:
                continue
            results[-1].seconds = time.perf_counter() - started
            progress(f"[{name}] took {results[-1].seconds:.1f} s")
    return results
