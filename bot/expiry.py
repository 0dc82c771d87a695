"""The daily ``expiry`` job for time-limited grants, and asking for an extension.

A seat of a ``max_days`` product has an ``expires_at`` (bot/grants.py). Each day the job:

- releases every seat whose end has come (``release_reason`` "expired"), audited, its holder
  told, and the seat handed to the first person waiting;
- tells each holder whose seat ends within ``WARN_BEFORE`` (once: ``expiry_warned_at``), with a
  "Request extension" button.

An extension is a new request for the same product through its normal approval route; approved
while the seat is still held, it moves the seat's end (bot/grants.py). Both scans are SQL
queries on the indexed ``expires_at``: their shape does not change with the number of seats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot import delivery, notifications, requests
from bot.clock import utc
from bot.errors import Conflict, NotAllowed
from bot.runtime import Runtime
from storage import audit, job_runs
from storage.models import Assignment, Product

SYSTEM_ACTOR = "licensebot"
JOB_ID = "expiry"
WARN_BEFORE = timedelta(days=3)


@dataclass(frozen=True)
class ExpiryResult:
    warned: int
    expired: int
    served: int  # waitlisted requests given an expired seat


@dataclass(frozen=True)
class GrantView:
    """A time-limited seat as its holder's messages show it."""

    assignment_id: int
    user_id: str
    product_id: str
    product_name: str
    max_days: int | None
    expires_at: datetime | None
    released_at: datetime | None
    release_reason: str


def scan(session: Session, rt: Runtime, *, now: datetime) -> ExpiryResult:
    """Release the seats that have ended, then warn the holders of those ending soon."""
    expired, served = _expire(session, rt, now=now)
    warned = _warn(session, rt, now=now)
    return ExpiryResult(warned=warned, expired=expired, served=served)


def _expire(session: Session, rt: Runtime, *, now: datetime) -> tuple[int, int]:
    due = session.exec(
        select(Assignment.id, Assignment.user_id, Assignment.product_id)
        .where(
            col(Assignment.released_at).is_(None),
            col(Assignment.expires_at).is_not(None),
            col(Assignment.expires_at) <= now,
        )
        .order_by(col(Assignment.id))
        .with_for_update()
    ).all()
    if not due:
        return 0, 0
    served = delivery.release_seats(
        session,
        rt,
        due,
        reason="expired",
        action="seat.expired",
        notify=notifications.SEAT_EXPIRED,
        now=now,
    )
    return len(due), served


def _warn(session: Session, rt: Runtime, *, now: datetime) -> int:
    soon = session.exec(
        select(Assignment.id, Assignment.user_id, Assignment.product_id, Assignment.expires_at)
        .where(
            col(Assignment.released_at).is_(None),
            col(Assignment.expiry_warned_at).is_(None),
            col(Assignment.expires_at) > now,
            col(Assignment.expires_at) <= now + WARN_BEFORE,
        )
        .order_by(col(Assignment.id))
        .with_for_update()
    ).all()
    if not soon:
        return 0
    ids = [row[0] for row in soon]
    session.execute(
        update(Assignment).where(col(Assignment.id).in_(ids)).values(expiry_warned_at=now)
    )
    for assignment_id, user_id, product_id, expires_at in soon:
        assert expires_at is not None
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=SYSTEM_ACTOR,
            action="seat.expiry_warned",
            subject=f"user:{user_id}",
            details={
                "product": product_id,
                "assignment": assignment_id,
                "expires_at": utc(expires_at).isoformat(),
            },
        )
        notifications.queue(
            session, notifications.SEAT_EXPIRING, now=now, assignment_id=assignment_id
        )
    return len(ids)


def run_daily(rt: Runtime, now: datetime) -> bool:
    """The scheduled job: one scan per day, claimed in the same transaction as its work."""
    with rt.db.transaction() as session:
        if not job_runs.claim(session, JOB_ID, now.date().isoformat(), now=now):
            return False
        scan(session, rt, now=now)
    rt.wake_dispatcher()
    return True


def request_extension(rt: Runtime, *, actor: str, assignment_id: int) -> requests.SubmitResult:
    """The holder asks to keep their time-limited seat longer: a new request for the same
    product, approved by the product's usual route. A second click while it is open is
    refused (DuplicateRequest) and creates nothing."""
    with rt.db.read() as session:
        seat = session.get(Assignment, assignment_id)
        if seat is None or seat.user_id != actor:
            raise NotAllowed("You can't extend this seat: it is not assigned to you.")
        if seat.released_at is not None:
            raise Conflict(
                "This seat has already ended; ask for a new one with `/license request`."
            )
        if seat.expires_at is None:
            raise Conflict("This seat does not expire; there is nothing to extend.")
        product_id, ends = seat.product_id, utc(seat.expires_at)
    return requests.submit(
        rt,
        asked_by=actor,
        product_id=product_id,
        justification=f"Extension of seat #{assignment_id} (ends {ends.date().isoformat()})",
        extends_seat=assignment_id,
    )


def grant_view(rt: Runtime, assignment_id: int) -> GrantView | None:
    """The seat, ended or not: a late warning shows that it already ended."""
    with rt.db.read() as session:
        found = session.exec(
            select(Assignment, Product)
            .join(Product, col(Product.id) == col(Assignment.product_id))
            .where(col(Assignment.id) == assignment_id)
        ).first()
    if found is None:
        return None
    seat, product = found
    assert seat.id is not None
    return GrantView(
        assignment_id=seat.id,
        user_id=seat.user_id,
        product_id=product.id,
        product_name=product.name,
        max_days=product.max_days,
        expires_at=utc(seat.expires_at) if seat.expires_at else None,
        released_at=utc(seat.released_at) if seat.released_at else None,
        release_reason=seat.release_reason,
    )
