"""Time-limited grants: when a seat of a ``max_days`` product ends, and how an extension moves it.

A seat of a product with ``max_days`` ends that many days after it was assigned (``expires_at``,
set on every path that creates a seat: delivery and seats import). Its holder may ask for an
extension, which is an ordinary request for the same product through the normal approval route;
a person holds at most one seat per product, so when such a request is approved for someone who
still holds the seat, the seat's end moves forward by ``max_days`` instead of a second seat being
handed out. The daily job that warns and expires seats is ``bot/expiry.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot import notifications
from bot.clock import utc
from bot.runtime import Runtime
from storage import audit
from storage.models import Assignment, LicenseRequest, Product

SYSTEM_ACTOR = "licensebot"


def expires_at(product: Product, assigned_at: datetime) -> datetime | None:
    """When a seat of ``product`` assigned at ``assigned_at`` ends (None: it does not)."""
    if product.max_days is None:
        return None
    return utc(assigned_at) + timedelta(days=product.max_days)


def held_seat(session: Session, product_id: str, user_id: str) -> Assignment | None:
    """The seat of ``product_id`` that ``user_id`` holds now, locked for the change to come."""
    return session.exec(
        select(Assignment)
        .where(
            Assignment.product_id == product_id,
            Assignment.user_id == user_id,
            col(Assignment.released_at).is_(None),
        )
        .with_for_update()
    ).first()


def extend(
    session: Session,
    rt: Runtime,
    product: Product,
    seat: Assignment,
    req: LicenseRequest,
    *,
    now: datetime,
) -> None:
    """Close the approved extension request ``req`` by moving ``seat``'s end forward.

    The new end is ``max_days`` after the later of the old end and now, so an extension
    approved early loses nothing; a product whose ``max_days`` was removed from the catalog no
    longer ends at all. The warning is re-armed for the new end.
    """
    assert req.id is not None and seat.id is not None
    before = utc(seat.expires_at) if seat.expires_at is not None else None
    start = max(before, now) if before is not None else now
    seat.expires_at = start + timedelta(days=product.max_days) if product.max_days else None
    seat.expiry_warned_at = None
    session.add(seat)
    req.status = "approved"
    req.closed_at = now
    req.updated_at = now
    session.add(req)
    session.flush()
    audit.append(
        session,
        rt.audit_keys,
        at=now,
        actor=SYSTEM_ACTOR,
        action="seat.extended",
        subject=f"user:{seat.user_id}",
        details={
            "product": product.id,
            "request": req.id,
            "assignment": seat.id,
            "expires_before": before.isoformat() if before is not None else None,
            "expires_at": seat.expires_at.isoformat() if seat.expires_at is not None else None,
        },
    )
    notifications.queue(
        session, notifications.SEAT_EXTENDED, now=now, assignment_id=seat.id, request_id=req.id
    )
