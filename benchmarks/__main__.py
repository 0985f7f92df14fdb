"""``python -m benchmarks``: the rows of issue 7, edabus next to raw zenoh-python (and Pykka), in one run.

Rows (``--only`` picks scenarios by name):

1. tell-one: ``bus.publish`` to one actor (a singleton on a fixed key), one
   process; raw: ``put`` into one callback subscriber on that key that decodes
   and counts; Pykka: ``tell`` to one actor.
2. local-throughput: the same over 1,000 keyed actors; raw: one wildcard
   subscriber that decodes and counts per name (a dict); Pykka: 1,000 actors.
3. router-throughput: a publisher process and a receiving process, through a
   Python Zenoh router; mixed variants (raw pub -> edabus node, edabus pub ->
   raw sub) unless ``--no-mixed``.
4. local-request: sequential ``bus.request`` to the keyed actors, one process;
   raw: ``session.get`` to a trivial queryable; Pykka: ``ask``.
5. router-request: the same across processes through the router (mixed variants too).
6. activation: ``--actors`` messages each to a new key, against as many to
   the 1,000 live keys, one process, one run.
7. memory: resident memory per idle keyed actor (``--actors`` of them) in a
   fresh process; raw: a dict of as many trivial objects.
8. cluster: three node processes and a publisher through the router; per node,
   messages received over messages handled, the worst node's.

Each figure is the median over ``--repeats`` runs (variants interleaved); each
run warms up first and checks that nothing was lost (the exit status is 1 if
anything was). The table gives each row's reference, edabus and Pykka figures,
the ratio, the target and whether it is met; the JSON holds every run.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from . import _inproc
from ._model import KEY_COUNT, MAX_IDLE_ACTORS, quiet_logging
from ._report import environment, format_markdown, format_table, write_json
from ._rows import LEGEND, ROWS, rows_of
from ._suite import PYKKA, SCENARIOS, describe, progress, run_scenarios

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
_LOCAL_TIMEOUT_S = 120.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="edabus next to raw zenoh-python (and Pykka), in one run: the rows of issue 7, "
        "each with its ratio and target.",
        epilog="Pykka's columns need pykka: pip install -e '.[bench]' (without it they say '-').",
    )
    p.add_argument("--quick", action="store_true", help="a short run (under a minute): fewer messages and repeats")
    p.add_argument("--repeats", type=int, help="runs per figure; the median is reported (default 5, quick 3)")
    p.add_argument(
        "--messages",
        type=int,
        help="measured messages per throughput run and cluster round (default 100000, quick 20000)",
    )
    p.add_argument(
        "--warmup", type=int, default=2000, help=f"messages before the clock, at least {KEY_COUNT} (default 2000)"
    )
    p.add_argument("--requests", type=int, help="measured requests per latency run (default 2000, quick 500)")
    p.add_argument("--actors", type=int, help="new keys activated in rows 6 and 7 (default 100000, quick 20000)")
    p.add_argument(
        "--request-warmup", type=int, default=KEY_COUNT, help=f"requests before timing (default {KEY_COUNT})"
    )
    p.add_argument("--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)")
    p.add_argument("--no-mixed", action="store_true", help="skip the mixed raw/edabus variants of rows 3 and 5")
    p.add_argument(
        "--pin-receivers",
        type=int,
        metavar="CPU",
        help="run rows 3 and 5's sink and server processes (raw and edabus) on this CPU only",
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
        "actors": args.actors or (20_000 if quick else 100_000),
        "request_warmup": args.request_warmup,
        "scenarios": list(args.only or SCENARIOS),
        "mixed": not args.no_mixed,
        "pin_receivers": args.pin_receivers,
        "pykka": PYKKA,
    }
    if min(settings["repeats"], settings["messages"], settings["requests"]) < 1:
        msg = "--repeats, --messages and --requests must be positive"
        raise SystemExit(msg)
    if not 1 <= settings["actors"] <= MAX_IDLE_ACTORS - KEY_COUNT - 10_000:
        msg = f"--actors must be between 1 and {MAX_IDLE_ACTORS - KEY_COUNT - 10_000}"
        raise SystemExit(msg)
    return settings


def _profile(settings: dict[str, Any]) -> None:
    """Profile one in-process edabus throughput run (after an unprofiled one) and print the top."""
    messages, warmup = settings["messages"], settings["warmup"]
    anyio.run(lambda: _inproc.edabus_throughput(messages, warmup=warmup, timeout=_LOCAL_TIMEOUT_S))
    profiler = cProfile.Profile()
    run = profiler.runcall(
        anyio.run, lambda: _inproc.edabus_throughput(messages, warmup=warmup, timeout=_LOCAL_TIMEOUT_S)
    )
    print(f"profiled run (cProfile slows it): {describe(run)}")
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
    progress(
        f"{env['cpus']} CPUs ({env['cpu_model']}), Python {env['python']}, eclipse-zenoh {env['eclipse-zenoh']}, "
        f"msgspec {env['msgspec']}, anyio {env['anyio']}, pykka {env['pykka']}, edabus at {env['commit']}; "
        f"load average {env['loadavg'][0]:.2f}; {settings['repeats']} repeats"
    )
    started = time.perf_counter()
    results = run_scenarios(settings)
    elapsed = time.perf_counter() - started
    rows = rows_of(ROWS, {r.name: r.summaries for r in results})
    print()
    print(
        f"edabus vs raw zenoh-python and Pykka {env['pykka'] if PYKKA else '(not installed)'}: median of "
        f"{settings['repeats']} runs; tell {settings['messages']:,} messages after {settings['warmup']:,} warm-up; "
        f"{settings['requests']:,} sequential requests after {settings['request_warmup']:,}; "
        f"{settings['actors']:,} new keys (rows 6, 7)"
    )
    print(format_table(rows))
    print("\n".join(LEGEND))
    if args.markdown:
        print()
        print(format_markdown(rows))
    write_json(args.json, results, rows, settings=settings, elapsed_s=elapsed, env=env)
    lost = sum(int(s["lost"]) + int(s.get("misrouted", 0)) for r in results for s in r.summaries.values())
    targets = [row.met for row in rows if row.met is not None]
    print(
        f"\ntargets met: {sum(targets)} of {len(targets)}; lost in total: {lost}; took {elapsed:.0f} s; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"JSON written to {args.json}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
