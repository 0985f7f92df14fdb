"""``python -m benchmarks.flood``: floods to slow actors through a router, nothing lost and nothing silent.

Each row starts a node process (``edabus run benchmarks._flood:app``) on a router
process, then one publisher process that sends ``count`` messages as fast as it
can to one key or spread over 100, either with edabus (``bus.publish``, held back
by credit) or with zenoh-python alone (a msgpack map, congestion control BLOCK,
no credit). The actors' handler either spends 0.2 ms of CPU per message, or
awaits 1 ms or 10 ms (as a database write or an HTTP call would: keys then run
side by side). The node keeps its defaults (inbox 10,000, overflow limit 150,000,
window 16,000, mailboxes of 1,000), except where ``--inbox`` says otherwise.

Columns: sent; handled; overflow (refused by a full inbox: counted, logged,
dead-lettered); lost (sent and neither handled nor counted: must be 0); the
publisher's time, the node's (from the publisher's start to the last message
handled) and the actors' own work (handled x work / keys at once); the node's
peak RSS; the load average before the row. A row is done when handled + overflow reaches sent, or
when nothing moved for 5 s. The exit status is 1 if anything was lost silently,
or if an edabus publisher met any overflow. Each row runs ``--repeats`` times;
the table shows the median and (min-max) of the publisher's time, and the worst
of the counts. About two minutes on a 2-CPU machine; ``--quick`` a fifth of the
messages.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

import edabus
from benchmarks._flood import WORK
from benchmarks._procs import ROOT, free_port
from edabus._cluster._status import gather_status

SETTLE_S = 5.0  # a row is over when nothing moved this long


@dataclass(frozen=True)
class Row:
    work: str  # a key of WORK
    keys: int
    raw: bool
    count: int

    @property
    def name(self) -> str:
        publisher = "raw BLOCK" if self.raw else "edabus"
        return f"{WORK[self.work][2]}, {self.keys} key{'s' if self.keys > 1 else ''}, {publisher}"

    def actors_work_s(self, handled: int) -> float:
        kind, seconds, _ = WORK[self.work]
        parallel = 1 if kind == "cpu" else self.keys  # awaiting handlers of different keys overlap
        return handled * seconds / parallel


@dataclass
class Outcome:
    sent: int
    handled: int
    overflow: int
    dead_letters: int
    publisher_s: float
    node_s: float
    peak_rss_mib: float
    loadavg: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.sent - self.handled - self.overflow


def rows(quick: bool) -> list[Row]:
    scale = 5 if quick else 1
    plan = [("cpu-0.2ms", 1, 20_000), ("cpu-0.2ms", 100, 20_000), ("sleep-1ms", 1, 5_000)]
    plan += [("sleep-1ms", 100, 50_000), ("sleep-10ms", 1, 600), ("sleep-10ms", 100, 20_000)]
    return [Row(work, keys, raw, max(count // scale, 100)) for work, keys, count in plan for raw in (False, True)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


async def _stats(bus: edabus.Bus) -> edabus.SupervisorStatistics | None:
    status = await gather_status(bus, timeout=1.0)
    groups = [g for node in status.nodes for g in node.groups if g.app == "flood"]
    return groups[0] if groups else None


async def run_row(row: Row, router: str, inbox: int | None) -> Outcome:
    env = _env() | {"EDABUS_FLOOD_WORK": row.work}
    node_args = [sys.executable, "-m", "edabus", "run", "benchmarks._flood:app", "--connect", router]
    if inbox is not None:
        env["EDABUS_FLOOD_INBOX"] = str(inbox)
    node = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter; started once per row, not awaited
        node_args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        async with edabus.connect(router) as bus:
            await bus.wait_for_group("flood", timeout=20)
            loadavg = os.getloadavg()[0]
            publisher = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter and module
                [sys.executable, "-m", "benchmarks._flood", router, str(row.count), str(row.keys), str(int(row.raw))],
                cwd=ROOT,
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            started = time.perf_counter()
            last, moved_at = (-1, -1), time.perf_counter()
            stats = None
            while True:
                await anyio.sleep(0.2)  # a benchmark's poll of another process's counters
                stats = await _stats(bus)
                now = (stats.handled, stats.overflow) if stats else (0, 0)
                if now != last:
                    last, moved_at = now, time.perf_counter()
                if publisher.poll() is not None and (
                    sum(now) >= row.count or time.perf_counter() - moved_at > SETTLE_S
                ):
                    break
            node_s = moved_at - started
            out, err = publisher.communicate(timeout=30)
            if publisher.returncode != 0:
                raise RuntimeError(f"publisher failed: {err.decode()[-2000:]}")
            published = json.loads(out.decode().strip().splitlines()[-1])
        assert stats is not None
        return Outcome(
            sent=row.count,
            handled=stats.handled,
            overflow=stats.overflow,
            dead_letters=stats.dead_letters,
            publisher_s=published["elapsed"],
            node_s=node_s,
            peak_rss_mib=_peak_rss_mib(node.pid),
            loadavg=loadavg,
        )
    finally:
        node.terminate()
        try:
            node.wait(15)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()


def _span(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(results: dict[Row, list[Outcome]]) -> str:
    head = (
        "| flood | sent | handled | overflow | lost | publisher s, median (min-max) "
        "| node s, median | actors' work s | peak RSS MiB | load |"
    )
    lines = [head, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for row, outcomes in results.items():
        worst = min(outcomes, key=lambda o: o.handled)
        lines.append(
            f"| {row.name} | {row.count:,} | {worst.handled:,} | {max(o.overflow for o in outcomes):,} | "
            f"{max(o.lost for o in outcomes):,} | {_span([o.publisher_s for o in outcomes])} | "
            f"{statistics.median(o.node_s for o in outcomes):.2f} | "
            f"{row.actors_work_s(worst.handled):.2f} | {max(o.peak_rss_mib for o in outcomes):.0f} | "
            f"{max(o.loadavg for o in outcomes):.2f} |"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    port = free_port()
    router = f"tcp/127.0.0.1:{port}"
    proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter and module
        [sys.executable, "-m", "edabus", "router", "--listen", router],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[Row, list[Outcome]] = {}
    try:
        await anyio.sleep(1.0)  # the router's port: a benchmark may wait plainly for a process to listen
        selected = [r for r in rows(args.quick) if not args.only or any(o in r.name for o in args.only)]
        for _ in range(args.repeats):
            for row in selected:
                outcome = await run_row(row, router, args.inbox)
                results.setdefault(row, []).append(outcome)
                print(f"{row.name}: {outcome}", file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        proc.wait(15)
    print(f"{os.cpu_count()} CPUs; load average before each row in the last column\n")
    print(report(results))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    document = {row.name: [dataclasses.asdict(o) for o in outs] for row, outs in results.items()}
    (out / "flood.json").write_text(json.dumps(document, indent=2))
    silent = any(o.lost for outs in results.values() for o in outs)
    refused = any(o.overflow for row, outs in results.items() if not row.raw for o in outs)
    return 1 if silent or refused else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a fifth of the messages")
    parser.add_argument("--only", action="append", help="rows whose name contains this (repeatable)")
    parser.add_argument("--inbox", type=int, help="the node's inbox_size (default: edabus's)")
    sys.exit(anyio.run(main, parser.parse_args()))
