"""Engine, sessions and migrations.

SQLite serializes writers with BEGIN IMMEDIATE so a read-then-write transaction never fails with
a stale snapshot half-way; PostgreSQL uses row locks (``with_for_update``) where order matters.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlmodel import Session

from storage import outbox
from storage.audit import COMMITTED_EVENTS, write_deferred

T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
# Bound parameters per statement: SQLite allows 32,766 (250,000 in some builds), so an ``IN``
# list of IDs is sent in slices well below that.
IN_SLICE = 5000
# The PostgreSQL advisory lock key that serializes schema upgrades (any fixed 64-bit number).
MIGRATION_LOCK = 0x6C6963656E7365  # "license"
# How often a dispatcher looks whether another process committed to the SQLite file.
SQLITE_WATCH_SECONDS = 0.025
log = logging.getLogger("licensebot.events")


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL's usual setting: a commit no longer waits for an fsync of the log (3-5 ms here,
        # while holding the one write lock), which capped every click at ~200 writes/s. The
        # database stays consistent after any crash; a power cut or OS crash (not a crash of
        # the bot) can lose the last commits since the previous checkpoint. Deployments that
        # cannot accept that run PostgreSQL (README "Performance").
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # A page cache of up to 64 MiB (SQLite's default is 2 MiB): scans over a million seats
        # (reclaim, digest) probe usage_signal at random and otherwise re-read the same pages
        # from the OS at every probe, twice as slow. Filled only as pages are read.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("licensebot_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """The one engine of the process and the sessions made from it."""

    def __init__(self, url: str) -> None:
        self.url = url
        if make_url(url).get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
        self._readonly = self.engine.execution_options(licensebot_readonly=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                # Audit entries deferred by the services go in before the commit, or never.
                write_deferred(session)
                if session.info.pop(outbox.QUEUED, False) and not self.is_sqlite:
                    # Sent by PostgreSQL at commit, and only if the commit happens.
                    session.execute(text(f"NOTIFY {outbox.CHANNEL}"))
                session.commit()
            except BaseException:
                session.rollback()
                raise
            # One structured line per audited event, only for what was really committed.
            for line in session.info.pop(COMMITTED_EVENTS, []):
                log.info(line)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session that does not queue behind SQLite writers."""
        # Closing (not rolling back) ends the transaction and keeps loaded objects usable.
        with Session(self._readonly, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read-only transaction that sees every table as of a single moment (backups).

        PostgreSQL: REPEATABLE READ, so statements after the first see no later commits.
        SQLite (WAL): a plain BEGIN; the snapshot is fixed by the first read and writers keep
        going meanwhile.
        """
        options: dict[str, Any] = {"licensebot_readonly": True}
        if not self.is_sqlite:
            options |= {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        with self.engine.connect() as conn:
            conn.execution_options(**options)
            with conn.begin():
                yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (safe to run at every start)."""
        cfg = alembic_config()
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Replicas starting together on a fresh database would each create the tables
                # and all but one fail; this lock (held until commit) makes them take turns,
                # and the later ones find the schema current. SQLite's BEGIN IMMEDIATE already
                # serializes the upgrade transactions.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def listen_outbox(self, on_queued: Callable[[], None], stop: threading.Event) -> None:
        """Call ``on_queued`` soon after any process commits outbox messages, until ``stop``
        is set. Blocks; a lost connection raises (the caller retries).

        PostgreSQL: LISTEN for the NOTIFY those commits send. SQLite: the file's
        ``data_version``, read every ``SQLITE_WATCH_SECONDS`` on a connection of its own,
        changes whenever another connection commits (any commit: the dispatcher then finds
        out whether anything is due); reading it touches no page, only the WAL index."""
        if self.is_sqlite:
            self._watch_sqlite(on_queued, stop)
            return
        import psycopg  # PostgreSQL's driver, only needed here

        url = self.engine.url.set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f"LISTEN {outbox.CHANNEL}")
            while not stop.is_set():
                # A timeout, so that ``stop`` is seen within a second.
                if any(True for _ in conn.notifies(timeout=1.0, stop_after=1)):
                    on_queued()

    def _watch_sqlite(self, on_queued: Callable[[], None], stop: threading.Event) -> None:
        path = sqlite_path(self.url)
        if path is None:  # in memory: no other process can write to it
            stop.wait()
            return
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        try:
            seen = None
            while not stop.is_set():
                (version,) = conn.execute("PRAGMA data_version").fetchone()
                if seen is not None and version != seen:
                    on_queued()
                seen = version
                stop.wait(SQLITE_WATCH_SECONDS)
        finally:
            conn.close()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory or other databases)."""
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)


def in_slices(ids: Sequence[T]) -> list[Sequence[T]]:
    """``ids`` cut into slices small enough for one ``IN (...)`` on every database."""
    return [ids[i : i + IN_SLICE] for i in range(0, len(ids), IN_SLICE)]
