"""`licensebot backup` / `restore`: one consistent snapshot, restored whole into an empty DB."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import event, func, select
from sqlmodel import SQLModel, col

from bot import approvals, backup, delivery, keys, requests, roles
from bot.cli import cli
from bot.clock import ManualClock
from bot.errors import BackupError, Conflict
from bot.runtime import Runtime
from storage import audit
from storage.audit import AuditSigner
from storage.db import Database
from storage.models import Assignment, LicenseKey, ProcessedEvent
from storage.vault import Vault
from tests import company
from tests.company import EMPLOYEE, IT1, MANAGER, NEWHIRE
from tests.conftest import START, reset_database

ALL_KEYS = [*company.INTELLIJ_KEYS, *company.SUBLIME_KEYS]


def postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("set TEST_DATABASE_URL to a PostgreSQL database to run this on PostgreSQL")
    return url


@pytest.fixture
def open_runtimes() -> Iterator[dict[str, Runtime]]:
    """Runtimes on databases of either kind, by name, closed at the end."""
    made: dict[str, Runtime] = {}
    yield made
    for rt in made.values():
        rt.db.dispose()


def runtime_on(
    made: dict[str, Runtime], name: str, url: str, encryption_key: str, audit_key: str
) -> Runtime:
    db = Database(url)
    db.upgrade()
    made[name] = Runtime(
        db=db,
        vault=Vault([encryption_key]),
        clock=ManualClock(START),
        audit_keys=AuditSigner([audit_key]),
        admins=frozenset({company.ADMIN}),
        it_channel="CIT00001",
    )
    return made[name]


def url_of(kind: str, path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{path}"
    url = postgres_url()
    reset_database(url)
    return url


def populate(rt: Runtime) -> None:
    """Rows in every kind of table: a key handed out and revealed, a pending request, roles."""
    company.seed(rt)
    done = requests.submit(rt, asked_by=EMPLOYEE, product_id="intellij", justification="API")
    approvals.decide(rt, request_id=done.request_id, step=0, actor=MANAGER, approve=True)
    approvals.decide(rt, request_id=done.request_id, step=1, actor=IT1, approve=True)
    requests.submit(rt, asked_by=NEWHIRE, product_id="figma", justification="design \u2028 ok")
    roles.grant(rt, IT1, "auditor", actor="test")
    with rt.db.transaction() as session:
        session.add(ProcessedEvent(event_id="Ev0001", received_at=rt.clock.now()))
    delivery.reveal_key(rt, actor=EMPLOYEE, assignment_id=assignment_of(rt, EMPLOYEE))


def assignment_of(rt: Runtime, user: str) -> int:
    with rt.db.read() as session:
        found = session.exec(select(Assignment.id).where(Assignment.user_id == user)).one()
    return int(found[0])


def contents(db: Database) -> dict[str, list[list[Any]]]:
    """Every row of every table, as JSON values, so SQLite and PostgreSQL compare equal."""
    out: dict[str, list[list[Any]]] = {}
    with db.snapshot() as conn:
        for table in SQLModel.metadata.sorted_tables:
            encoders = [backup.codec(c)[0] for c in table.columns]
            rows = conn.execute(select(table).order_by(*table.primary_key.columns))
            out[table.name] = [
                [None if v is None else enc(v) for enc, v in zip(encoders, row, strict=True)]
                for row in rows
            ]
    return out


def invoke(url: str, *args: str) -> Result:
    # No LICENSEBOT_ENCRYPTION_KEYS: backup and restore never need to decrypt.
    env = {"DATABASE_URL": url, "LICENSEBOT_ENCRYPTION_KEYS": None}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def rewrite(path: Path, edit: Any) -> None:
    """Change a backup's header and body lines with ``edit`` and give it a valid checksum."""
    header, *body = gzip.decompress(path.read_bytes()).split(b"\n")[:-1]
    fields = json.loads(header)
    lines = [json.loads(line) for line in body]
    edit(fields, lines)
    data = b"".join(json.dumps(item).encode() + b"\n" for item in lines)
    fields["sha256"] = hashlib.sha256(data).hexdigest()
    path.write_bytes(gzip.compress(json.dumps(fields).encode() + b"\n" + data))


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_kind", "target_kind"),
    [("sqlite", "sqlite"), ("sqlite", "postgresql"), ("postgresql", "sqlite")],
)
def test_round_trip_restores_everything_and_keys_still_reveal(
    source_kind: str,
    target_kind: str,
    tmp_path: Path,
    open_runtimes: dict[str, Runtime],
    encryption_key: str,
    audit_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    source = runtime_on(
        open_runtimes,
        "source",
        url_of(source_kind, tmp_path / "source.db"),
        encryption_key,
        audit_key,
    )
    populate(source)
    file = tmp_path / "licensebot.backup"

    made = invoke(source.db.url, "backup", str(file))

    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("Backed up ")
    assert "It holds no encryption or audit keys" in made.stdout
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    expected = contents(source.db)
    with source.db.read() as session:
        source_head = audit.verify(session, source.audit_keys).head
    source.db.dispose()
    del open_runtimes["source"]

    target_url = url_of(target_kind, tmp_path / "target.db")
    restored = invoke(target_url, "restore", str(file))

    assert restored.exit_code == 0, restored.output
    rows = sum(len(r) for r in expected.values())
    assert restored.stdout.startswith(f"Restored {rows} rows into {len(expected)} tables")
    target = runtime_on(open_runtimes, "target", target_url, encryption_key, audit_key)
    assert contents(target.db) == expected
    with target.db.read() as session:
        report = audit.verify(session, target.audit_keys)
    assert report.first_bad is None and report.head == source_head
    revealed = delivery.reveal_key(
        target, actor=EMPLOYEE, assignment_id=assignment_of(target, EMPLOYEE)
    )
    assert revealed.key == company.INTELLIJ_KEYS[0]
    with target.db.read() as session:
        tokens = session.exec(select(LicenseKey.ciphertext).order_by(col(LicenseKey.id))).all()
    assert [target.vault.reveal(t) for (t,) in tokens] == ALL_KEYS

    # New rows get fresh ids (PostgreSQL's sequences were moved past the restored ones).
    added = keys.import_keys(target, "intellij", ["IJ-NEW-AFTER-RESTORE"], actor="test")
    assert added.added == 1
    fresh = requests.submit(target, asked_by=NEWHIRE, product_id="intellij", justification="")
    with target.db.read() as session:
        newest_key = session.exec(select(func.max(LicenseKey.id))).one()[0]
    assert newest_key == len(ALL_KEYS) + 1
    assert fresh.request_id == len(expected["license_request"]) + 1

    output = made.output + restored.output + caplog.text
    for secret in (*ALL_KEYS, encryption_key, audit_key):
        assert secret not in output


def test_the_backup_file_holds_no_plaintext_key_and_no_secret(
    runtime: Runtime, tmp_path: Path, encryption_key: str, audit_key: str
) -> None:
    populate(runtime)
    file = tmp_path / "b.backup"
    backup.create_backup(runtime.db, file, now=runtime.clock.now())

    raw = file.read_bytes()
    unpacked = gzip.decompress(raw)
    for secret in (*ALL_KEYS, encryption_key, audit_key):
        assert secret.encode() not in raw and secret.encode() not in unpacked
    # ...and the keys ARE in it, as the ciphertext stored in the database.
    with runtime.db.read() as session:
        tokens = session.exec(select(LicenseKey.ciphertext)).all()
    assert all(token.encode() in unpacked for (token,) in tokens)


def test_the_header_says_what_the_file_holds(runtime: Runtime, tmp_path: Path) -> None:
    populate(runtime)
    file = tmp_path / "b.backup"
    info = backup.create_backup(runtime.db, file, now=runtime.clock.now())

    header_line, body = gzip.decompress(file.read_bytes()).split(b"\n", 1)
    header = json.loads(header_line)
    assert header["format"] == "licensebot-backup" and header["version"] == 1
    assert header["revision"] == info.revision
    assert header["created_at"] == "2026-11-02T09:00:00+00:00"
    assert header["sha256"] == hashlib.sha256(body).hexdigest()
    assert list(header["tables"]) == [t.name for t in SQLModel.metadata.sorted_tables]
    assert header["tables"] == {name: len(rows) for name, rows in contents(runtime.db).items()}
    assert header["tables"]["license_key"] == len(ALL_KEYS)


def test_every_column_of_the_schema_can_be_backed_up() -> None:
    # A new table is included automatically; a new column TYPE needs an encoding, and fails here.
    for table in SQLModel.metadata.sorted_tables:
        for column in table.columns:
            backup.codec(column)


def test_the_snapshot_is_one_transaction(runtime: Runtime, tmp_path: Path) -> None:
    populate(runtime)
    expected = contents(runtime.db)
    wrote: list[bool] = []

    def write_meanwhile(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        # Right before the backup reads license_key, another connection commits new rows to it
        # and to a table read even later; the backup must see neither.
        if wrote or "FROM license_key" not in statement:
            return
        wrote.append(True)
        keys.import_keys(runtime, "intellij", ["IJ-WRITTEN-DURING-BACKUP"], actor="test")

    file = tmp_path / "b.backup"
    event.listen(runtime.db.engine, "before_cursor_execute", write_meanwhile)
    try:
        info = backup.create_backup(runtime.db, file, now=runtime.clock.now())
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", write_meanwhile)

    assert wrote
    assert info.tables == {name: len(rows) for name, rows in expected.items()}
    assert contents(runtime.db)["license_key"] != expected["license_key"]  # it did commit


# --- refusals ---------------------------------------------------------------------------------


@pytest.fixture
def made(runtime: Runtime, tmp_path: Path) -> Path:
    populate(runtime)
    file = tmp_path / "b.backup"
    backup.create_backup(runtime.db, file, now=runtime.clock.now())
    return file


@pytest.fixture
def empty_target(tmp_path: Path) -> Iterator[Database]:
    # SQLite whatever TEST_DATABASE_URL says: the source of `made` may be that database.
    db = Database(f"sqlite:///{tmp_path / 'target.db'}")
    db.upgrade()
    yield db
    db.dispose()


def test_restore_refuses_a_database_that_is_not_empty(
    runtime: Runtime, made: Path, database_url: str
) -> None:
    before = contents(runtime.db)

    result = invoke(database_url, "restore", str(made))

    assert result.exit_code == 1
    assert result.stderr.startswith("licensebot: The database at DATABASE_URL is not empty (")
    assert "restore only into a new, empty database" in result.stderr
    assert "Nothing was restored." in result.stderr
    assert contents(runtime.db) == before
    with pytest.raises(Conflict, match="license_key: 3"):
        backup.restore_backup(runtime.db, made)


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda b: b[: len(b) // 2], "is damaged or incomplete (EOFError"),
        (lambda b: b[:20] + bytes([b[20] ^ 0xFF]) + b[21:], "is damaged or incomplete"),
        (lambda b: b"", "is not a licensebot backup"),
        (lambda b: b"not gzip at all\n", "is damaged or incomplete (BadGzipFile"),
        (
            lambda b: gzip.compress(gzip.decompress(b).replace(b"Figma", b"Fugma")),
            "its content does not match the checksum in its header",
        ),
        (
            lambda b: gzip.compress(gzip.decompress(b).rsplit(b"\n", 2)[0] + b"\n"),
            "its content does not match the checksum in its header",
        ),
    ],
    ids=["truncated", "flipped-byte", "empty", "not-gzip", "edited", "last-line-cut"],
)
def test_restore_refuses_a_damaged_file_and_writes_nothing(
    made: Path, empty_target: Database, damage: Any, says: str
) -> None:
    made.write_bytes(damage(made.read_bytes()))
    before = contents(empty_target)

    with pytest.raises(BackupError) as refused:
        backup.restore_backup(empty_target, made)

    assert says in refused.value.message
    assert contents(empty_target) == before


def test_a_file_that_fails_half_way_through_restores_nothing(
    made: Path, empty_target: Database
) -> None:
    # A valid checksum over bad content, in the last table that has a row and a timestamp:
    # the rows of the tables before it are inserted by the time it fails.
    spoiled: list[str] = []

    def spoil(_header: dict[str, Any], lines: list[Any]) -> None:
        name, columns = "", []
        last_row: list[Any] | None = None
        target: tuple[list[Any], int, str] | None = None
        for line in [*lines, {}]:
            if isinstance(line, dict):
                times = [i for i, c in enumerate(columns) if c.endswith("_at")]
                if last_row is not None and times:
                    target = (last_row, times[0], name)
                name, columns, last_row = line.get("table", ""), line.get("columns", []), None
            else:
                last_row = line
        assert target is not None
        row, index, table = target
        row[index] = "not a time at all"
        spoiled.append(table)

    rewrite(made, spoil)
    assert spoiled[0] != SQLModel.metadata.sorted_tables[0].name
    before = contents(empty_target)

    with pytest.raises(BackupError, match="value is unusable"):
        backup.restore_backup(empty_target, made)

    assert contents(empty_target) == before


def test_restore_refuses_a_file_from_a_newer_schema(
    made: Path, empty_target: Database, tmp_path: Path
) -> None:
    rewrite(made, lambda header, _lines: header.update(revision="9999_from_the_future"))

    result = invoke(str(empty_target.url), "restore", str(made))

    assert result.exit_code == 1
    assert result.stderr == (
        f"licensebot: {made} was made by a newer licensebot (schema revision "
        f"9999_from_the_future; this version knows up to {revision_of(empty_target)}); upgrade "
        "licensebot, then restore it.\n"
    )
    assert all(not rows for name, rows in contents(empty_target).items() if name != "audit_head")


def test_restore_refuses_a_file_from_an_older_schema(made: Path, empty_target: Database) -> None:
    rewrite(made, lambda header, _lines: header.update(revision="0001"))

    with pytest.raises(BackupError, match="holds schema revision 0001, but this licensebot's"):
        backup.restore_backup(empty_target, made)


def test_restore_refuses_a_file_that_is_not_a_backup(
    empty_target: Database, tmp_path: Path
) -> None:
    other = tmp_path / "other.gz"
    other.write_bytes(gzip.compress(b'{"hello": "world"}\n'))
    missing = tmp_path / "missing.backup"

    with pytest.raises(BackupError, match="is not a licensebot backup"):
        backup.restore_backup(empty_target, other)
    with pytest.raises(BackupError, match=r"missing\.backup: no such file"):
        backup.restore_backup(empty_target, missing)


def test_a_backup_that_cannot_be_written_leaves_no_file(runtime: Runtime, tmp_path: Path) -> None:
    result = invoke(runtime.db.url, "backup", str(tmp_path / "no" / "such" / "dir.backup"))

    assert result.exit_code == 1
    assert result.stderr.startswith("licensebot: ")
    assert "cannot write the backup there" in result.stderr
    assert list(tmp_path.glob("**/*.partial")) == []


def revision_of(db: Database) -> str:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    assert current is not None
    return current
