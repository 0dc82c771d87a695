"""The outbox: notifications written with the change they report, delivered later."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from storage.models import OutboxMessage

# Set in a session's ``info`` when it queued a message: on PostgreSQL the commit then NOTIFYs
# ``CHANNEL``, so dispatchers in other processes (``serve --role web`` replicas) deliver at once.
QUEUED = "licensebot.outbox_queued"
CHANNEL = "licensebot_outbox"


def enqueue(session: Session, kind: str, payload: dict[str, Any], *, now: datetime) -> None:
    """Queue a message, deliverable from ``now`` on (a later time delays it)."""
    session.info[QUEUED] = True
    session.add(OutboxMessage(kind=kind, payload=payload, created_at=now, next_attempt_at=now))


def enqueue_many(
    session: Session, kind: str, payloads: Sequence[dict[str, Any]], *, now: datetime
) -> None:
    """Queue one message per payload with one multi-row insert (core executemany), for scans
    that notify thousands of people at once; each row is what ``enqueue`` writes."""
    if not payloads:
        return
    session.info[QUEUED] = True
    session.flush()  # rows queued before these keep their lower IDs (delivery order)
    table = OutboxMessage.__table__  # type: ignore[attr-defined]  # set by SQLModel
    defaults = {"status": "pending", "attempts": 0, "last_error": ""}
    session.execute(
        insert(table),
        [
            {"kind": kind, "payload": p, "created_at": now, "next_attempt_at": now, **defaults}
            for p in payloads
        ],
    )


def due(session: Session, *, now: datetime, limit: int = 50) -> list[OutboxMessage]:
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.status == "pending", col(OutboxMessage.next_attempt_at) <= now)
        .order_by(col(OutboxMessage.id))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.exec(stmt).all())


def mark_sent(session: Session, message: OutboxMessage, *, now: datetime) -> None:
    message.status = "sent"
    message.sent_at = now
    message.attempts += 1
    session.add(message)


def mark_retry(
    session: Session,
    message: OutboxMessage,
    *,
    now: datetime,
    delay: timedelta,
    error: str,
    max_attempts: int,
) -> None:
    message.attempts += 1
    message.last_error = error[:500]
    if message.attempts >= max_attempts:
        message.status = "failed"
    else:
        message.next_attempt_at = now + delay
    session.add(message)


def pending_count(session: Session) -> int:
    return len(
        session.exec(select(OutboxMessage.id).where(OutboxMessage.status == "pending")).all()
    )
