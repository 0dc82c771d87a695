"""Exporting the audit log for auditors: JSON Lines or CSV, oldest entry first.

Entries are streamed in batches, so exporting a long log never holds it all in memory. Each
record carries ``prev_hash`` and ``hash`` so the chain can be re-checked outside licensebot.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from bot.runtime import Runtime
from storage import audit
from storage.models import AuditEntry

Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")
FIELDS = ("id", "at", "actor", "action", "subject", "details", "prev_hash", "hash")


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
    }


def jsonl_lines(entries: Iterator[AuditEntry]) -> Iterator[str]:
    for entry in entries:
        yield json.dumps(record(entry), ensure_ascii=False) + "\n"


def export(rt: Runtime, out: TextIO, *, fmt: Format = "jsonl", batch: int = 1000) -> int:
    """Write every audit entry to ``out``; return how many were written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    count = 0
    with rt.db.read() as session:
        entries = audit.iter_entries(session, batch=batch)
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
