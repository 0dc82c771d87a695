"""Usage signals: the last time each person used each product, from CSV, the API and reveals.

A signal only ever moves forward: an older ``last_used_at`` than the one stored is ignored, so
sources can be replayed or arrive out of order without making an active seat look idle.

Timestamps are ISO 8601. A naive one (no offset) is read as UTC, because exports from admin
consoles and spreadsheets usually drop the offset and UTC is the only zone we can assume without
asking. One more than a day ahead of our clock is refused: it is a wrong time zone or a wrong
column, and stored it would keep the seat "in use" until that date.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from bot.csv_rows import data_records
from bot.directory import control_character_problem, looks_like_user_id, quoted
from bot.errors import InputError
from bot.runtime import Runtime
from storage import audit
from storage.models import Assignment, Person, Product, UsageSignal

USER_COLUMNS = ("slack_user_id", "email")
_MAX_REPORTED = 20
# How far ahead of our clock a signal may be: clocks of exporting systems drift a little.
FUTURE_SLACK = timedelta(days=1)
# Rows per INSERT ... ON CONFLICT and per lookup of stored signals: bounded statements
# (SQLite allows at most 32766 bound parameters) whatever the size of the file.
_BATCH = 1000
_SOURCE_WIDTH = 32  # usage_signal.source


class UsageImportError(InputError):
    """Usage signals that cannot be recorded; nothing was recorded. ``problems`` lists each."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


@dataclass(frozen=True)
class UsageRow:
    """One signal as given: ``where`` names it in errors ("line 3", "item 0")."""

    where: str
    product_id: str
    user: str  # a Slack user ID or an email address from the directory
    last_used_at: str  # ISO 8601 text, checked by ``record_usage``
    # Set by a parser that could not read the row (a field short, a control character): it is
    # reported in order with the others, so one message lists every problem of the input.
    problem: str | None = None


@dataclass(frozen=True)
class UsageResult:
    recorded: int  # signals that moved a (product, user) forward, or were new
    ignored_older: int  # signals not newer than what was already known


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 date or date-time in UTC (naive means UTC), or None if it is not one."""
    try:
        # Python 3.11 reads "Z", a "T" or " " separator, and plain dates (their midnight).
        parsed = datetime.fromisoformat(text.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset pushing past year 1 or 9999
        return None


def record_usage(
    rt: Runtime,
    rows: Iterable[UsageRow],
    *,
    source: str,
    actor: str,
    label: str | None = None,
) -> UsageResult:
    """Record every row, keeping the newest ``last_used_at`` per (product, user).

    All or nothing: any unknown product, unknown user or bad timestamp raises
    ``UsageImportError`` listing the problems, and nothing is written. ``source`` is stored
    with each signal (csv, api, ...); ``label`` (a file name) is how messages name the input.
    """
    if not source or len(source) > _SOURCE_WIDTH:
        raise ValueError(f"source must be 1 to {_SOURCE_WIDTH} characters")  # a caller's bug
    given = list(rows)
    label = label or source
    now = rt.clock.now()
    with rt.db.transaction() as session:
        latest, duplicates = _validate(session, given, now=now, label=label)
        if not given:
            return UsageResult(recorded=0, ignored_older=0)
        recorded = upsert_signals(session, latest, source=source, now=now)
        result = UsageResult(recorded=recorded, ignored_older=len(given) - recorded)
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="usage.recorded",
            subject=f"usage:{source}",
            details={
                "source": source,
                "input": label,
                "rows": len(given),
                "recorded": result.recorded,
                "ignored_older": result.ignored_older,
                "duplicates_in_input": duplicates,
            },
        )
    return result


def upsert_signals(
    session: Session,
    signals: Mapping[tuple[str, str], datetime],
    *,
    source: str,
    now: datetime,
) -> int:
    """Store each (product_id, user_id) -> last use that is newer than the stored one.

    Returns how many moved forward. The products and users must exist (callers check). The
    ``WHERE`` of the upsert keeps the maximum even against a concurrent writer; the lookup
    before it only serves the count.
    """
    if not signals:
        return 0
    table = UsageSignal.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    # Sorted: concurrent upserts then lock the rows they share in the same order (no deadlock).
    items = sorted((key, at.astimezone(UTC)) for key, at in signals.items())
    newer: list[dict[str, object]] = []
    for start in range(0, len(items), _BATCH):
        chunk = items[start : start + _BATCH]
        stored = _stored(session, {user for (_, user), _ in chunk})
        for (product_id, user_id), at in chunk:
            known = stored.get((product_id, user_id))
            if known is None or at > known:
                newer.append(
                    {
                        "product_id": product_id,
                        "user_id": user_id,
                        "last_used_at": at,
                        "source": source,
                        "updated_at": now,
                    }
                )
    dialect = session.get_bind().dialect.name
    for start in range(0, len(newer), _BATCH):
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.product_id, table.c.user_id],
            set_={
                "last_used_at": stmt.excluded.last_used_at,
                "source": stmt.excluded.source,
                "updated_at": stmt.excluded.updated_at,
            },
            # Only forward: the source and update time stay those of the newest signal.
            where=table.c.last_used_at < stmt.excluded.last_used_at,
        )
        session.execute(stmt, newer[start : start + _BATCH])
    copy_to_seats(session, [(str(r["product_id"]), str(r["user_id"])) for r in newer])
    return len(newer)


def copy_to_seats(session: Session, keys: Sequence[tuple[str, str]]) -> None:
    """Bring the held seats of these (product_id, user_id) pairs in step with their signals.

    ``assignment.last_used_at`` is a copy of the holder's ``usage_signal.last_used_at`` (the
    seat scans read it without a join). One UPDATE per batch of pairs, reading the stored
    signal, so the seat gets exactly what the signal holds, never an older value than it.
    """
    seat = Assignment.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    signal = UsageSignal.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    latest = (
        select(signal.c.last_used_at)
        .where(signal.c.product_id == seat.c.product_id, signal.c.user_id == seat.c.user_id)
        .scalar_subquery()
    )
    for start in range(0, len(keys), _BATCH):
        chunk = sorted(keys[start : start + _BATCH])  # the same lock order as the upsert
        session.execute(
            update(seat)
            .where(
                seat.c.released_at.is_(None),
                tuple_(seat.c.product_id, seat.c.user_id).in_(chunk),
            )
            .values(last_used_at=latest)
        )


def last_use(session: Session, product_id: str, user_id: str) -> datetime | None:
    """The person's last known use of the product: what a seat assigned to them now starts
    with (``assignment.last_used_at``)."""
    table = UsageSignal.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    found: datetime | None = session.execute(
        select(table.c.last_used_at).where(
            table.c.product_id == product_id, table.c.user_id == user_id
        )
    ).scalar_one_or_none()
    return found


def record_signal(
    session: Session, *, product_id: str, user_id: str, at: datetime, source: str, now: datetime
) -> None:
    """One signal inside the caller's transaction (a key reveal is a use of that product)."""
    upsert_signals(session, {(product_id, user_id): at}, source=source, now=now)


