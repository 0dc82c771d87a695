"""The audit log: append-only and hash-chained.

Each entry's hash covers the previous entry's hash and its own content, so an edit, deletion,
insertion or reordering breaks the chain. Appends lock the single ``audit_head`` row, which
serializes concurrent writers on PostgreSQL (SQLite writers are serialized by BEGIN IMMEDIATE).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from storage.models import AuditEntry, AuditHead

GENESIS = "0" * 64


def canonical(details: dict[str, Any]) -> str:
    return json.dumps(
        details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def entry_hash(
    *, prev_hash: str, seq: int, at: datetime, actor: str, action: str, subject: str, details: str
) -> str:
    material = "\x1f".join(
        [prev_hash, str(seq), _as_utc(at).isoformat(), actor, action, subject, details]
    ).encode("utf-8")
    return hashlib.sha256(material).hexdigest()


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    body = canonical(details or {})
    seq = head.last_id + 1
    entry = AuditEntry(
        id=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=body,
        prev_hash=head.hash,
        hash=entry_hash(
            prev_hash=head.hash,
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            details=body,
        ),
    )
    session.add(entry)
    head.last_id = seq
    head.hash = entry.hash
    session.add(head)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head: str
    first_bad: int | None  # id of the first entry that does not verify


def verify(session: Session) -> ChainReport:
    prev = GENESIS
    expected_seq = 1
    count = 0
    for entry in iter_entries(session):
        assert entry.id is not None
        good = (
            entry.id == expected_seq
            and entry.prev_hash == prev
            and entry.hash
            == entry_hash(
                prev_hash=prev,
                seq=entry.id,
                at=_as_utc(entry.at),
                actor=entry.actor,
                action=entry.action,
                subject=entry.subject,
                details=entry.details,
            )
        )
        if not good:
            return ChainReport(entries=count, head=prev, first_bad=entry.id)
        prev = entry.hash
        expected_seq += 1
        count += 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.last_id != count or head.hash != prev):
        return ChainReport(entries=count, head=prev, first_bad=count + 1)
    return ChainReport(entries=count, head=prev, first_bad=None)


def iter_entries(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = session.exec(
            select(AuditEntry)
            .where(col(AuditEntry.id) > last)
            .order_by(col(AuditEntry.id))
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id or last


def _as_utc(at: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL hands back the session's zone.
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
