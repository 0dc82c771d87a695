"""Importing the seats a company already has when it adopts the bot.

Each row makes an ``Assignment`` with no request behind it; reclaim and the digest treat it like
any other seat. A ``key`` column gives a key product's holder their key, stored only as a Fernet
token: keys never appear in a message, an exception, a log line or the audit log. The import is
all or nothing, and importing the same rows again changes nothing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session, col, select

from bot import grants, seat_alerts, usage
from bot.csv_rows import data_records
from bot.delivery import mark_handed_out, seats_taken
from bot.directory import control_character_problem
from bot.errors import InputError, VaultError
from bot.keys import MAX_KEY_LENGTH
from bot.runtime import Runtime
from bot.usage import parse_time
from storage import audit
from storage.models import Assignment, LicenseKey, Person, Product
from storage.vault import VaultKeyError

COLUMNS = ("product_id", "slack_user_id", "assigned_at")
OPTIONAL = ("key",)
_MAX_REPORTED = 20


@dataclass(frozen=True)
class SeatsImportResult:
    added: int
    already_held: int  # rows whose holder already holds that product: skipped
    keys: int  # of the added rows, how many came with a key


@dataclass(frozen=True)
class _Row:
    line: int
    product_id: str
    user_id: str
    assigned_at: datetime
    key: str

    def __repr__(self) -> str:  # a key must never reach a log line through a repr
        return f"_Row(line={self.line}, product_id={self.product_id!r}, user={self.user_id!r})"


def import_seats(rt: Runtime, text: str, *, actor: str, source: str = "input") -> SeatsImportResult:
    """Record the holders in ``text`` (CSV); refuse the whole file if any line is wrong."""
    # Format problems and database problems are reported together: one round of fixes.
    rows, problems = _parse(text, source)
    now = rt.clock.now()
    with rt.db.transaction() as session:
        products = _lock_products(session, {r.product_id for r in rows})
        people = set(
            session.exec(
                select(Person.slack_user_id).where(
                    col(Person.slack_user_id).in_({r.user_id for r in rows})
                )
            ).all()
        )
        held = set(
            session.exec(
                select(Assignment.product_id, Assignment.user_id).where(
                    col(Assignment.product_id).in_(products),
                    col(Assignment.released_at).is_(None),
                )
            ).all()
        )
        fresh: list[_Row] = []
        for row in rows:
            product = products.get(row.product_id)
            if product is None:
                problems.append(f"line {row.line}: no product `{row.product_id}` in the catalog")
                continue
            if row.user_id not in people:
                problems.append(f"line {row.line}: {row.user_id} is not in the directory")
                continue
            if row.key and product.delivery != "key":
                problems.append(
                    f"line {row.line}: `{product.id}` is delivered as seats, so the row "
                    "cannot carry a key"
                )
                continue
            if row.assigned_at > now:
                problems.append(f"line {row.line}: assigned_at is in the future")
                continue
            if (row.product_id, row.user_id) in held:
                continue  # already recorded: a re-import is a no-op for this row
            fresh.append(row)
        problems += _over_seats(session, products, fresh)
        key_ids, key_problems = _key_rows(session, rt, products, fresh, now=now)
        problems += key_problems
        if problems:
            raise _fail(source, sorted(problems, key=_line_number))
        for row in fresh:
            session.add(
                Assignment(
                    product_id=row.product_id,
                    user_id=row.user_id,
                    key_id=key_ids.get(row.line),
                    assigned_at=row.assigned_at,
                    # A time-limited seat ends max_days after it was first assigned, even
                    # before the bot knew of it (an already ended one goes at the next run).
                    expires_at=grants.expires_at(products[row.product_id], row.assigned_at),
                )
            )
        session.flush()
        mark_handed_out(session, sorted(key_ids.values()), now=now)
        # Each new seat starts with its holder's last known use (one UPDATE per batch).
        usage.copy_to_seats(session, sorted({(r.product_id, r.user_id) for r in fresh}))
        result = SeatsImportResult(
            added=len(fresh), already_held=len(rows) - len(fresh), keys=len(key_ids)
        )
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="seats.imported",
            subject="seats",
            details={
                "added": result.added,
                "already_held": result.already_held,
                "keys": result.keys,
                "products": sorted({r.product_id for r in fresh}),
            },
        )
        seat_alerts.evaluate(session, rt, {r.product_id for r in fresh}, now=now)
    return result


def _lock_products(session: Session, product_ids: set[str]) -> dict[str, Product]:
    # Locked (PostgreSQL) so a request approved meanwhile cannot take a seat counted here.
    found = session.exec(
        select(Product)
        .where(col(Product.id).in_(product_ids))
        .order_by(col(Product.id))
        .with_for_update()
    ).all()
    return {p.id: p for p in found}


def _over_seats(session: Session, products: dict[str, Product], fresh: list[_Row]) -> list[str]:
    problems = []
    for product_id in sorted({r.product_id for r in fresh}):
        product = products[product_id]
        lines = [r.line for r in fresh if r.product_id == product_id]
        taken = seats_taken(session, product_id)
        if taken + len(lines) > product.seats:
            problems.append(
                f"lines {', '.join(map(str, lines[:10]))}: `{product_id}` has {product.seats} "
                f"seats, {taken} already held, so {len(lines)} more holders do not fit; raise "
                "`seats` in the catalog first"
            )
    return problems


def _key_rows(
    session: Session,
    rt: Runtime,
    products: dict[str, Product],
    fresh: list[_Row],
    *,
    now: datetime,
) -> tuple[dict[int, int], list[str]]:
    """The key row each new holder gets (by line), adding keys not yet in the pool."""
    with_key = [r for r in fresh if r.key]
    if not with_key:
        return {}, []
    held_ids = set(
        session.exec(select(Assignment.key_id).where(col(Assignment.key_id).is_not(None))).all()
    )
    # Fernet tokens are randomized: a key already in the pool is found by its plaintext.
    pool: dict[tuple[str, str], tuple[int, bool]] = {}
    rows = session.exec(
        select(LicenseKey.id, LicenseKey.product_id, LicenseKey.ciphertext).where(
            col(LicenseKey.product_id).in_({r.product_id for r in with_key})
        )
    ).all()
    try:
        for key_id, product_id, token in rows:
            assert key_id is not None
            pool[(product_id, rt.vault.reveal(token))] = (key_id, key_id in held_ids)
    except VaultKeyError:
        raise VaultError(
            "A stored key cannot be decrypted with LICENSEBOT_ENCRYPTION_KEYS; add the key it "
            "was encrypted with before importing seats with keys."
        ) from None
    problems: list[str] = []
    chosen: dict[int, int] = {}
    first_line: dict[tuple[str, str], int] = {}
    for row in with_key:
        ref = (row.product_id, row.key)
        if ref in first_line:
            problems.append(f"line {row.line}: the same key as line {first_line[ref]}")
            continue
        first_line[ref] = row.line
        known = pool.get(ref)
        if known is not None and known[1]:
            problems.append(f"line {row.line}: that key is already assigned to someone else")
        elif known is not None:
            chosen[row.line] = known[0]
    if problems:
        return {}, problems
    for row in with_key:
        if row.line in chosen:
            continue
        # One row at a time: each new key's ID is needed for its assignment.
        key_id = session.execute(
            insert(LicenseKey.__table__)  # type: ignore[attr-defined]  # set by SQLModel
            .values(product_id=row.product_id, ciphertext=rt.vault.seal(row.key), imported_at=now)
            .returning(LicenseKey.__table__.c.id)  # type: ignore[attr-defined]  # as above
        ).scalar_one()
        chosen[row.line] = int(key_id)
    return chosen, []


def _fail(source: str, problems: list[str]) -> InputError:
    shown = "; ".join(problems[:_MAX_REPORTED])
    more = len(problems) - _MAX_REPORTED
    if more > 0:
        shown += f"; and {more} more"
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return InputError(f"{source}: {count}, nothing was imported: {shown}")


def _line_number(problem: str) -> int:
    number = problem.split(":", 1)[0].split(" ")[-1].split(",")[0]
    return int(number) if number.isdigit() else 0


def _parse(text: str, source: str) -> tuple[list[_Row], list[str]]:
    text = text.removeprefix("\ufeff")  # Excel's "CSV UTF-8" starts with a byte-order mark
    if not text.strip():
        raise InputError(f"{source} is empty; it needs a header line: {','.join(COLUMNS)}[,key].")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[str] = []
    rows: list[_Row] = []
    try:
        header = [h.strip().lower() for h in next(reader)]
        unknown = [h for h in header if h not in COLUMNS + OPTIONAL]
        missing = [c for c in COLUMNS if c not in header]
        if unknown or missing or len(set(header)) != len(header):
            raise InputError(
                f"{source}: line 1: the columns are {','.join(COLUMNS)} and optionally key, "
                "each once (a header line is required); nothing was imported."
            )
        first_line: dict[tuple[str, str], int] = {}
        for line, record in data_records(reader):
            if len(record) != len(header):
                problems.append(f"line {line}: expected {len(header)} fields, found {len(record)}")
                continue
            fields = {name: record[i].strip() for i, name in enumerate(header)}
            row = _row(line, fields, problems)
            if row is None:
                continue
            seen = first_line.get((row.product_id, row.user_id))
            if seen is not None:
                problems.append(
                    f"line {line}: {row.user_id} already holds `{row.product_id}` on line {seen}"
                )
                continue
            first_line[(row.product_id, row.user_id)] = line
            rows.append(row)
    except csv.Error as exc:
        raise InputError(
            f"{source}: line {reader.line_num}: not valid CSV ({exc}); nothing was imported."
        ) from None
    if not rows and not problems:
        raise InputError(f"{source} has a header but no seats; nothing was imported.")
    return rows, problems


def _row(line: int, fields: dict[str, str], problems: list[str]) -> _Row | None:
    found: list[str] = []
    for column in COLUMNS:
        if not fields[column]:
            found.append(f"line {line}: {column} is empty")
        elif control_character_problem(fields[column]):
            found.append(f"line {line}: {column} contains control or invisible characters")
    key = fields.get("key", "")
    if len(key) > MAX_KEY_LENGTH or control_character_problem(key):
        # Said without the key itself: the message reaches a terminal and maybe a log.
        found.append(f"line {line}: the key is too long or contains control characters")
    assigned_at = parse_time(fields["assigned_at"]) if fields["assigned_at"] else None
    if fields["assigned_at"] and assigned_at is None:
        found.append(
            f"line {line}: assigned_at {fields['assigned_at'][:40]!r} is not an ISO 8601 time "
            "(e.g. 2026-01-31T09:00:00Z)"
        )
    if found or assigned_at is None:
        problems.extend(found)
        return None
    return _Row(line, fields["product_id"], fields["slack_user_id"], assigned_at, key)
