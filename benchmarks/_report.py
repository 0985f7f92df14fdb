"""The results table (the rows of `_rows`, edabus next to its reference and Pykka) and the JSON record."""

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
from typing import Any

from ._rows import Row

__all__ = ["ScenarioResult", "environment", "format_markdown", "format_table", "write_json"]


@dataclass(slots=True)
class ScenarioResult:
    """One scenario: a summary and the runs per variant (``raw``, ``edabus``, ``pykka``...)."""

    name: str
    title: str
    kind: str  # throughput, latency, memory or cluster
    seconds: float = 0.0  # how long the scenario took, every repeat
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
        "pykka": _version("pykka"),
        "edabus": _version("edabus"),
        "commit": _commit(),
        # Other work on the machine skews every figure: note the load around the run.
        "loadavg": list(os.getloadavg()),
    }


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:,.{digits}f}"


_HEADER = ("row", "unit", "ref", "edabus", "pykka", "ratio", "target", "met", "lost")


def _cells(row: Row) -> tuple[str, ...]:
    met = "-" if row.met is None else ("yes" if row.met else "no")
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
    return (
        row.label,
        row.unit,
        _fmt(row.reference, row.digits),
        _fmt(row.edabus, row.digits),
        _fmt(row.pykka, row.digits),
        ratio,
        row.target.text() if row.target is not None else "-",
        met,
        row.lost,
    )


def format_table(rows: list[Row]) -> str:
    """A plain-text table: reference, edabus and pykka figures, the ratio, the target and whether it is met."""
    lines_in = [_HEADER, *(_cells(row) for row in rows)]
    widths = [max(len(cells[i]) for cells in lines_in) for i in range(len(_HEADER))]
    right = {2, 3, 4, 5, 6}
    lines = []
    for n, cells in enumerate(lines_in):
        padded = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(cells)]
        lines.append("  ".join(padded).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows: list[Row]) -> str:
    """The same table in Markdown, for docs/benchmarks.md."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|---|---|--:|--:|--:|--:|--:|---|---|"]
    lines += ["| " + " | ".join(cell.strip() for cell in _cells(row)) + " |" for row in rows]
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
    path: Path,
    results: list[ScenarioResult],
    rows: list[Row],
    *,
    settings: dict[str, Any],
    elapsed_s: float,
    env: dict[str, Any],
) -> None:
    """Write the rows, every run and summary, the settings and the environment to ``path``."""
    record = {
        "command": " ".join(["python", "-m", "benchmarks", *sys.argv[1:]]),
        "settings": settings,
        "environment": env | {"loadavg_after": list(os.getloadavg())},
        "elapsed_s": elapsed_s,
        "rows": [row.record() for row in rows],
        "scenarios": {
            r.name: {"title": r.title, "kind": r.kind, "seconds": r.seconds, "summary": r.summaries, "runs": r.runs}
            for r in results
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(record), indent=2) + "\n")
