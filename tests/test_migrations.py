"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import storage.models  # noqa: F401  # registers every table on SQLModel.metadata
from bot.runtime import Runtime
from storage.db import Database


def test_migrations_match_the_models(runtime: Runtime) -> None:
    with runtime.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"write a migration for: {diff}"


def test_upgrading_twice_changes_nothing(runtime: Runtime) -> None:
    runtime.db.upgrade()
    with runtime.db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None


def _upgrade_when_released(url: str, ready: Barrier, results: Queue[str]) -> None:
    """One replica's start-up migration, run in its own process (Alembic's context is global)."""
    db = Database(url)
    try:
        db.ping()  # connected before the release, so the upgrades really overlap
        ready.wait(60)
        db.upgrade()
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        db.dispose()


def test_replicas_starting_together_on_an_empty_database_all_migrate_it(
    database_url: str,
) -> None:
    # Three `licensebot serve` processes started at once (`docker compose up --scale bot=3`)
    # each upgrade the schema at start: they must take turns, not fail on each other's tables.
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(3), ctx.Queue()
    workers = [
        ctx.Process(target=_upgrade_when_released, args=(database_url, ready, results))
        for _ in range(3)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert sorted(results.get(timeout=5) for _ in workers) == ["ok"] * 3
    db = Database(database_url)
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        db.dispose()
    assert diff == []
