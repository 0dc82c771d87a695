"""Synthetic company data at volume, loaded fast: what the data-volume benchmarks run against.

Rows go in through PostgreSQL ``COPY`` (psycopg) or one SQLite ``executemany`` per table, with
values converted by SQLAlchemy's own type processors, so they are stored exactly as the bot
stores them. Everything is deterministic (a fixed seed): two runs load the same data.

A held seat is in one of these states, by share (``Shape``):

- *active*: used (a usage signal) within its product's ``reclaim_after_days``;
- *idle*: last use (or the assignment, without a signal) older than that, never nudged: what
  the next reclaim scan nudges;
- *asked*: idle, nudged within the window (the scan leaves it alone); some of them nudged
  longer ago than the grace period, i.e. unanswered (``reclaim.reclaimable``);
- *new*: assigned within the window, never used yet.

Products listed in ``Shape.no_data_products`` have no usage signal at all.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet

from bot.clock import ManualClock
from bot.runtime import Runtime
from storage.audit import AuditSigner, generate_key
from storage.db import Database
from storage.models import (
    Assignment,
    LicenseRequest,
    Person,
    Product,
    UsageSignal,
)
from storage.vault import Vault

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday: the digest's day
WINDOWS = (30, 60, 90)  # reclaim_after_days of the products, in turn
SEED = 20261102


@dataclass(frozen=True)
class Shape:
    products: int
    people: int
    assignments: int
    released: float = 0.10  # share of all assignments already given back
    idle: int | float = 0.15  # held seats to nudge: a count, or a share of the held seats
    asked: float = 0.05  # held seats nudged recently (not due again)
    unanswered: float = 0.01  # held seats nudged past the grace period, no answer
    new: float = 0.05  # held seats assigned within the window, not used yet
    no_data_products: int = 0  # the last N products: no usage signal at all
    auto_reclaim: bool = False  # products reclaim unanswered nudges automatically
    waitlisted: int = 0
    pending: int = 0


def table(model: Any) -> sa.Table:
    table_: sa.Table = model.__table__
    return table_


def runtime(url: str, *, now: datetime = NOW) -> Runtime:
    """A migrated database and a runtime on it (fresh keys; a clock fixed at ``now``)."""
    db = Database(url)
    db.upgrade()
    return runtime_on(db, now=now)


def runtime_on(db: Database, *, now: datetime = NOW) -> Runtime:
    """A runtime on an open database (fresh keys; a clock fixed at ``now``)."""
    return Runtime(
        db=db,
        vault=Vault([Fernet.generate_key().decode()]),
        clock=ManualClock(now),
        audit_keys=AuditSigner([generate_key()]),
        it_channel="CBENCHIT",
    )


def bulk_load(
    engine: sa.Engine, target: sa.Table, columns: Sequence[str], rows: Iterable[Any]
) -> int:
    """Insert ``rows`` (tuples in ``columns`` order) in one transaction; returns the count.

    PostgreSQL: ``COPY ... FROM STDIN`` (binary-safe, values adapted by psycopg). SQLite: the
    driver's ``executemany`` with values run through SQLAlchemy's bind processors, so dates are
    stored in the same text format the ORM writes and compares.
    """
    dialect = engine.dialect
    raw = engine.raw_connection()
    count = 0
    try:
        cursor = raw.cursor()
        if dialect.name == "postgresql":
            names = ", ".join(columns)
            with cursor.copy(f"COPY {target.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        else:
            processors = [_processor(target.c[name].type, dialect) for name in columns]

            def converted() -> Iterator[tuple[Any, ...]]:
                nonlocal count
                for row in rows:
                    count += 1
                    yield tuple(
                        p(v) if p is not None and v is not None else v
                        for p, v in zip(processors, row, strict=True)
                    )

            marks = ", ".join("?" for _ in columns)
            # The bot's connections run the driver in autocommit mode (it issues BEGIN itself):
            # without a BEGIN here every row would be a transaction and an fsync.
            cursor.execute("BEGIN")
            # sqlite3 takes any iterable of rows: no list of a million tuples in memory.
            rows_in: Any = converted()
            cursor.executemany(
                f"INSERT INTO {target.name} ({', '.join(columns)}) VALUES ({marks})", rows_in
            )
        raw.commit()
    finally:
        raw.close()
    return count


def _processor(type_: Any, dialect: sa.Dialect) -> Any:
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is not None and isinstance(type_, sa.DateTime | sa.Date):
        # Generated times repeat a lot; formatting each one costs ~3 us.
        return functools.lru_cache(maxsize=None)(process)
    return process


def analyze(engine: sa.Engine) -> None:
    """Planner statistics and the visibility map, as autovacuum keeps them on a live
    PostgreSQL after a bulk load (without the map, index-only scans visit the table).
    (SQLite keeps none unless told; the bot never runs ANALYZE there, so neither do we.)"""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


def json_list(engine: sa.Engine, value: list[str]) -> Any:
    """A JSON column's value for ``bulk_load``: COPY takes JSON text, SQLite's processor a list."""
    return json.dumps(value) if engine.dialect.name == "postgresql" else value


def product_id(i: int) -> str:
    return f"prod-{i:04d}"


def user_id(j: int) -> str:
    return f"U{j:08d}"


def load(rt: Runtime, shape: Shape, *, now: datetime = NOW) -> dict[str, int]:
    """Fill an empty, migrated database with ``shape``; returns row counts per table."""
    engine = rt.db.engine
    rng = random.Random(SEED)
    counts: dict[str, int] = {}
    windows = [WINDOWS[i % len(WINDOWS)] for i in range(shape.products)]
    counts["product"] = bulk_load(
        engine,
        table(Product),
        (
            "id",
            "name",
            "vendor",
            "delivery",
            "seats",
            "cost_per_seat",
            "renewal_date",
            "approval",
            "auto_approve",
            "reclaim_after_days",
            "reclaim_grace_days",
            "auto_reclaim",
            "min_free_seats",
            "active",
            "updated_at",
        ),
        (
            (
                product_id(i),
                f"Product {i}",
                f"Vendor {i % 40}",
                "seat",
                # Some products are over-assigned: the digest reports them.
                int(shape.assignments / shape.products * (0.8 if i % 10 == 0 else 1.3)) + 1,
                Decimal(120 + (i % 50) * 12),
                (now + timedelta(days=5 + i % 200)).date() if i % 3 == 0 else None,
                json_list(engine, ["manager"]),
                False,
                windows[i],
                7,
                shape.auto_reclaim,
                0,
                True,
                now,
            )
            for i in range(shape.products)
        ),
    )
    counts["person"] = bulk_load(
        engine,
        table(Person),
        ("slack_user_id", "email", "name", "department", "updated_at"),
        (
            (user_id(j), f"user{j}@example.com", f"User {j}", f"Dept {j % 30}", now)
            for j in range(shape.people)
        ),
    )

    held_total = int(shape.assignments * (1 - shape.released))
    idle_n = shape.idle if isinstance(shape.idle, int) else int(held_total * shape.idle)
    states = _states(shape, held_total, idle_n)
    no_data_from = shape.products - shape.no_data_products
    signals: list[tuple[str, str, datetime, str, datetime]] = []

    def assignments() -> Iterator[tuple[Any, ...]]:
        # Seat k: product k mod P, and a user unique per product (a stride over the people).
        stride = max(shape.people // max(shape.assignments // shape.products, 1), 1)
        held_seen = 0
        for k in range(shape.assignments):
            p = k % shape.products
            u = ((k // shape.products) * stride + p) % shape.people
            window = timedelta(days=windows[p])
            pid, uid = product_id(p), user_id(u)
            released = (
                rng.random() < shape.released and held_seen + (shape.assignments - k) > held_total
            )
            if released or held_seen >= held_total:
                assigned = now - timedelta(days=rng.randint(100, 700))
                gone = now - timedelta(days=rng.randint(0, 90), hours=rng.randint(0, 23))
                reason = ("released", "reclaimed", "offboarded", "expired")[k % 4]
                yield (pid, uid, assigned, gone, reason, None, None, None)
                continue
            state = states[held_seen]
            held_seen += 1
            signal = p < no_data_from
            nudged: datetime | None = None
            if state == "new":
                assigned = now - window + timedelta(days=rng.randint(1, windows[p] - 1))
                signal = False
            else:
                assigned = now - window - timedelta(days=rng.randint(1, 500))
            if state == "active":
                used = now - timedelta(
                    days=rng.randint(0, windows[p] - 1), hours=rng.randint(0, 23)
                )
            else:
                used = now - window - timedelta(days=rng.randint(1, 200))
                used = max(used, assigned)
                if state == "asked":
                    nudged = now - timedelta(days=rng.randint(0, 6), hours=1)
                elif state == "unanswered":
                    nudged = now - timedelta(days=rng.randint(8, windows[p] - 1))
            if state == "idle" and rng.random() < 0.3:
                signal = False  # idle since it was assigned: never seen in use
            if signal:
                signals.append((pid, uid, used, "csv", used))
            # The seat carries its holder's last use, as bot/usage.py keeps it.
            yield (pid, uid, assigned, None, "", nudged, None, used if signal else None)

    counts["assignment"] = bulk_load(
        engine,
        table(Assignment),
        (
            "product_id",
            "user_id",
            "assigned_at",
            "released_at",
            "release_reason",
            "nudged_at",
            "snoozed_until",
            "last_used_at",
        ),
        assignments(),
    )
    counts["usage_signal"] = bulk_load(
        engine,
        table(UsageSignal),
        ("product_id", "user_id", "last_used_at", "source", "updated_at"),
        signals,
    )
    counts["license_request"] = bulk_load(
        engine,
        table(LicenseRequest),
        (
            "product_id",
            "requester_id",
            "requested_by",
            "justification",
            "status",
            "step",
            "route",
            "created_at",
            "updated_at",
            "waitlisted_at",
        ),
        (
            (
                product_id(r % shape.products),
                user_id(r % shape.people),
                user_id(r % shape.people),
                "benchmark",
                status,
                0,
                json_list(engine, ["manager"]),
                created,
                created,
                created if status == "waitlisted" else None,
            )
            for r in range(shape.waitlisted + shape.pending)
            for status in ("waitlisted" if r < shape.waitlisted else "pending",)
            for created in (now - timedelta(hours=1 + r % 200),)
        ),
    )
    analyze(engine)
    return counts


def _states(shape: Shape, held: int, idle: int) -> list[str]:
    """Each held seat's state, spread evenly over products and time (deterministic)."""
    asked = int(held * shape.asked)
    unanswered = int(held * shape.unanswered)
    new = int(held * shape.new)
    states = ["active"] * max(held - idle - asked - unanswered - new, 0)
    states += ["idle"] * idle + ["asked"] * asked + ["unanswered"] * unanswered + ["new"] * new
    random.Random(SEED + 1).shuffle(states)
    return states[:held]


