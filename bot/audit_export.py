"""Exporting the audit log for auditors: JSON Lines or CSV, oldest entry first.

Entries are streamed in batches, so exporting a long log never holds it all in memory, and the
filters (time range, actor, product) run in SQL. Each record carries ``prev_hash``, ``hash``,
``key_id`` and ``mac`` so the chain can be re-checked outside licensebot (the MACs by whoever
holds the audit key).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from bot.errors import InputError
from bot.runtime import Runtime
from storage import audit
from storage.models import AuditEntry

Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")
FIELDS = (
    "id",
    "at",
    "actor",
    "action",
    "subject",
    "details",
    "prev_hash",
    "hash",
    "key_id",
    "mac",
    "product_id",
)


@dataclass(frozen=True)
class Filters:
    """Which entries to export; ``since`` is inclusive, ``until`` exclusive, both UTC-aware."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    product: str | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InputError(
                f"--since ({self.since.isoformat()}) must be before --until "
                f"({self.until.isoformat()})."
            )


def parse_when(text: str, *, option: str) -> datetime:
    """An ISO 8601 date or date-time as UTC: a date means its midnight, naive means UTC."""
    try:
        # Python 3.11 reads dates ("2026-11-02" is its midnight), "T" or " " and a "Z" suffix.
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{option}: {text[:40]!r} is not an ISO 8601 date or date-time "
            "(like 2026-11-02 or 2026-11-02T09:30:00Z)."
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _utc_iso(at: datetime) -> str:
    # SQLite returns naive datetimes and PostgreSQL the session's zone; every stored time is UTC.
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return aware.isoformat()


def record(entry: AuditEntry) -> dict[str, Any]:
    """One entry as a plain dict, ``details`` decoded to a JSON object."""
    return {
        "id": entry.id,
        "at": _utc_iso(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "details": json.loads(entry.details),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "key_id": entry.key_id,
        "mac": entry.mac,
        "product_id": entry.product_id,
    }


def jsonl_lines(entries: Iterator[AuditEntry]) -> Iterator[str]:
    for entry in entries:
        yield json.dumps(record(entry), ensure_ascii=False) + "\n"


def export(
    rt: Runtime,
    out: TextIO,
    *,
    fmt: Format = "jsonl",
    filters: Filters | None = None,
    batch: int = 1000,
) -> int:
    """Write the audit entries that match ``filters`` to ``out``; return how many were written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    wanted = filters or Filters()
    count = 0
    with rt.db.read() as session:
        entries = audit.iter_entries(
            session,
            batch=batch,
            since=wanted.since,
            until=wanted.until,
            actor=wanted.actor,
            product=wanted.product,
        )
        if fmt == "jsonl":
            for line in jsonl_lines(entries):
                out.write(line)
                count += 1
            return count
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for entry in entries:
            row = record(entry)
            # CSV has no nesting: keep details as the canonical JSON text that was hashed.
            row["details"] = entry.details
            writer.writerow(row)
            count += 1
    return count
