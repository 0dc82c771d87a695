"""Weekly digest over 1,000,000 assignments, 500 products, 50,000 people.

Figures:

- **time**: what the ``digest`` job's two notifications cost to render: ``digest.report`` (the
  figures, as the Slack notifier reads them), ``blocks.it_digest`` (the Slack message) and
  ``digest.to_csv`` (the attached table). Ceiling: one hand-written SQL ``GROUP BY`` giving
  every product's held, active and idle seats over the same data. Target: at most 2x.
- **peak memory**: the peak resident set of a fresh Python process that imports the bot, opens
  the database and renders the digest once, against a fixed limit of 300 MB. It includes the
  interpreter and every imported library, so it is what a worker really uses. Read as
  ``VmHWM`` (``ru_maxrss`` where there is no /proc): on Linux ``ru_maxrss`` keeps the peak of
  the parent across fork and exec, and the parent has just loaded a million rows.

Each repetition runs in its own fresh process (so peak memory is that run's alone); the process
times the ceiling query and the digest one after the other on the same database, after one
untimed ceiling query to warm the operating system's file cache for both.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from bench import data
from bench.context import Context
from bench.report import Figure, Sample

LIMIT_MB = 300.0

# The ceiling: per-product held/active/idle seats in one statement, written by hand against
# this schema (a seat carries its holder's last use, ``assignment.last_used_at``).
CEILING_SQL = sa.text(
    """
    SELECT a.product_id,
           count(*) AS held,
           sum(CASE WHEN a.last_used_at >= :cutoff THEN 1 ELSE 0 END) AS active,
           sum(CASE WHEN coalesce(a.last_used_at, a.assigned_at) < :cutoff THEN 1 ELSE 0 END)
             AS idle
    FROM assignment a
    WHERE a.released_at IS NULL
    GROUP BY a.product_id
    """
).bindparams(sa.bindparam("cutoff", type_=sa.DateTime(timezone=True)))


def shape(ctx: Context) -> data.Shape:
    return data.Shape(
        products=ctx.scale(500, 20),
        people=ctx.scale(50_000, 500),
        assignments=ctx.scale(1_000_000, 4_000),
        idle=0.15,
        asked=0.04,
        unanswered=0.01,
        new=0.05,
        no_data_products=ctx.scale(20, 2),
        waitlisted=ctx.scale(2_000, 20),
        pending=ctx.scale(500, 10),
    )


def measure(url: str) -> dict[str, Any]:
    """In this (fresh) process: the ceiling query's time, the digest's time, peak memory."""
    # Imported here: the parent process never needs them, the child's memory includes them.
    from bot import digest
    from handlers import blocks
    from storage.db import Database

    db = Database(url)
    try:
        window = data.NOW - timedelta(days=30)
        with db.engine.connect() as conn:
            conn.execute(CEILING_SQL, {"cutoff": window}).all()  # warm-up, untimed
            started = time.perf_counter()
            rows = conn.execute(CEILING_SQL, {"cutoff": window}).all()
            ceiling = time.perf_counter() - started
        rt = data.runtime_on(db)
        started = time.perf_counter()
        figures = digest.report(rt, data.NOW)
        message = blocks.it_digest(figures)
        table = digest.to_csv(figures)
        seconds = time.perf_counter() - started
    finally:
        db.dispose()
    return {
        "ceiling": ceiling,
        "digest": seconds,
        "products": len(rows),
        "csv_bytes": len(table),
        "blocks": len(message[1]),
        "held": figures.totals.assigned,
        "peak_mb": _peak_kb() / 1024,
        # Linux reports kilobytes.
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _peak_kb() -> float:
    """This process image's peak resident set, in kB.

    ``ru_maxrss`` is not it on Linux: exec keeps the peak of the process that forked it, so
    a child of the benchmark (which just loaded a million rows) reports the parent's peak.
    ``VmHWM`` belongs to the new image alone; ``ru_maxrss`` is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run(ctx: Context) -> list[Figure]:
    s = shape(ctx)
    runs: list[dict[str, Any]] = []
    with ctx.database("digest") as url:
        rt = data.runtime(url)
        try:
            counts = data.load(rt, s)
        finally:
            rt.db.dispose()
        for _ in range(ctx.repeat):
            child = subprocess.run(
                [sys.executable, "-m", "bench.digest", url],
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode != 0:
                raise RuntimeError(f"the digest process failed:\n{child.stderr[-3000:]}")
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    what = f"{counts['assignment']:,} assignments, {counts['product']} products"
    first = runs[0]
    return [
        Figure(
            f"digest: report + Slack message + CSV ({what})",
            Sample(tuple(r["digest"] for r in runs)),
            Sample(tuple(r["ceiling"] for r in runs)),
            "s",
            at_most=2.0,
            note=(
                f"ceiling: one hand-written GROUP BY (held/active/idle per product); "
                f"{first['held']:,} held seats, {counts['usage_signal']:,} usage signals, "
                f"CSV {first['csv_bytes']:,} bytes"
            ),
        ),
        Figure(
            "digest: peak memory of the process",
            Sample(tuple(r["peak_mb"] for r in runs)),
            Sample((LIMIT_MB,)),
            "MB",
            at_most=1.0,
            limit=True,
            note=(
                "peak RSS (VmHWM) of a fresh process: interpreter + imports + one digest; "
                f"its ru_maxrss said {first['ru_maxrss_mb']:.0f} MB, which on Linux includes "
                f"the parent's peak (kept across exec); fixed limit {LIMIT_MB:g} MB"
            ),
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
