"""The people directory: who is who, and who their manager is (imported from HR's CSV)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import Session

from bot.csv_rows import data_records
from bot.errors import DirectoryError
from bot.runtime import Runtime
from storage import audit
from storage.models import Person

# Slack user IDs start with U (or W on Enterprise Grid); the column is 32 characters wide.
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,31}")
_USER_ID_RULE = "U or W, then 2 to 31 capital letters or digits"
# C0 and C1 controls (with DEL) and lone surrogates. PostgreSQL refuses NUL in text, psycopg cannot
# encode a surrogate, and the rest are invisible in Slack yet break exact matches and terminals.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Values quoted back in an error are cut: a megabyte-long cell must not make a megabyte message.
_QUOTED_AT_MOST = 40

COLUMNS = ("slack_user_id", "email", "name", "manager_slack_user_id", "department")
_MAX_REPORTED = 20
_FIELDS = ("email", "name", "manager_slack_user_id", "department")
# The text columns are unbounded VARCHARs; these limits keep one bad cell from becoming a name
# that fills a Slack card. 254 is the longest address SMTP can deliver (RFC 5321 path limit).
# The user-ID columns hold 32 characters, which _USER_ID already enforces.
MAX_LENGTH = {"email": 254, "name": 200, "department": 200}


def looks_like_user_id(text: str) -> bool:
    return _USER_ID.fullmatch(text) is not None


def control_character_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a control character or lone surrogate in it), or None."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    char = found.group()
    kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"contains {kind} (U+{ord(char):04X}) at character {found.start() + 1}; remove it"


def quoted(text: str) -> str:
    """``text`` quoted for an error message: escapes shown, and cut if it is long."""
    if len(text) > _QUOTED_AT_MOST:
        text = text[: _QUOTED_AT_MOST - 1] + "…"
    return repr(text)


@dataclass(frozen=True)
class DirectoryImportResult:
    added: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class _Row:
    line: int
    slack_user_id: str
    email: str
    name: str
    manager_slack_user_id: str | None
    department: str


def import_directory(
    rt: Runtime, text: str, *, actor: str, source: str = "directory CSV"
) -> DirectoryImportResult:
    """Upsert every person in ``text`` (CSV with a header), or raise and write nothing."""
    rows = _parse(text, source)
    now = rt.clock.now()
    with rt.db.transaction() as session:
        existing = _existing(session)
        _check_managers(rows, set(existing), source)
        new: list[dict[str, object]] = []
        changed: list[dict[str, object]] = []
        for row in rows:
            values = {
                "email": row.email,
                "name": row.name,
                "manager_slack_user_id": row.manager_slack_user_id,
                "department": row.department,
            }
            old = existing.get(row.slack_user_id)
            if old is None:
                new.append({"slack_user_id": row.slack_user_id, **values, "updated_at": now})
            elif old != tuple(values[f] for f in _FIELDS):
                changed.append({"b_id": row.slack_user_id, **values, "updated_at": now})
        table = Person.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
        if new:
            session.execute(insert(table), new)
        if changed:
            # executemany through bound parameters: one statement for every changed person.
            session.execute(
                update(table).where(table.c.slack_user_id == bindparam("b_id")),
                changed,
            )
        result = DirectoryImportResult(
            added=len(new), updated=len(changed), unchanged=len(rows) - len(new) - len(changed)
        )
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="directory.imported",
            subject="directory",
            details={
                "source": source,
                "rows": len(rows),
                "added": result.added,
                "updated": result.updated,
                "unchanged": result.unchanged,
            },
        )
    return result


def _existing(session: Session) -> dict[str, tuple[str, str, str | None, str]]:
    table = Person.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    rows = session.execute(select(table.c.slack_user_id, *(table.c[f] for f in _FIELDS))).all()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def _fail(source: str, problems: list[str]) -> DirectoryError:
    shown = "; ".join(problems[:_MAX_REPORTED])
    more = len(problems) - _MAX_REPORTED
    if more > 0:
        shown += f"; and {more} more"
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return DirectoryError(f"{source}: {count}, nothing was imported: {shown}")


def _parse(text: str, source: str) -> list[_Row]:
    # Excel writes a byte-order mark at the start of "CSV UTF-8" files.
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise DirectoryError(
            f"{source} is empty; it needs a header line: {','.join(COLUMNS)}, "
            "then one line per person."
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
        column = _columns(header, source)
        problems: list[str] = []
        rows: list[_Row] = []
        first_line: dict[str, int] = {}
        for line, record in data_records(reader):
            if len(record) != len(header):
                problems.append(f"line {line}: expected {len(header)} fields, found {len(record)}")
                continue
            row, row_problems = _row(line, {name: record[i].strip() for name, i in column.items()})
            if row_problems:
                problems.extend(row_problems)
                continue
            assert row is not None
            seen = first_line.get(row.slack_user_id)
            if seen is not None:
                problems.append(f"line {line}: {row.slack_user_id} is already on line {seen}")
                continue
            first_line[row.slack_user_id] = line
            rows.append(row)
    except csv.Error as exc:
        raise DirectoryError(
            f"{source}: line {reader.line_num}: not valid CSV ({exc}); nothing was imported."
        ) from None
    if problems:
        raise _fail(source, problems)
    if not rows:
        raise DirectoryError(f"{source} has a header but no people; nothing was imported.")
    return rows


def _columns(header: list[str], source: str) -> dict[str, int]:
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        names = ", ".join(repr(h) for h in unknown)
        raise DirectoryError(
            f"{source}: line 1: unknown column(s) {names}; the columns are {','.join(COLUMNS)} "
            "(a header line is required)."
        )
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DirectoryError(f"{source}: line 1: column(s) repeated: {', '.join(repeated)}.")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DirectoryError(f"{source}: line 1: missing column(s): {', '.join(missing)}.")
    return {name: header.index(name) for name in COLUMNS}


def _row(line: int, fields: dict[str, str]) -> tuple[_Row | None, list[str]]:
    problems: list[str] = []
    # A field that cannot be stored is reported once, and not checked further.
    storable: dict[str, str] = {}
    for column, value in fields.items():
        problem = control_character_problem(value)
        limit = MAX_LENGTH.get(column)
        if problem is None and limit is not None and len(value) > limit:
            problem = f"is {len(value)} characters long; at most {limit} are allowed"
        if problem is None:
            storable[column] = value
        else:
            problems.append(f"line {line}: {column} {problem}")
    user = storable.get("slack_user_id")
    email = storable.get("email")
    name = storable.get("name")
    manager = storable.get("manager_slack_user_id")
    if user is not None and not looks_like_user_id(user):
        problems.append(
            f"line {line}: slack_user_id {quoted(user)} is not a Slack user ID ({_USER_ID_RULE})"
        )
    if email is not None and "@" not in email.strip("@"):
        problems.append(f"line {line}: email {quoted(email)} is not an email address")
    if name is not None and not name:
        problems.append(f"line {line}: name is empty")
    if manager and not looks_like_user_id(manager):
        problems.append(
            f"line {line}: manager_slack_user_id {quoted(manager)} is not a Slack user ID "
            f"({_USER_ID_RULE})"
        )
    elif manager and manager == user:
        problems.append(f"line {line}: {user} cannot be their own manager")
    if problems:
        return None, problems
    return (
        _Row(
            line=line,
            slack_user_id=fields["slack_user_id"],
            email=fields["email"],
            name=fields["name"],
            manager_slack_user_id=fields["manager_slack_user_id"] or None,
            department=fields["department"],
        ),
        [],
    )


def _check_managers(rows: list[_Row], known: set[str], source: str) -> None:
    in_file = {r.slack_user_id for r in rows}
    problems = [
        f"line {r.line}: manager {r.manager_slack_user_id} is neither in this file "
        "nor in the directory"
        for r in rows
        if r.manager_slack_user_id
        and r.manager_slack_user_id not in in_file
        and r.manager_slack_user_id not in known
    ]
    if problems:
        raise _fail(source, problems)
