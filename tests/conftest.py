"""Shared fixtures: a fresh database per test (SQLite, or TEST_DATABASE_URL when set)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine

from bot.clock import ManualClock
from bot.runtime import Runtime
from storage.audit import AuditSigner, generate_key
from storage.db import Database
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


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
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
    database_url: str, encryption_key: str, audit_key: str, clock: ManualClock
) -> Iterator[Runtime]:
    db = Database(database_url)
    db.upgrade()
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
