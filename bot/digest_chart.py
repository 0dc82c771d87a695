"""The digest's chart: active, new, idle and unknown seats per product, as a PNG.

Drawn with matplotlib's Agg backend (no display needed), imported only when a chart is drawn so
that starting the bot or a CLI command does not pay for it. With hundreds of products the chart
shows the ``TOP`` products by seats held and sums the rest as one "others" bar, so it stays
readable.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from bot.digest import Digest, ProductFigures

TOP = 20
NAME_CHARS = 28


@dataclass(frozen=True)
class Bar:
    label: str
    active: int
    new: int
    idle: int
    no_data: int


def bars(products: Sequence[ProductFigures], top: int = TOP) -> list[Bar]:
    """The bars to draw: the ``top`` products by seats held, then "others" summed."""
    held = sorted(
        (p for p in products if p.assigned),
        key=lambda p: (-p.assigned, -p.idle, p.product_id),
    )
    shown = [Bar(_label(p.name), p.active, p.new, p.idle, p.no_data) for p in held[:top]]
    rest = held[top:]
    if rest:
        shown.append(
            Bar(
                f"others ({len(rest)} products)",
                sum(p.active for p in rest),
                sum(p.new for p in rest),
                sum(p.idle for p in rest),
                sum(p.no_data for p in rest),
            )
        )
    return shown


def _label(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def chart_png(digest: Digest, top: int = TOP) -> bytes:
    """A horizontal stacked bar per product: active, new, idle, no usage data."""
    # Imported here, not at the top: heavy, and only needed when a digest is sent.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    drawn = bars(digest.products, top)
    # Figure (not pyplot): no global state, safe in the dispatcher's thread.
    figure = Figure(figsize=(10, max(2.5, 0.38 * len(drawn) + 1.6)), dpi=100)
    axes = figure.subplots()
    labels = [b.label for b in drawn] or ["(no seats held)"]
    rows = list(range(len(labels)))
    left = [0] * len(labels)
    series = (
        ("active", "#2e7d32", [b.active for b in drawn]),
        ("new, not used yet", "#a5d6a7", [b.new for b in drawn]),
        ("idle", "#c62828", [b.idle for b in drawn]),
        ("no usage data", "#9e9e9e", [b.no_data for b in drawn]),
    )
    for name, colour, values in series:
        if not drawn:
            break
        axes.barh(rows, values, left=left, color=colour, label=name, height=0.7)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axes.set_yticks(rows, labels=labels, fontsize=8)
    axes.invert_yaxis()  # biggest first, at the top
    axes.set_xlabel("seats held")
    axes.set_title(f"Seats by product, week of {digest.as_of.date().isoformat()}")
    if drawn:
        axes.legend(loc="lower right", fontsize=8)
    out = io.BytesIO()
    with warnings.catch_warnings():
        # A name in a script the bundled font lacks (emoji, CJK) is drawn as boxes: still a
        # chart, not a reason to fail the digest.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        figure.tight_layout()
        figure.savefig(out, format="png")
    return out.getvalue()
