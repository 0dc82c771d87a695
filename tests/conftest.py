"""Shared fixtures: a fresh database per test (SQLite, or TEST_DATABASE_URL when set)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

from bot.clock import ManualClock
from bot.runtime import Runtime
from storage.audit import AuditSigner, generate_key
from storage.db import Database, sqlite_path
from storage.vault import Vault

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def reset_database(url: str) -> None:
    """Empty a PostgreSQL test database so each test starts from nothing."""
    if not url.startswith("postgresql"):
        return
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()


def recreate_database(url: str, *, template: str | None = None) -> None:
    """Drop the PostgreSQL database ``url`` names (ending any connection a finished test
    left behind) and create it again, empty or as a copy of ``template``'s database."""
    target = make_url(url)
    server = create_engine(
        target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    quote = server.dialect.identifier_preparer.quote
    copy = f" TEMPLATE {quote(make_url(template).database or '')}" if template else ""
    with server.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote(target.database or '')} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {quote(target.database or '')}{copy}")
    server.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated to the newest schema once per session. Running every migration
    for each test cost a fifth of the suite's time; each test's runtime starts from a copy.
    The migrations themselves are tested from empty databases (tests/test_migrations.py)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        target = make_url(url)
        template = target.set(database=f"{target.database}_template").render_as_string(
            hide_password=False
        )
        recreate_database(template)
    else:
        template = f"sqlite:///{tmp_path_factory.mktemp('template') / 'licensebot.db'}"
    db = Database(template)
    db.upgrade()
    db.dispose()
    return template


def copy_database(template: str, url: str) -> None:
    """Make ``url``'s database a copy of ``template``'s (which nobody may be connected to)."""
    if url.startswith("postgresql"):
        recreate_database(url, template=template)
    else:
        source, target = sqlite_path(template), sqlite_path(url)
        assert source is not None and target is not None
        shutil.copyfile(source, target)


@pytest.fixture
def database_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        # A test with a runtime has the database made again from the template (``runtime``):
        # emptying it first would be work thrown away.
        if "runtime" not in request.fixturenames:
            reset_database(url)
        return url
    return f"sqlite:///{tmp_path / 'licensebot.db'}"


@pytest.fixture
def encryption_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def audit_key() -> str:
    return generate_key()


@pytest.fixture(autouse=True)
def audit_key_in_environment(audit_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A CLI run inside a test must sign and verify with the test runtime's audit key, and must
    # not create licensebot-audit.key in the working directory (where it goes on PostgreSQL).
    monkeypatch.setenv("LICENSEBOT_AUDIT_KEYS", audit_key)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def runtime(
    database_url: str,
    migrated_template: str,
    encryption_key: str,
    audit_key: str,
    clock: ManualClock,
) -> Iterator[Runtime]:
    copy_database(migrated_template, database_url)
    db = Database(database_url)
    rt = Runtime(
        db=db,
        vault=Vault([encryption_key]),
        clock=clock,
        audit_keys=AuditSigner([audit_key]),
        admins=frozenset({"UADMIN1"}),
        it_channel="CIT00001",
    )
    yield rt
    db.dispose()
