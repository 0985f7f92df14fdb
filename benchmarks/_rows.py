"""The rows of issue 7: what each compares, its target, and whether a run met it.

A row reads one metric of one scenario's summaries: a reference variant (raw
zenoh-python, or what the row names instead), the edabus variant, and Pykka's
where Pykka does the same work. A target is judged on edabus ÷ reference (``x``)
or on the edabus figure itself (a unit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ._activation import EXISTING, NEW

__all__ = ["LEGEND", "ROWS", "Row", "RowSpec", "Target", "evaluate", "rows_of"]


@dataclass(frozen=True, slots=True)
class Target:
    """``figure op value``, where the figure is the ratio to the reference or the edabus figure (in ``unit``)."""

    op: Literal[">=", "<="]
    value: float
    on: Literal["ratio", "edabus"]
    unit: str = ""

    def text(self) -> str:
        """How the table states it: ``>= 0.6x`` or ``<= 60 µs``."""
        if self.on == "ratio":
            return f"{self.op} {self.value:g}x"
        return f"{self.op} {self.value:,g} {self.unit}".rstrip()

    def met(self, figure: float) -> bool:
        """Whether ``figure`` meets the target (never, if it is not a number)."""
        if math.isnan(figure):
            return False
        return figure >= self.value if self.op == ">=" else figure <= self.value


@dataclass(frozen=True, slots=True)
class RowSpec:
    """One printed row: ``metric`` of ``scenario``, for the named variants."""

    label: str
    scenario: str
    metric: str
    unit: str
    subject: str = "edabus"
    reference: str | None = "raw"
    pykka: str | None = None
    target: Target | None = None
    digits: int = 0


@dataclass(frozen=True, slots=True)
class Row:
    """A row with its figures filled in (None: not measured in this run)."""

    label: str
    unit: str
    reference: float | None
    edabus: float | None
    pykka: float | None
    ratio: float | None
    target: Target | None
    met: bool | None
    lost: str
    digits: int

    def record(self) -> dict[str, Any]:
        """The row for the JSON file."""
        return {
            "row": self.label,
            "unit": self.unit,
            "reference": self.reference,
            "edabus": self.edabus,
            "pykka": self.pykka,
            "ratio": self.ratio,
            "target": self.target.text() if self.target is not None else None,
            "target_spec": asdict(self.target) if self.target is not None else None,
            "met": self.met,
            "lost": self.lost,
        }


_ROUTER_MIXED = ("raw pub -> edabus node", "edabus pub -> raw sub")
_REQUEST_MIXED = ("raw client -> edabus node", "edabus client -> raw queryable")

ROWS: tuple[RowSpec, ...] = (
    RowSpec("1. tell, 1 actor (a singleton), one process", "tell-one", "rate", "msg/s", pykka="pykka",
            target=Target(">=", 0.6, "ratio")),
    RowSpec("2. tell, 1,000 keyed actors, one process", "local-throughput", "rate", "msg/s", pykka="pykka",
            target=Target(">=", 0.5, "ratio")),
    RowSpec("3. tell, 1,000 keyed actors, 2 processes via router", "router-throughput", "rate", "msg/s",
            target=Target(">=", 0.5, "ratio")),
    *(RowSpec(f"   3, {variant}", "router-throughput", "rate", "msg/s", subject=variant) for variant in _ROUTER_MIXED),
    RowSpec("4. request, one process", "local-request", "p50_us", "p50 µs", pykka="pykka",
            target=Target("<=", 60, "edabus", "µs")),
    RowSpec("4. request, one process", "local-request", "p99_us", "p99 µs", pykka="pykka"),
    RowSpec("5. request, 2 processes via router", "router-request", "p50_us", "p50 µs",
            target=Target("<=", 1.2, "ratio")),
    RowSpec("5. request, 2 processes via router", "router-request", "p99_us", "p99 µs",
            target=Target("<=", 1.2, "ratio")),
    *(RowSpec(f"   5, {variant}", "router-request", metric, unit, subject=variant)
      for metric, unit in (("p50_us", "p50 µs"), ("p99_us", "p99 µs")) for variant in _REQUEST_MIXED),
    RowSpec("6. activation: to new keys vs to 1,000 live", "activation", "rate", "msg/s", subject=NEW,
            reference=EXISTING, target=Target(">=", 0.5, "ratio")),
    RowSpec("7. memory per idle keyed actor", "memory", "bytes_per_item", "B/actor",
            target=Target("<=", 2048, "edabus", "B")),
    RowSpec("8. cluster of 3: received/handled, worst node", "cluster", "max_ratio", "recv/handled", reference=None,
            target=Target("<=", 1.1, "edabus"), digits=2),
)  # fmt: skip

LEGEND = (
    (
        "ref: raw zenoh-python doing the same work, except row 6 (edabus to the 1,000 live keys, same run), "
        "row 7 (a dict of trivial Python objects) and row 8 (none; 1.00 is ideal)."
    ),
    (
        "ratio: edabus / ref. target: on the ratio where it ends in x, else on the edabus figure. "
        "lost: ref / edabus / pykka (a run that loses anything exits 1)."
    ),
    (
        "pykka: ThreadingActor, the same messages (tell, ask); '-' where not measured or not installed "
        "(pip install -e '.[bench]'). '   N,' rows: variants of row N, for reading; they carry no target."
    ),
)


def _lost(summary: dict[str, float] | None) -> str:
    if summary is None:
        return "-"
    lost = str(int(summary["lost"]))
    return lost + (" (misrouted!)" if summary.get("misrouted") else "")


def evaluate(spec: RowSpec, summaries: dict[str, dict[str, float]]) -> Row | None:
    """The row for one scenario's summaries; None if its edabus variant was not run."""
    subject = summaries.get(spec.subject)
    if subject is None:
        return None
    reference = summaries.get(spec.reference) if spec.reference is not None else None
    pykka = summaries.get(spec.pykka) if spec.pykka is not None else None
    edabus_value = subject[spec.metric]
    ref_value = reference[spec.metric] if reference is not None else None
    ratio = edabus_value / ref_value if ref_value else None
    met = None
    if spec.target is not None:
        figure = ratio if spec.target.on == "ratio" else edabus_value
        met = spec.target.met(math.nan if figure is None else figure)
    return Row(
        label=spec.label,
        unit=spec.unit,
        reference=ref_value,
        edabus=edabus_value,
        pykka=pykka[spec.metric] if pykka is not None else None,
        ratio=ratio,
        target=spec.target,
        met=met,
        lost=" / ".join(_lost(s) for s in (reference, subject, pykka)),
        digits=spec.digits,
    )


def rows_of(specs: Sequence[RowSpec], results: dict[str, dict[str, dict[str, float]]]) -> list[Row]:
    """Every row whose scenario and edabus variant ran, in the specs' order."""
    rows = []
    for spec in specs:
        summaries = results.get(spec.scenario)
        row = evaluate(spec, summaries) if summaries is not None else None
        if row is not None:
            rows.append(row)
    return rows
