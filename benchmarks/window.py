"""``python -m benchmarks.window``: what credit costs through a router, window by window, in one run.

Row 3 of ``python -m benchmarks`` (an edabus publisher process and a node of
1,000 keyed actors, through a router process) with the node granting each of
``--windows`` (0: no credit). Each repeat runs every window once, the order
rotated from one repeat to the next, so drift in the machine's load falls on
all of them alike. Prints each run (msg/s and the load average), then per
window the median, min and max, and the median against no credit (the first
window, when it is 0). The figures in docs/benchmarks.md, "The cost of credit",
come from this.
"""

from __future__ import annotations

import argparse
import os
import statistics

from benchmarks import _cross
from benchmarks._suite import IDLE_S


def main() -> None:
    """Run the series and print it."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.window", description=__doc__.splitlines()[0])
    p.add_argument("--windows", default="0,4000,16000", help="credit windows to compare (default 0,4000,16000)")
    p.add_argument("--repeats", type=int, default=5, help="runs per window (default 5)")
    p.add_argument("--messages", type=int, default=100_000, help="measured messages per run (default 100000)")
    p.add_argument("--warmup", type=int, default=2_000, help="messages before the clock (default 2000)")
    args = p.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    rates: dict[int, list[float]] = {w: [] for w in windows}
    with _cross.Router() as endpoint:
        for repeat in range(args.repeats):
            shift = repeat % len(windows)
            for window in windows[shift:] + windows[:shift]:
                run = _cross.throughput(
                    "edabus", endpoint, args.messages, warmup=args.warmup, idle_s=IDLE_S, window=window
                )
                if run.messages != run.expected:
                    print(f"window {window}: {run.expected - run.messages} messages missing")
                rate = run.messages / run.seconds
                rates[window].append(rate)
                print(f"window {window:>6}: {rate:>9,.0f} msg/s  load {os.getloadavg()[0]:.2f}", flush=True)
    base = statistics.median(rates[0]) if 0 in rates else None
    print("\nwindow | msg/s, median | min-max | vs none")
    for window, runs in rates.items():
        median = statistics.median(runs)
        versus = f"{median / base - 1:+.0%}" if base and window else ""
        print(f"{window or 'none'} | {median:,.0f} | {min(runs) / 1000:.0f}-{max(runs) / 1000:.0f}k | {versus}")


if __name__ == "__main__":
    main()
