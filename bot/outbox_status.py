"""What the outbox holds, for operators: nothing sent to Slack is dropped without a trace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from bot.clock import utc
from bot.runtime import Runtime
from storage import audit
from storage.models import OutboxMessage

STATUSES = ("pending", "sent", "failed")


@dataclass(frozen=True)
class OutboxLine:
    id: int
    kind: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str
    about: str  # what it concerns (request number, user), never a message body


def _about(payload: dict[str, object]) -> str:
    parts = [
        f"{k}={payload[k]}"
        for k in ("request_id", "step", "approver_id", "user_id")
        if k in payload
    ]
    return " ".join(parts)


def list_messages(rt: Runtime, *, status: str | None = None, limit: int = 100) -> list[OutboxLine]:
    """Newest first; ``status`` None lists every status."""
    with rt.db.read() as session:
        stmt = select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(OutboxMessage.status == status)
        return [
            OutboxLine(
                id=m.id or 0,
                kind=m.kind,
                status=m.status,
                attempts=m.attempts,
                created_at=utc(m.created_at),
                next_attempt_at=utc(m.next_attempt_at),
                sent_at=utc(m.sent_at) if m.sent_at else None,
                last_error=m.last_error,
                about=_about(m.payload),
            )
            for m in session.exec(stmt)
        ]


def retry_failed(rt: Runtime, *, actor: str, ids: list[int] | None = None) -> int:
    """Queue failed messages again (all of them, or those ``ids``); returns how many."""
    now = rt.clock.now()
    with rt.db.transaction() as session:
        stmt = select(OutboxMessage).where(OutboxMessage.status == "failed")
        if ids:
            stmt = stmt.where(col(OutboxMessage.id).in_(ids))
        rows = list(session.exec(stmt))
        for row in rows:
            row.status, row.attempts, row.next_attempt_at = "pending", 0, now
            session.add(row)
        if rows:
            audit.append(
                session,
                rt.audit_keys,
                at=now,
                actor=actor,
                action="outbox.retried",
                subject="outbox",
                details={"ids": [r.id for r in rows]},
            )
    rt.wake_dispatcher()
    return len(rows)