def _stored(session: Session, users: set[str]) -> dict[tuple[str, str], datetime]:
    table = UsageSignal.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    rows = session.execute(
        select(table.c.product_id, table.c.user_id, table.c.last_used_at).where(
            table.c.user_id.in_(sorted(users))
        )
    ).all()
    # SQLite hands back naive datetimes; every stored time is UTC.
    return {(r[0], r[1]): _aware(r[2]) for r in rows}


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _validate(
    session: Session, rows: list[UsageRow], *, now: datetime, label: str
) -> tuple[dict[tuple[str, str], datetime], int]:
    """The newest time per (product, user) and how many rows repeated a pair, or raise."""
    product_table = Product.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    products = set(session.scalars(select(product_table.c.id)).all())
    by_id, by_email = _directory(session)
    latest: dict[tuple[str, str], datetime] = {}
    duplicates = 0
    problems: list[str] = []
    horizon = now + FUTURE_SLACK
    for row in rows:
        if row.problem is not None:
            problems.append(f"{row.where}: {row.problem}")
            continue
        row_problems: list[str] = []
        if row.product_id not in products:
            row_problems.append(f"{row.where}: no product {quoted(row.product_id)} in the catalog")
        user_id, user_problem = _resolve(row.user, by_id, by_email)
        if user_problem:
            row_problems.append(f"{row.where}: {user_problem}")
        at = parse_time(row.last_used_at)
        if at is None:
            row_problems.append(
                f"{row.where}: last_used_at {quoted(row.last_used_at)} is not an ISO 8601 "
                "date-time (like 2026-11-02T09:30:00Z; without an offset it is read as UTC)"
            )
        elif at > horizon:
            row_problems.append(
                f"{row.where}: last_used_at {at.isoformat()} is more than a day in the future; "
                "check the exporting system's clock and time zone"
            )
        if row_problems:
            problems.extend(row_problems)
            continue
        assert user_id is not None and at is not None
        key = (row.product_id, user_id)
        if key in latest:
            duplicates += 1
            latest[key] = max(latest[key], at)
        else:
            latest[key] = at
    if problems:
        raise _fail(label, problems)
    return latest, duplicates


