"""Backups: a consistent snapshot of every table in one file; restore into an empty database.

The file is gzip'd JSON lines::

    {"format": "licensebot-backup", "version": 1, "revision": "0003", "created_at": "...",
     "source": "postgresql", "tables": {"product": 4, ...}, "sha256": "<hex of the body>"}
    {"table": "product", "columns": ["id", "name", ...]}      one line per table, in foreign-key
    ["intellij", "JetBrains IntelliJ IDEA Ultimate", ...]     order, then its rows by primary key
    ...

Every table of ``SQLModel.metadata`` is written, generically, so a new table is backed up without
touching this module (a column type it does not know is refused by name, and a test checks every
column of the schema). License keys stay Fernet tokens; the encryption keys and the audit keys
are not in the file, and must be kept separately.

Restoring writes neither an audit entry nor anything else of its own: the restored database is
exactly the source, so its audit chain head equals the one recorded before the backup.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

import storage.models  # noqa: F401  # registers every table on SQLModel.metadata
from bot.errors import BackupError, Conflict
from storage.db import Database, alembic_config

FORMAT = "licensebot-backup"
VERSION = 1
CHUNK = 1000
# Tables the migrations themselves fill (the audit chain's genesis row): a new database has
# these rows, so they do not make it "not empty", and restore replaces them with the backup's.
SEEDED_BY_MIGRATIONS = frozenset({"audit_head"})


@dataclass(frozen=True)
class BackupInfo:
    """What a backup holds: its schema revision, when it was taken, and rows per table."""

    revision: str
    created_at: datetime
    tables: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


# --- column values <-> JSON --------------------------------------------------------------------

Encode = Callable[[Any], Any]
Decode = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _utc_iso(value: datetime) -> str:
    # SQLite hands back naive datetimes that the app stored as UTC; PostgreSQL aware ones.
    aware = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.isoformat()


def _iso(value: date | time | datetime) -> str:
    return value.isoformat()


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(value: str) -> bytes:
    return base64.b64decode(value.encode("ascii"), validate=True)


def codec(column: sa.Column[Any]) -> tuple[Encode, Decode]:
    """How one column's values go into JSON and back, by the column's SQL type."""
    kind = column.type
    if isinstance(kind, TypeDecorator):  # e.g. SQLModel's AutoString: encode as what it stores
        kind = kind.impl_instance
    if isinstance(kind, sa.JSON):
        return _same, _same
    if isinstance(kind, sa.DateTime):
        return (_utc_iso if kind.timezone else _iso), datetime.fromisoformat
    if isinstance(kind, sa.Date):
        return _iso, date.fromisoformat
    if isinstance(kind, sa.Time):
        return _iso, time.fromisoformat
    if isinstance(kind, sa.Float):  # before Numeric: Float is a Numeric
        return _same, float
    if isinstance(kind, sa.Numeric):
        # A string, not a JSON number: Decimal("599.00") must not pass through a float.
        return str, Decimal
    if isinstance(kind, sa.LargeBinary):
        return _b64, _unb64
    if isinstance(kind, sa.Boolean | sa.Integer | sa.String):
        return _same, _same
    raise BackupError(
        f"Column {column.table.name}.{column.name} has the type {kind!r}, which backups do not "
        "handle yet; add its encoding to bot/backup.py."
    )


def tables() -> list[sa.Table]:
    """Every table, parents before children, so restore satisfies foreign keys as it inserts."""
    return list(SQLModel.metadata.sorted_tables)


# --- backup ------------------------------------------------------------------------------------


def create_backup(db: Database, path: Path, *, now: datetime) -> BackupInfo:
    """Write every table, read in ONE read-only transaction, to ``path`` (replaced atomically)."""
    counts: dict[str, int] = {}
    digest = hashlib.sha256()
    try:
        # The body goes to an unnamed temporary file first: the header carries its sha256 and
        # the row counts, known only once every table has been read.
        with tempfile.TemporaryFile(dir=path.parent) as body:

            def emit(item: object) -> None:
                data = _line(item)
                digest.update(data)
                body.write(data)

            with db.snapshot() as conn:
                revision = _revision(conn)
                if revision is None:
                    raise BackupError("The database has no licensebot schema; nothing to back up.")
                for table in tables():
                    encoders = [codec(c)[0] for c in table.columns]
                    emit({"table": table.name, "columns": [c.name for c in table.columns]})
                    counts[table.name] = 0
                    for row in _rows(conn, table):
                        emit(
                            [
                                None if v is None else enc(v)
                                for enc, v in zip(encoders, row, strict=True)
                            ]
                        )
                        counts[table.name] += 1
            info = BackupInfo(revision=revision, created_at=now, tables=counts)
            header = {
                "format": FORMAT,
                "version": VERSION,
                "revision": revision,
                "created_at": _utc_iso(now),
                "source": db.engine.dialect.name,
                "tables": counts,
                "sha256": digest.hexdigest(),
            }
            body.seek(0)
            _write_atomically(path, _line(header), body)
    except OSError as exc:
        raise BackupError(
            f"{path}: cannot write the backup there ({exc.strerror or exc})."
        ) from None
    return info


def _rows(conn: Connection, table: sa.Table) -> Iterator[sa.Row[Any]]:
    order = list(table.primary_key.columns) or list(table.columns)
    # yield_per: a large table streams instead of being loaded whole.
    yield from conn.execute(sa.select(table).order_by(*order).execution_options(yield_per=CHUNK))


def _line(item: object) -> bytes:
    # allow_nan=False: NaN is not JSON, and a backup must be readable by any JSON parser.
    text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8") + b"\n"


def _write_atomically(path: Path, header: bytes, body: IO[bytes]) -> None:
    # A failed or interrupted backup must never leave a half-written file under the real name.
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as raw:  # mkstemp makes it 0600: the file holds personal data
            with gzip.GzipFile(filename="", fileobj=raw, mode="wb") as packed:
                packed.write(header)
                shutil.copyfileobj(body, packed)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


# --- restore -----------------------------------------------------------------------------------


def read_header(path: Path) -> dict[str, Any]:
    """The header of the backup at ``path``, after checking the whole body against its sha256."""
    try:
        with gzip.open(path, "rb") as packed:
            header = _parse_header(path, packed.readline())
            digest = hashlib.sha256()
            while chunk := packed.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file.") from None
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; EOF: truncated
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from None
    if digest.hexdigest() != header["sha256"]:
        raise _damaged(path, "its content does not match the checksum in its header")
    return header


def _parse_header(path: Path, line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupError(
            f"{path} is not a licensebot backup (`licensebot backup FILE` makes one)."
        )
    if header.get("version") != VERSION:
        raise BackupError(
            f"{path} has backup format version {header.get('version')!r}, and this licensebot "
            f"reads version {VERSION}; restore it with the licensebot version that made it."
        )
    expected = {"revision": str, "created_at": str, "sha256": str, "tables": dict}
    for name, kind in expected.items():
        if not isinstance(header.get(name), kind):
            raise _damaged(path, f"its header has no valid {name!r}")
    return header


def _damaged(path: Path, why: str) -> BackupError:
    return BackupError(
        f"{path} is damaged or incomplete ({why}); nothing was restored. Use another copy."
    )


def restore_backup(db: Database, path: Path) -> BackupInfo:
    """Load the backup at ``path`` into ``db``, which must be empty and at the backup's revision.

    The file is checked whole (checksum, format, schema revision) before anything is written,
    and everything is written in one transaction: a file that fails half-way leaves the database
    exactly as it was.
    """
    header = read_header(path)
    revision: str = header["revision"]
    with db.transaction() as session:
        conn = session.connection()
        _check_revision(path, revision, _revision(conn))
        if not db.is_sqlite:
            # No other writer may add rows between the emptiness check and the commit.
            names = ", ".join(conn.dialect.identifier_preparer.quote(t.name) for t in tables())
            conn.exec_driver_sql(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
        _require_empty(conn)
        for table in tables():
            if table.name in SEEDED_BY_MIGRATIONS:
                conn.execute(table.delete())
        counts = _load(conn, path)
        if counts != header["tables"]:
            raise _damaged(path, "its row counts do not match its header")
        if not db.is_sqlite:
            _reset_sequences(conn)
    return BackupInfo(
        revision=revision,
        created_at=datetime.fromisoformat(header["created_at"]),
        tables=counts,
    )


def _check_revision(path: Path, revision: str, current: str | None) -> None:
    if revision == current:
        return
    script = ScriptDirectory.from_config(alembic_config())
    known = {s.revision for s in script.walk_revisions()}
    if revision not in known:
        raise BackupError(
            f"{path} was made by a newer licensebot (schema revision {revision}; this version "
            f"knows up to {script.get_current_head()}); upgrade licensebot, then restore it."
        )
    raise BackupError(
        f"{path} holds schema revision {revision}, but this licensebot's database is at "
        f"{current}; restore it with the licensebot version that made it, then upgrade to this "
        "version (it migrates the database when it starts)."
    )


def _require_empty(conn: Connection) -> None:
    filled = []
    for table in tables():
        if table.name in SEEDED_BY_MIGRATIONS:
            continue
        count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        if count:
            filled.append(f"{table.name}: {count}")
    if filled:
        raise Conflict(
            f"The database at DATABASE_URL is not empty ({', '.join(filled)} rows); restore only "
            "into a new, empty database, so nothing is overwritten or mixed. Nothing was restored."
        )


def _load(conn: Connection, path: Path) -> dict[str, int]:
    """Insert every row of the file; returns rows per table. Raises BackupError on bad content."""
    by_name = {t.name: t for t in tables()}
    counts: dict[str, int] = {}
    table: sa.Table | None = None
    columns: list[str] = []
    decoders: list[Decode] = []
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if table is not None and pending:
            conn.execute(table.insert(), pending)  # executemany: one round trip per chunk
            pending.clear()

    with gzip.open(path, "rb") as packed:
        packed.readline()  # the header, checked by read_header
        for number, raw in enumerate(packed, start=2):
            try:
                item = json.loads(raw)
            except ValueError:
                raise _damaged(path, f"line {number} is not JSON") from None
            if isinstance(item, dict):
                flush()
                table, columns = _section(path, number, item, by_name, counts)
                decoders = [codec(table.c[name])[1] for name in columns]
                counts[table.name] = 0
            elif isinstance(item, list) and table is not None and len(item) == len(columns):
                try:
                    values = [
                        None if v is None else dec(v) for dec, v in zip(decoders, item, strict=True)
                    ]
                except (ValueError, TypeError, ArithmeticError) as exc:  # decimal errors
                    raise _damaged(
                        path, f"line {number}: a {table.name} value is unusable ({exc})"
                    ) from None
                pending.append(dict(zip(columns, values, strict=True)))
                counts[table.name] += 1
                if len(pending) >= CHUNK:
                    flush()
            else:
                raise _damaged(path, f"line {number} is not a row of {len(columns)} values")
        flush()
    missing = sorted(set(by_name) - set(counts))
    if missing:
        raise _damaged(path, f"it has no section for the table(s) {', '.join(missing)}")
    return counts


def _section(
    path: Path,
    number: int,
    item: dict[str, Any],
    by_name: dict[str, sa.Table],
    seen: dict[str, int],
) -> tuple[sa.Table, list[str]]:
    name, columns = item.get("table"), item.get("columns")
    table = by_name.get(name) if isinstance(name, str) else None
    if table is None or name in seen:
        raise _damaged(path, f"line {number} names an unknown or repeated table {name!r}")
    if not isinstance(columns, list) or sorted(map(str, columns)) != sorted(table.c.keys()):
        raise _damaged(path, f"line {number}: the columns of {name} differ from this schema's")
    return table, [str(c) for c in columns]


def _reset_sequences(conn: Connection) -> None:
    """Point each PostgreSQL id sequence past the restored ids, so new rows get fresh ones."""
    for table in tables():
        for column in table.primary_key.columns:
            if not isinstance(column.type, sa.Integer):
                continue
            sequence = conn.execute(
                sa.select(sa.func.pg_get_serial_sequence(table.name, column.name))
            ).scalar_one()
            if sequence is None:
                continue
            highest = conn.execute(sa.select(sa.func.max(column))).scalar_one()
            # is_called=false: the next nextval() returns exactly this value.
            conn.execute(sa.select(sa.func.setval(sequence, (highest or 0) + 1, False)))
