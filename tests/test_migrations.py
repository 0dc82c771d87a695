"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import storage.models  # noqa: F401  # registers every table on SQLModel.metadata
from bot.runtime import Runtime


def test_migrations_match_the_models(runtime: Runtime) -> None:
    with runtime.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"write a migration for: {diff}"


def test_upgrading_twice_changes_nothing(runtime: Runtime) -> None:
    runtime.db.upgrade()
    with runtime.db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None
