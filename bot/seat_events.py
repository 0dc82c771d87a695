"""What follows every seat hand-out and give-back, whoever caused it.

Every path that assigns or releases a seat (approval, waitlist, reclaim, release, offboarding,
access review, expiry) calls these inside its own transaction, so what hangs off a seat change
(provisioning webhooks, IT's seat alerts) is written atomically with it and never forgotten by
one path.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot import seat_alerts, webhooks
from bot.runtime import Runtime
from storage.models import Assignment


def assigned(session: Session, rt: Runtime, assignment: Assignment, *, now: datetime) -> None:
    """``assignment`` was just created (and flushed: it has its ID)."""
    webhooks.queue_event(session, assignment, webhooks.ASSIGNED, now=now)
    seat_alerts.evaluate(session, rt, {assignment.product_id}, now=now)


def released(session: Session, rt: Runtime, assignment: Assignment, *, now: datetime) -> None:
    """``assignment`` was just released (``released_at`` and ``release_reason`` are set)."""
    webhooks.queue_event(session, assignment, webhooks.RELEASED, now=now)
    seat_alerts.evaluate(session, rt, {assignment.product_id}, now=now)