def _directory(session: Session) -> tuple[set[str], dict[str, list[str]]]:
    # Two narrow columns of the whole directory in one query: cheaper than a lookup per row, and
    # a directory is thousands of people, not millions.
    table = Person.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    by_id: set[str] = set()
    by_email: dict[str, list[str]] = {}
    for user_id, email in session.execute(select(table.c.slack_user_id, table.c.email)).all():
        by_id.add(user_id)
        by_email.setdefault(email.strip().lower(), []).append(user_id)
    return by_id, by_email


def _resolve(
    user: str, by_id: set[str], by_email: dict[str, list[str]]
) -> tuple[str | None, str | None]:
    """The Slack user ID for ``user`` (an ID or an email), or why there is none."""
    if looks_like_user_id(user):
        if user in by_id:
            return user, None
        return None, f"user {user} is not in the directory (`licensebot directory import`)"
    if "@" in user:
        found = by_email.get(user.strip().lower(), [])
        if len(found) == 1:
            return found[0], None
        if found:
            return None, (
                f"email {quoted(user)} belongs to {len(found)} people in the directory "
                f"({', '.join(sorted(found))}); give the Slack user ID instead"
            )
        return None, f"email {quoted(user)} is not in the directory (`licensebot directory import`)"
    return None, (
        f"user {quoted(user)} is neither a Slack user ID (like U012AB3CD) nor an email address"
    )


def _fail(label: str, problems: list[str]) -> UsageImportError:
    shown = "; ".join(problems[:_MAX_REPORTED])
    more = len(problems) - _MAX_REPORTED
    if more > 0:
        shown += f"; and {more} more"
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return UsageImportError(f"{label}: {count}, nothing was recorded: {shown}", problems)


# --- CSV --------------------------------------------------------------------------------------


def parse_csv(text: str, label: str) -> list[UsageRow]:
    """Rows of a usage CSV: header ``product_id,slack_user_id,last_used_at`` (or ``email``
    instead of ``slack_user_id``), in any column order.

    A bad header or unreadable CSV raises at once; a row that cannot be read comes back with
    its ``problem`` set, for ``record_usage`` to report by line with the rest."""
    # Excel writes a byte-order mark at the start of "CSV UTF-8" files.
    text = text.removeprefix("\ufeff")
    example = "product_id,slack_user_id,last_used_at"
    if not text.strip():
        raise UsageImportError(
            f"{label} is empty; it needs a header line ({example}, or email instead of "
            "slack_user_id), then one line per signal.",
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[UsageRow] = []
    try:
        header = [h.strip().lower() for h in next(reader)]
        product_at, user_at, time_at = _columns(header, label)
        for line, record in data_records(reader):
            where = f"line {line}"
            if len(record) != len(header):
                problem = f"expected {len(header)} fields, found {len(record)}"
                rows.append(UsageRow(where, "", "", "", problem=problem))
                continue
            product, user, at = (record[i].strip() for i in (product_at, user_at, time_at))
            bad = [
                f"{header[i]} {why}"
                for i, value in ((product_at, product), (user_at, user), (time_at, at))
                if (why := control_character_problem(value)) is not None
            ]
            rows.append(UsageRow(where, product, user, at, problem="; ".join(bad) or None))
    except csv.Error as exc:
        raise UsageImportError(
            f"{label}: line {reader.line_num}: not valid CSV ({exc}); nothing was recorded.",
            [f"line {reader.line_num}: not valid CSV ({exc})"],
        ) from None
    return rows


def _columns(header: list[str], label: str) -> tuple[int, int, int]:
    expected = "product_id,slack_user_id,last_used_at (or email instead of slack_user_id)"
    unknown = [h for h in header if h not in ("product_id", "last_used_at", *USER_COLUMNS)]
    if unknown:
        names = ", ".join(quoted(h) for h in unknown)
        raise UsageImportError(
            f"{label}: line 1: unknown column(s) {names}; the columns are {expected} "
            "(a header line is required)."
        )
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise UsageImportError(f"{label}: line 1: column(s) repeated: {', '.join(repeated)}.")
    users = [c for c in USER_COLUMNS if c in header]
    if len(users) != 1 or "product_id" not in header or "last_used_at" not in header:
        raise UsageImportError(
            f"{label}: line 1: the columns must be {expected}; found {','.join(header)}."
        )
    return header.index("product_id"), header.index(users[0]), header.index("last_used_at")
