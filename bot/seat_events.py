"""What follows every seat hand-out and give-back, whoever caused it.

Every path that assigns or releases a seat (approval, waitlist, reclaim, release, offboarding,
access review, expiry) calls these inside its own transaction, so what hangs off a seat change
(provisioning webhooks, IT's seat alerts) is written atomically with it and never forgotten by
one path.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    released_many(session, rt, [assignment], now=now)


def released_many(
    session: Session, rt: Runtime, assignments: Iterable[Assignment], *, now: datetime
) -> None:
    """``released`` for a batch (a job's reclaim or expiry): one webhook event per seat, and
    the seat alerts of the products concerned evaluated once, not once per seat."""
    seats = list(assignments)
    webhooks.queue_events(session, seats, webhooks.RELEASED, now=now)
    seat_alerts.evaluate(session, rt, {seat.product_id for seat in seats}, now=now)
