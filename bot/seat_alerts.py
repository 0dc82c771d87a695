"""Telling IT when a product runs out of seats or falls below its ``min_free_seats``.

A product is in one of three states:

- ``exhausted``: people are waiting and nothing is free for them;
- ``low``: nobody is left waiting, but fewer seats are free than ``min_free_seats``;
- ``ok``: otherwise.

The state is worked out after every change to free seats or the waitlist (seat_events on every
assignment and release, a waitlisted request, a key import, a catalog load), and IT is told only
when it differs from the last one recorded in ``seat_alert``: one message per change of state,
never one per assignment. Going back to ``ok`` gets a short "back to normal" note.

Numbers are counted as they will be once the people waiting are served: a release path
evaluates between freeing a seat and handing it to the next in line, and counting the seat as
free there would report "ok" and then "exhausted" again for one seat changing hands.
For key products a seat is free only if a key is free for it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func
from sqlmodel import Session, col, select

from bot import catalog, notifications
from bot.runtime import Runtime
from storage import audit
from storage.models import LicenseRequest, Product, SeatAlert

SYSTEM_ACTOR = "licensebot"
OK, LOW, EXHAUSTED = "ok", "low", "exhausted"


@dataclass(frozen=True)
class SeatCount:
    """One product's seats once the waitlist is served; what IT's alert shows."""

    product_id: str
    product_name: str
    delivery: str
    seats: int  # bought
    taken: int
    free: int
    waiting: int
    min_free_seats: int

    @property
    def state(self) -> str:
        return state_of(waiting=self.waiting, free=self.free, min_free_seats=self.min_free_seats)


def state_of(*, waiting: int, free: int, min_free_seats: int) -> str:
    if waiting > 0:
        return EXHAUSTED
    if free < min_free_seats:
        return LOW
    return OK


def counts(session: Session, product_ids: Iterable[str]) -> list[SeatCount]:
    """The seat counts of the active products among ``product_ids``, in SQL aggregates."""
    infos = catalog.product_infos(session, product_ids)
    if not infos:
        return []
    waiting = dict(
        session.exec(
            select(LicenseRequest.product_id, func.count())
            .where(
                col(LicenseRequest.product_id).in_([info.id for info in infos]),
                LicenseRequest.status == "waitlisted",
            )
            .group_by(col(LicenseRequest.product_id))
        ).all()
    )
    result = []
    for info in infos:
        queued = int(waiting.get(info.id, 0))
        served = min(info.seats_left, queued)
        result.append(
            SeatCount(
                product_id=info.id,
                product_name=info.name,
                delivery=info.delivery,
                seats=info.seats,
                taken=info.seats_taken + served,
                free=info.seats_left - served,
                waiting=queued - served,
                min_free_seats=info.min_free_seats,
            )
        )
    return result


def _steady(session: Session, ids: set[str]) -> set[str]:
    """Products whose state is OK and stays OK whatever their counts: no free-seat minimum
    (so never LOW), nobody waiting (so never EXHAUSTED), and recorded as OK. One indexed query
    instead of counting every seat and key of the product on each hand-out (the approve path)."""
    if not ids:
        return set()
    waiting = exists().where(
        col(LicenseRequest.product_id) == col(Product.id),
        col(LicenseRequest.status) == "waitlisted",
    )
    alerted = exists().where(
        col(SeatAlert.product_id) == col(Product.id), col(SeatAlert.state) != OK
    )
    return set(
        session.exec(
            select(Product.id).where(
                col(Product.id).in_(sorted(ids)), Product.min_free_seats == 0, ~waiting, ~alerted
            )
        ).all()
    )


def evaluate(session: Session, rt: Runtime, product_ids: Iterable[str], *, now: datetime) -> int:
    """Record each product's seat state; tell IT about the ones that changed. Returns how many.

    Called inside the transaction of the change, after its audit entry: every writer holds the
    audit chain's lock by then, so two transactions never race on one ``seat_alert`` row.
    """
    ids = set(product_ids)
    found = counts(session, ids - _steady(session, ids))
    if not found:
        return 0
    known = {
        a.product_id: a
        for a in session.exec(
            select(SeatAlert).where(col(SeatAlert.product_id).in_([c.product_id for c in found]))
        ).all()
    }
    changed = 0
    for count in found:
        row = known.get(count.product_id)
        previous = row.state if row is not None else OK
        if count.state == previous:
            continue
        row = row or SeatAlert(product_id=count.product_id)
        row.state, row.changed_at = count.state, now
        session.add(row)
        details: dict[str, Any] = {
            "product": count.product_id,
            "state": count.state,
            "previous": previous,
            "seats": count.seats,
            "taken": count.taken,
            "free": count.free,
            "waiting": count.waiting,
            "min_free_seats": count.min_free_seats,
        }
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=SYSTEM_ACTOR,
            action="seats.alert",
            subject=f"product:{count.product_id}",
            details=details,
        )
        # The numbers of the moment go in the payload: a late delivery must still say what
        # changed then (they are counts, nothing secret).
        notifications.queue(
            session,
            notifications.IT_SEAT_ALERT,
            now=now,
            product_id=count.product_id,
            product_name=count.product_name,
            delivery=count.delivery,
            state=count.state,
            previous=previous,
            seats=count.seats,
            taken=count.taken,
            free=count.free,
            waiting=count.waiting,
            min_free_seats=count.min_free_seats,
        )
        changed += 1
    if changed:
        session.flush()
    return changed
