"""``python -m benchmarks``: edabus next to raw zenoh-python, in one run.

Scenarios (``--only`` picks some):

- local-throughput: one process, embedded default. Raw: ``session.put`` (BLOCK) into
  one wildcard callback subscriber that decodes and counts per name. edabus:
  ``bus.publish`` to keyed actors over 1,000 keys, hosted on the same bus.
- router-throughput: a Python Zenoh router subprocess, a sink process and a
  publisher process. With the mixed variants (on unless ``--no-mixed``) a raw
  publisher also feeds an edabus node, and an edabus publisher a raw subscriber,
  which tells which end limits edabus.
- local-request / router-request: sequential round trips, raw ``session.get`` to
  a trivial queryable vs ``bus.request`` to a keyed actor. Via the router, the
  mixed variants pair a raw client with an edabus node and the other way round.

Each figure is the median over ``--repeats`` runs (raw and edabus interleaved);
the table shows edabus as a ratio to raw, and the lost count of every side.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio

from . import _cross, _inproc
from ._model import KEY_COUNT, quiet_logging
from ._report import ScenarioResult, environment, format_markdown, format_table, write_json
from ._stats import LatencyRun, ThroughputRun, summarize_latency, summarize_throughput

SCENARIOS = ("local-throughput", "router-throughput", "local-request", "router-request")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
_LOCAL_TIMEOUT_S = 120.0
_IDLE_S = 10.0

Run = ThroughputRun | LatencyRun


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="edabus next to raw zenoh-python, in one run; edabus figures as ratios to raw.",
    )
    p.add_argument("--quick", action="store_true", help="a short run (~30 s): fewer messages and repeats")
    p.add_argument("--repeats", type=int, help="runs per figure; the median is reported (default 5, quick 3)")
    p.add_argument("--messages", type=int, help="measured messages per throughput run (default 100000, quick 20000)")
    p.add_argument(
        "--warmup", type=int, default=2000, help=f"messages before the clock, at least {KEY_COUNT} (default 2000)"
    )
    p.add_argument("--requests", type=int, help="measured requests per latency run (default 2000, quick 500)")
    p.add_argument(
        "--request-warmup", type=int, default=KEY_COUNT, help=f"requests before timing (default {KEY_COUNT})"
    )
    p.add_argument("--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)")
    p.add_argument("--no-mixed", action="store_true", help="skip the mixed raw/edabus variants of the router scenarios")
    p.add_argument(
        "--pin-receivers",
        type=int,
        metavar="CPU",
        help="run the router scenarios' sink and server processes (raw and edabus) on this CPU only",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results (default %(default)s)")
    p.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    p.add_argument(
        "--profile",
        action="store_true",
        help="instead: profile one in-process edabus throughput run with cProfile and print the top functions",
    )
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(args.quick)
    settings = {
        "quick": quick,
        "repeats": args.repeats or (3 if quick else 5),
        "messages": args.messages or (20_000 if quick else 100_000),
        "warmup": max(args.warmup, KEY_COUNT),
        "requests": args.requests or (500 if quick else 2000),
        "request_warmup": args.request_warmup,
        "scenarios": list(args.only or SCENARIOS),
        "mixed": not args.no_mixed,
        "pin_receivers": args.pin_receivers,
    }
    if min(settings["repeats"], settings["messages"], settings["requests"]) < 1:
        msg = "--repeats, --messages and --requests must be positive"
        raise SystemExit(msg)
    return settings


def _progress(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _describe(run: Run) -> str:
    if isinstance(run, ThroughputRun):
        return f"{run.rate:,.0f} msg/s, lost {run.lost}" + (f", misrouted {run.misrouted}" if run.misrouted else "")
    return f"p50 {run.p50_us:,.0f} µs, p99 {run.p99_us:,.0f} µs, lost {run.lost}"


def _measure(name: str, title: str, variants: dict[str, Callable[[], Run]], repeats: int) -> ScenarioResult:
    """Run every variant ``repeats`` times, interleaved so that drift hits all alike."""
    runs: dict[str, list[Run]] = {variant: [] for variant in variants}
    for rep in range(1, repeats + 1):
        for variant, fn in variants.items():
            run = fn()
            runs[variant].append(run)
            _progress(f"[{name}] {rep}/{repeats} {variant}: {_describe(run)}")
    kind: Any = "throughput" if isinstance(runs["raw"][0], ThroughputRun) else "latency"
    result = ScenarioResult(name=name, title=title, kind=kind)
    for variant, done in runs.items():
        if kind == "throughput":
            result.summaries[variant] = summarize_throughput([r for r in done if isinstance(r, ThroughputRun)])
        else:
            result.summaries[variant] = summarize_latency([r for r in done if isinstance(r, LatencyRun)])
        result.runs[variant] = [asdict(r) | ({"rate": r.rate} if isinstance(r, ThroughputRun) else {}) for r in done]
    return result


def _run(settings: dict[str, Any]) -> list[ScenarioResult]:
    repeats, messages, warmup = settings["repeats"], settings["messages"], settings["warmup"]
    requests, request_warmup = settings["requests"], settings["request_warmup"]
    chosen, pin = settings["scenarios"], settings["pin_receivers"]
    results = []
    with contextlib.ExitStack() as stack:
        endpoint = ""
        if any(name.startswith("router") for name in chosen):
            endpoint = stack.enter_context(_cross.Router())
            _progress(f"router on {endpoint}")
        if "local-throughput" in chosen:
            results.append(
                _measure(
                    "local-throughput",
                    "a. throughput, one process",
                    {
                        "raw": lambda: _inproc.raw_throughput(messages, warmup=warmup, timeout=_LOCAL_TIMEOUT_S),
                        "edabus": lambda: anyio.run(
                            lambda: _inproc.edabus_throughput(messages, warmup=warmup, timeout=_LOCAL_TIMEOUT_S)
                        ),
                    },
                    repeats,
                )
            )
        if "router-throughput" in chosen:
            variants: dict[str, Callable[[], Run]] = {
                "raw": lambda: _cross.throughput("raw", endpoint, messages, warmup=warmup, idle_s=_IDLE_S, pin=pin),
                "edabus": lambda: _cross.throughput(
                    "edabus", endpoint, messages, warmup=warmup, idle_s=_IDLE_S, pin=pin
                ),
            }
            if settings["mixed"]:
                variants["raw pub -> edabus node"] = lambda: _cross.throughput(
                    "raw", endpoint, messages, warmup=warmup, idle_s=_IDLE_S, sink_side="edabus", pin=pin
                )
                variants["edabus pub -> raw sub"] = lambda: _cross.throughput(
                    "edabus", endpoint, messages, warmup=warmup, idle_s=_IDLE_S, sink_side="raw", pin=pin
                )
            results.append(_measure("router-throughput", "b. throughput, via router", variants, repeats))
        if "local-request" in chosen:
            results.append(
                _measure(
                    "local-request",
                    "c. request, one process",
                    {
                        "raw": lambda: _inproc.raw_request_latency(requests, warmup=request_warmup),
                        "edabus": lambda: anyio.run(
                            lambda: _inproc.edabus_request_latency(requests, warmup=request_warmup)
                        ),
                    },
                    repeats,
                )
            )
        if "router-request" in chosen:
            variants = {
                "raw": lambda: _cross.request_latency("raw", endpoint, requests, warmup=request_warmup, pin=pin),
                "edabus": lambda: _cross.request_latency("edabus", endpoint, requests, warmup=request_warmup, pin=pin),
            }
            if settings["mixed"]:
                variants["raw client -> edabus node"] = lambda: _cross.request_latency(
                    "raw", endpoint, requests, warmup=request_warmup, server_side="edabus", pin=pin
                )
                variants["edabus client -> raw queryable"] = lambda: _cross.request_latency(
                    "edabus", endpoint, requests, warmup=request_warmup, server_side="raw", pin=pin
                )
            results.append(_measure("router-request", "c. request, via router", variants, repeats))
    return results


def _profile(settings: dict[str, Any]) -> None:
    """Profile one in-process edabus throughput run (after an unprofiled one) and print the top."""
    messages, warmup = settings["messages"], settings["warmup"]
    anyio.run(lambda: _inproc.edabus_throughput(messages, warmup=warmup, timeout=_LOCAL_TIMEOUT_S))
    profiler = cProfile.Profile()
    run = profiler.runcall(
        anyio.run, lambda: _inproc.edabus_throughput(messages, warmup=warmup, timeout=_LOCAL_TIMEOUT_S)
    )
    print(f"profiled run (cProfile slows it): {_describe(run)}")
    out = DEFAULT_JSON.parent / "profile.pstats"
    out.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(out)
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)
    print(f"pstats written to {out}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the table and write the JSON."""
    args = _parser().parse_args(argv)
    settings = _settings(args)
    quiet_logging()
    if args.profile:
        _profile(settings)
        return 0
    env = environment()
    _progress(
        f"{env['cpus']} CPUs ({env['cpu_model']}), Python {env['python']}, eclipse-zenoh {env['eclipse-zenoh']}, "
        f"msgspec {env['msgspec']}, anyio {env['anyio']}, edabus at {env['commit']}; "
        f"load average {env['loadavg'][0]:.2f}; {settings['repeats']} repeats"
    )
    started = time.perf_counter()
    results = _run(settings)
    elapsed = time.perf_counter() - started
    print()
    print(
        f"edabus vs raw zenoh-python: median of {settings['repeats']} runs; throughput {settings['messages']:,} "
        f"messages after {settings['warmup']:,} warm-up; latency {settings['requests']:,} sequential requests "
        f"after {settings['request_warmup']:,}"
    )
    print(format_table(results))
    if args.markdown:
        print()
        print(format_markdown(results))
    write_json(args.json, results, settings, elapsed, env)
    lost = sum(int(s["lost"]) + int(s.get("misrouted", 0)) for r in results for s in r.summaries.values())
    print(f"\nlost in total: {lost}; took {elapsed:.0f} s; load average {os.getloadavg()[0]:.2f}")
    print(f"JSON written to {args.json}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
