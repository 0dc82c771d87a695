"""Reclaim scan: the daily job choosing 10,000 idle seats out of 1,000,000, in database time.

The figure is absolute (target: at most 1 s of database time). Database time is the time spent
inside the driver (every statement, and the commit), summed by SQLAlchemy cursor events on the
job's engine; the Python work of the scan (audit hashes and signatures, outbox payloads) is in
the wall time, reported beside it without a target.

The job runs as the scheduler runs it (``reclaim.run_daily``: the once-a-day claim, the scan,
its audit entries and one nudge per seat in the outbox, one transaction). Between repetitions
the nudges, entries and outbox rows it wrote are removed again (untimed), so every repetition
finds the same 10,000 seats.
"""

from __future__ import annotations

import sys
import time

import sqlalchemy as sa

from bench import data
from bench.context import Context
from bench.report import Figure, Sample
from bot import reclaim
from bot.runtime import Runtime
from storage import audit
from storage.models import Assignment, AuditEntry, AuditHead, JobRun, OutboxMessage

LIMIT_SECONDS = 1.0


def shape(ctx: Context) -> data.Shape:
    return data.Shape(
        products=ctx.scale(500, 20),
        people=ctx.scale(50_000, 500),
        assignments=ctx.scale(1_000_000, 4_000),
        idle=ctx.scale(10_000, 40),
        asked=0.03,  # idle but already nudged this window: the scan must pass them by
        unanswered=0.0,
        new=0.03,
    )


def _undo(rt: Runtime) -> None:
    """Put back what the scan changed: its nudges, audit entries, outbox rows and claim."""
    with rt.db.engine.begin() as conn:
        conn.execute(
            sa.update(data.table(Assignment))
            .where(data.table(Assignment).c.nudged_at == data.NOW)
            .values(nudged_at=None)
        )
        conn.execute(sa.delete(data.table(OutboxMessage)))
        conn.execute(sa.delete(data.table(AuditEntry)))
        conn.execute(sa.update(data.table(AuditHead)).values(last_id=0, hash=audit.GENESIS))
        conn.execute(sa.delete(data.table(JobRun)))


def run(ctx: Context) -> list[Figure]:
    s = shape(ctx)
    with ctx.database("reclaim") as url:
        rt = data.runtime(url)
        try:
            counts = data.load(rt, s)
            db_seconds: list[float] = []
            wall_seconds: list[float] = []
            statements = 0
            for _ in range(ctx.repeat):
                timer = data.SqlTimer(rt.db.engine)
                started = time.perf_counter()
                ran = reclaim.run_daily(rt, data.NOW)
                wall = time.perf_counter() - started
                timer.close()
                with rt.db.engine.connect() as conn:
                    nudges = conn.execute(
                        sa.select(sa.func.count()).select_from(data.table(OutboxMessage))
                    ).scalar_one()
                if not ran or nudges != s.idle:
                    raise RuntimeError(f"the scan nudged {nudges} seats, expected {s.idle}")
                slowest = sorted(timer.by_statement.items(), key=lambda kv: -kv[1])[:5]
                for statement, seconds in slowest:  # where the database time goes
                    print(f"  reclaim {seconds:6.3f} s  {statement}", file=sys.stderr)
                db_seconds.append(timer.seconds)
                wall_seconds.append(wall)
                statements = timer.statements
                _undo(rt)
        finally:
            rt.db.dispose()
    what = f"{s.idle:,} of {counts['assignment']:,} seats"
    return [
        Figure(
            f"reclaim scan: database time ({what})",
            Sample(tuple(db_seconds)),
            Sample((LIMIT_SECONDS,)),
            "s",
            at_most=1.0,
            limit=True,
            note=f"{statements} statements; ceiling is the fixed limit of {LIMIT_SECONDS:g} s",
        ),
        Figure(
            f"reclaim scan: wall time ({what})",
            Sample(tuple(wall_seconds)),
            Sample((LIMIT_SECONDS,)),
            "s",
            limit=True,
            note="whole job incl. Python (audit hashes, HMACs); reported, no target",
        ),
    ]
