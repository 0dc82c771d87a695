"""Someone left the company: their seats go back and their open requests are cancelled."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from bot import delivery, notifications, seat_events
from bot import requests as license_requests
from bot.runtime import Runtime
from storage import audit
from storage.models import Assignment, LicenseRequest, Product

SYSTEM_ACTOR = "licensebot"
OPEN = ("pending", "waitlisted")


@dataclass(frozen=True)
class Offboarded:
    user_id: str
    released: list[str]  # product IDs whose seats were freed
    cancelled: list[int]  # request numbers


def offboard(rt: Runtime, user_id: str, *, actor: str = SYSTEM_ACTOR) -> Offboarded:
    """Release every seat ``user_id`` holds and cancel their open requests, in one transaction.

    Safe to repeat (Slack may send ``user_change`` more than once): a second run finds nothing.
    """
    now = rt.clock.now()
    with rt.db.transaction() as session:
        held = session.exec(
            select(Assignment, Product)
            .join(Product, col(Product.id) == col(Assignment.product_id))
            .where(Assignment.user_id == user_id, col(Assignment.released_at).is_(None))
            .order_by(col(Assignment.id))
        ).all()
        requests = session.exec(
            select(LicenseRequest)
            .where(LicenseRequest.requester_id == user_id, col(LicenseRequest.status).in_(OPEN))
            .order_by(col(LicenseRequest.id))
        ).all()
        if not held and not requests:
            return Offboarded(user_id, [], [])
        for assignment, product in held:
            assignment.released_at, assignment.release_reason = now, "offboarded"
            session.add(assignment)
            audit.append(
                session,
                rt.audit_keys,
                at=now,
                actor=actor,
                action="seat.released",
                subject=f"user:{user_id}",
                details={
                    "product": product.id,
                    "assignment": assignment.id,
                    "reason": "offboarded",
                },
            )
            seat_events.released(session, rt, assignment, now=now)
        for req in requests:
            license_requests.close_cancelled(
                session, rt, req, actor=actor, now=now, reason="offboarded"
            )
        session.flush()
        released = [product.id for _, product in held]
        for product_id in dict.fromkeys(released):
            delivery.assign_waitlisted(session, rt, product_id, now=now)
        notifications.queue(
            session,
            notifications.IT_OFFBOARDED,
            now=now,
            user_id=user_id,
            released=released,
            keys=[product.id for assignment, product in held if assignment.key_id is not None],
            cancelled=[r.id for r in requests],
        )
        result = Offboarded(user_id, released, [r.id or 0 for r in requests])
    rt.wake_dispatcher()
    return result
