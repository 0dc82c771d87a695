"""One row per figure: what was measured, its ceiling from the same run, the ratio, the target."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """Repeated measurements of one quantity: the median is reported, the spread shown."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> str:
        if len(self.values) < 2:
            return "-"
        return f"{min(self.values):.4g}..{max(self.values):.4g}"


@dataclass(frozen=True)
class Figure:
    """``ratio = value / ceiling``; the target is met when ``ratio <= at_most`` (for times,
    memory) or ``ratio >= at_least`` (for throughputs). Absolute limits (a p99 in ms) use a
    ceiling of 1 and say so in ``unit``."""

    name: str
    value: Sample
    ceiling: Sample
    unit: str
    at_most: float | None = None
    at_least: float | None = None
    note: str = ""
    # True when the ceiling is a fixed limit (300 MB, 1 s), not measured in this run.
    limit: bool = False

    @property
    def ratio(self) -> float:
        return self.value.median / self.ceiling.median if self.ceiling.median else float("inf")

    @property
    def target(self) -> str:
        if self.at_most is not None:
            return f"<= {self.at_most:g}"
        if self.at_least is not None:
            return f">= {self.at_least:g}"
        return "-"

    @property
    def met(self) -> bool:
        if self.at_most is not None and self.ratio > self.at_most:
            return False
        return not (self.at_least is not None and self.ratio < self.at_least)


def table(figures: Sequence[Figure], *, title: str = "") -> str:
    header = ("figure", "value", "spread", "ceiling", "spread", "unit", "ratio", "target", "met")
    rows = [header]
    for f in figures:
        rows.append(
            (
                f.name,
                f"{f.value.median:.4g}",
                f.value.spread,
                f"{f.ceiling.median:.4g}",
                "fixed limit" if f.limit else f.ceiling.spread,
                f.unit,
                f"{f.ratio:.3g}",
                f.target,
                "yes" if f.met else "NO",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [title] if title else []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + notes)
