"""Key import: encrypted at rest, duplicates skipped, and no key ever shown or stored in clear."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from sqlalchemy import event
from sqlmodel import SQLModel, col, select

from bot.catalog import load_catalog
from bot.cli import cli
from bot.errors import KeyImportError, UnknownProduct, VaultError
from bot.keys import import_keys
from bot.runtime import Runtime
from storage.db import sqlite_path
from storage.models import AuditEntry, LicenseKey, LicenseRequest
from storage.vault import Vault

CATALOG = """
products:
  - {id: intellij, name: IntelliJ IDEA, delivery: key, seats: 3, approval: [manager]}
  - {id: zoom, name: Zoom, delivery: seat, seats: 3, approval: [manager]}
"""
KEYS = ["IJ-SECRET-AAAA-0001", "IJ-SECRET-BBBB-0002", "IJ-SECRET-CCCC-0003"]


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    load_catalog(runtime, CATALOG, actor="test")
    return runtime


@pytest.fixture
def env(database_url: str, encryption_key: str) -> dict[str, str | None]:
    return {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key}


def invoke(env: dict[str, str | None], *args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def snapshot(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    with rt.db.read() as session:
        return {
            table.name: sorted(
                tuple(map(str, row)) for row in session.connection().execute(table.select())
            )
            for table in SQLModel.metadata.sorted_tables
        }


def stored_keys(rt: Runtime) -> list[str]:
    with rt.db.read() as session:
        tokens = session.exec(select(LicenseKey.ciphertext).order_by(col(LicenseKey.id))).all()
    return [rt.vault.reveal(t) for t in tokens]


def test_import_counts_duplicates_in_the_file_and_in_the_pool(rt: Runtime) -> None:
    first = import_keys(rt, "intellij", [KEYS[0], f"  {KEYS[1]}\t\n", "", KEYS[0]], actor="t")
    assert (first.added, first.duplicates) == (2, 1)

    second = import_keys(rt, "intellij", [KEYS[1], KEYS[2], "   "], actor="t")
    assert (second.added, second.duplicates) == (1, 1)

    assert stored_keys(rt) == KEYS
    with rt.db.read() as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "keys.imported")).all()
    assert [e.details for e in entries] == [
        '{"added":2,"duplicates":1,"product":"intellij"}',
        '{"added":1,"duplicates":1,"product":"intellij"}',
    ]


def test_cli_import_from_file_and_stdin(
    rt: Runtime, env: dict[str, str | None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"{KEYS[0]}\r\n\r\n{KEYS[1]}\r\n{KEYS[0]}\r\n", encoding="utf-8")

    from_file = invoke(env, "keys", "import", "intellij", str(key_file))
    from_stdin = invoke(env, "keys", "import", "intellij", "-", input=f"{KEYS[1]}\n{KEYS[2]}\n")

    assert from_file.exit_code == 0, from_file.output
    assert from_file.stdout == "Added 2 keys to intellij (1 duplicates skipped).\n"
    assert from_stdin.stdout == "Added 1 keys to intellij (1 duplicates skipped).\n"
    assert stored_keys(rt) == KEYS
    for result in (from_file, from_stdin):
        assert not any(key in result.output or key in result.stderr for key in KEYS)
    assert not any(key in caplog.text for key in KEYS)


def test_keys_are_stored_only_as_ciphertext(
    rt: Runtime, env: dict[str, str | None], database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_text("\n".join(KEYS), encoding="utf-8")
    invoke(env, "keys", "import", "intellij", str(key_file))

    with rt.db.read() as session:
        for table in SQLModel.metadata.sorted_tables:
            for row in session.connection().execute(table.select()):
                text = " ".join(map(str, row))
                assert not any(key in text for key in KEYS), table.name

    exported = invoke(env, "audit", "export")
    assert exported.exit_code == 0
    assert "keys.imported" in exported.stdout
    assert not any(key in exported.stdout for key in KEYS)

    db_file = sqlite_path(database_url)
    if db_file is None:
        return  # PostgreSQL: the column check above is what we can see
    rt.db.dispose()
    files = [p for p in db_file.parent.iterdir() if p.name.startswith(db_file.name)]
    for path in files:
        data = path.read_bytes()
        assert not any(key.encode() in data for key in KEYS), path.name


def test_bulk_insert_is_one_statement(rt: Runtime) -> None:
    inserts: list[tuple[str, bool]] = []

    def record(_conn: Any, _cursor: Any, statement: str, _p: Any, _c: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO LICENSE_KEY"):
            inserts.append((statement, many))

    event.listen(rt.db.engine, "before_cursor_execute", record)
    try:
        result = import_keys(rt, "intellij", [f"BULK-{i:04}" for i in range(200)], actor="t")
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", record)

    assert result.added == 200
    # One executemany (SQLite) or one batched multi-row INSERT (PostgreSQL), never one per key.
    assert len(inserts) == 1, [many for _, many in inserts]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("A" * 1001, "line 2 is longer than 1000 characters"),
        ("IJ-SECRET\x00-NUL", "line 2 contains control or invisible characters"),
        ("IJ-SECRET\u200b-ZWSP", "line 2 contains control or invisible characters"),
        ("IJ-SECRET\x0c-FF", "line 2 contains control or invisible characters"),
    ],
    ids=["too-long", "nul", "zero-width", "form-feed"],
)
def test_unusable_lines_are_refused_by_number_without_echoing_the_key(
    rt: Runtime, env: dict[str, str | None], tmp_path: Path, line: str, expected: str
) -> None:
    import_keys(rt, "intellij", [KEYS[2]], actor="t")
    before = snapshot(rt)
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"{KEYS[0]}\n{line}\n{KEYS[1]}\n", encoding="utf-8")

    result = invoke(env, "keys", "import", "intellij", str(key_file))

    assert result.exit_code == 1
    assert result.stderr.startswith("licensebot: ") and expected in result.stderr
    assert result.stderr.count("\n") == 1
    for secret in (line, KEYS[0], KEYS[1], "SECRET"):
        assert secret not in result.output and secret not in result.stderr
    assert snapshot(rt) == before


def test_non_utf8_key_file_names_the_line_only(
    rt: Runtime, env: dict[str, str | None], tmp_path: Path
) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_bytes(b"GOOD-KEY-1\nBAD-\xff\xfe-SECRET\n")

    result = invoke(env, "keys", "import", "intellij", str(key_file))

    assert result.exit_code == 1
    assert "line 2 is not UTF-8 text" in result.stderr
    assert "SECRET" not in result.stderr and "GOOD-KEY" not in result.stderr
    assert stored_keys(rt) == []


def test_a_blank_file_is_refused(rt: Runtime) -> None:
    with pytest.raises(KeyImportError, match="no keys"):
        import_keys(rt, "intellij", ["", "  ", "\n"], actor="t")


def test_only_key_products_take_keys(rt: Runtime, env: dict[str, str | None]) -> None:
    seat = invoke(env, "keys", "import", "zoom", "-", input="ZOOM-SECRET-1\n")
    unknown = invoke(env, "keys", "import", "intelij", "-", input="ZOOM-SECRET-1\n")

    assert seat.exit_code == 1
    assert seat.stderr == (
        "licensebot: `zoom` is delivered as seats, not keys; set `delivery: key` in the "
        "catalog to import keys for it.\n"
    )
    assert unknown.exit_code == 1
    assert "There is no product `intelij` in the catalog. Did you mean: intellij?" in (
        unknown.stderr
    )
    assert "ZOOM-SECRET" not in seat.output + seat.stderr + unknown.output + unknown.stderr
    with pytest.raises(UnknownProduct):
        import_keys(rt, "nope", ["X"], actor="t")
    assert stored_keys(rt) == []


def test_a_key_the_vault_cannot_read_stops_the_import(rt: Runtime) -> None:
    stranger = Vault([Fernet.generate_key().decode()])
    with rt.db.transaction() as session:
        session.add(
            LicenseKey(
                product_id="intellij",
                ciphertext=stranger.seal("OLD"),
                imported_at=rt.clock.now(),
            )
        )
    before = snapshot(rt)

    with pytest.raises(VaultError, match="LICENSEBOT_ENCRYPTION_KEYS"):
        import_keys(rt, "intellij", ["NEW-KEY-1"], actor="t")
    assert snapshot(rt) == before


@pytest.fixture
def waitlisted(rt: Runtime) -> Iterator[int]:
    now = rt.clock.now()
    with rt.db.transaction() as session:
        req = LicenseRequest(
            product_id="intellij",
            requester_id="UEMP00001",
            requested_by="UEMP00001",
            status="waitlisted",
            route=["manager"],
            created_at=now,
            updated_at=now,
            waitlisted_at=now,
        )
        session.add(req)
        session.flush()
        assert req.id is not None
        request_id = req.id
    yield request_id


def test_new_keys_go_to_waitlisted_requests_in_the_same_import(
    rt: Runtime, waitlisted: int, env: dict[str, str | None]
) -> None:
    result = invoke(env, "keys", "import", "intellij", "-", input=f"{KEYS[0]}\n{KEYS[1]}\n")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Added 2 keys to intellij (0 duplicates skipped).",
        "1 waitlisted request(s) received a key.",
    ]
    with rt.db.read() as session:
        req = session.get(LicenseRequest, waitlisted)
    assert req is not None and req.status == "approved"


def test_keys_and_their_hand_out_commit_together(
    rt: Runtime, waitlisted: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(rt)

    def fail(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("delivery broke")

    monkeypatch.setattr("bot.delivery.assign_waitlisted", fail)
    with pytest.raises(RuntimeError):
        import_keys(rt, "intellij", KEYS, actor="t")
    assert snapshot(rt) == before
