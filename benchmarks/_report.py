"""The results table (edabus as a ratio to raw zenoh-python) and the JSON record."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

__all__ = ["ScenarioResult", "environment", "format_table", "write_json"]

Kind = Literal["throughput", "latency"]


@dataclass(slots=True)
class ScenarioResult:
    """One scenario: a summary and the raw runs per variant; ``raw`` is the baseline."""

    name: str
    title: str
    kind: Kind
    summaries: dict[str, dict[str, float]] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _cpu_model() -> str:
    try:
        with Path("/proc/cpuinfo").open() as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _commit() -> str:
    """The checkout's commit, with ``+dirty`` when edabus/ has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        head = subprocess.run(  # noqa: S603 - fixed arguments
            [git, "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            [git, "status", "--porcelain", "--", "edabus"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "eclipse-zenoh": _version("eclipse-zenoh"),
        "msgspec": _version("msgspec"),
        "anyio": _version("anyio"),
        "edabus": _version("edabus"),
        "commit": _commit(),
        # Other work on the machine skews every figure: note the load around the run.
        "loadavg": list(os.getloadavg()),
    }


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f}"


def _rows(result: ScenarioResult) -> list[tuple[str, str, str, str, str, str]]:
    base = result.summaries.get("raw")
    rows = []
    throughput = [("rate", "msg/s")]
    metrics = throughput if result.kind == "throughput" else [("p50_us", "p50 µs"), ("p99_us", "p99 µs")]
    for metric, unit in metrics:
        for variant, summary in result.summaries.items():
            if variant == "raw":
                continue
            raw_value = base[metric] if base else math.nan
            value = summary[metric]
            ratio = value / raw_value if raw_value and not math.isnan(raw_value) else math.nan
            lost = f"{int(base['lost']) if base else '-'} / {int(summary['lost'])}"
            if result.kind == "throughput":
                lost += f"{' (misrouted!)' if summary.get('misrouted') or (base and base.get('misrouted')) else ''}"
            title = result.title if variant == "edabus" else f"{result.title}, {variant}"
            rows.append((title, unit, _fmt(raw_value), _fmt(value), f"{ratio:.2f}", lost))
    return rows


def format_table(results: list[ScenarioResult]) -> str:
    """A plain-text table: raw, edabus, edabus ÷ raw and the lost counts."""
    header = ("scenario", "unit", "raw zenoh", "edabus", "edabus/raw", "lost raw / edabus")
    rows = [header] + [row for result in results for row in _rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {2, 3, 4}
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(results: list[ScenarioResult]) -> str:
    """The same table in Markdown, for docs/benchmarks.md."""
    header = ("scenario", "unit", "raw zenoh", "edabus", "edabus/raw", "lost raw / edabus")
    rows = [header] + [row for result in results for row in _rows(result)]
    lines = ["| " + " | ".join(rows[0]) + " |", "|---|---|--:|--:|--:|--:|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_json(
    path: Path, results: list[ScenarioResult], settings: dict[str, Any], elapsed_s: float, env: dict[str, Any]
) -> None:
    """Write every run and summary, the settings and the environment to ``path``."""
    record = {
        "command": " ".join(["python", "-m", "benchmarks", *sys.argv[1:]]),
        "settings": settings,
        "environment": env | {"loadavg_after": list(os.getloadavg())},
        "elapsed_s": elapsed_s,
        "scenarios": {
            r.name: {"title": r.title, "kind": r.kind, "summary": r.summaries, "runs": r.runs} for r in results
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(record), indent=2) + "\n")