class SqlTimer:
    """Time spent in the database driver by one engine's connections: every ``execute``,
    ``executemany`` and ``fetch*`` of their cursors, and every commit. Python work between
    statements (building rows, hashing audit entries) is not counted: that is the wall time.

    Fetches count because SQLite computes a query's rows as they are fetched, not in
    ``execute``. The driver's classes are swapped in when connections are made (the engine's
    ``do_connect`` event), so the pool is emptied first and again when the timer stops.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.seconds = 0.0
        self.statements = 0
        # Seconds per statement (its first words; a fetch counts for the statement before it).
        self.by_statement: dict[str, float] = {}
        self._engine = engine
        timer = self
        last = [""]

        def timed(base: type, method: str) -> Any:
            plain = getattr(base, method)

            def call(self: Any, *args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return plain(self, *args, **kwargs)
                finally:
                    spent = time.perf_counter() - started
                    timer.seconds += spent
                    if method.startswith("execute"):
                        timer.statements += 1
                        last[0] = " ".join(str(args[0]).split())[:150] if args else method
                    key = "COMMIT" if method == "commit" else (last[0] or method)
                    timer.by_statement[key] = timer.by_statement.get(key, 0.0) + spent

            return call

        methods = ("execute", "executemany", "fetchone", "fetchmany", "fetchall")
        if engine.dialect.name == "sqlite":
            import sqlite3

            cursor_class = type(
                "TimedCursor", (sqlite3.Cursor,), {m: timed(sqlite3.Cursor, m) for m in methods}
            )

            def cursor(self: Any, factory: Any = None) -> Any:
                return sqlite3.Connection.cursor(self, factory or cursor_class)

            connection_class = type(
                "TimedConnection",
                (sqlite3.Connection,),
                {"cursor": cursor, "commit": timed(sqlite3.Connection, "commit")},
            )
            extra: dict[str, Any] = {"factory": connection_class}
        else:
            import psycopg

            cursor_class = type(
                "TimedCursor", (psycopg.Cursor,), {m: timed(psycopg.Cursor, m) for m in methods}
            )
            extra = {"cursor_factory": cursor_class}
            sa.event.listen(engine, "commit", self._commit)
        self._extra = extra
        sa.event.listen(engine, "do_connect", self._connect)
        engine.dispose()

    def _connect(self, _dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        cparams.update(self._extra)

    def _commit(self, conn: sa.Connection) -> None:
        # psycopg: the event fires just before the driver's commit and there is no "after"
        # event, so commit here, timed; the driver's own commit then has nothing left to do.
        started = time.perf_counter()
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None:
            dbapi.commit()
        spent = time.perf_counter() - started
        self.seconds += spent
        self.by_statement["COMMIT"] = self.by_statement.get("COMMIT", 0.0) + spent

    def close(self) -> None:
        sa.event.remove(self._engine, "do_connect", self._connect)
        if sa.event.contains(self._engine, "commit", self._commit):
            sa.event.remove(self._engine, "commit", self._commit)
        self._engine.dispose()
