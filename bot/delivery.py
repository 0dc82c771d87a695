"""Handing out what was approved: a key from the pool, a seat, or a place in the queue."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from bot import grants, notifications, seat_alerts, seat_events, usage
from bot.errors import InputError, NotAllowed, VaultError
from bot.runtime import Runtime
from storage import audit
from storage.db import in_slices
from storage.models import Assignment, LicenseKey, LicenseRequest, Product
from storage.vault import VaultKeyError

SYSTEM_ACTOR = "licensebot"


def seats_taken(session: Session, product_id: str) -> int:
    return session.exec(
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.product_id == product_id, col(Assignment.released_at).is_(None))
    ).one()


def free_key_id(session: Session, product_id: str) -> int | None:
    """The product's first key never handed out (the first entry of ix_license_key_free)."""
    return session.exec(
        select(LicenseKey.id)
        .where(LicenseKey.product_id == product_id, col(LicenseKey.handed_out_at).is_(None))
        .order_by(col(LicenseKey.id))
        .limit(1)
    ).first()


def mark_handed_out(session: Session, key_ids: Sequence[int], *, now: datetime) -> None:
    """Record that these keys now belong to a seat (in the transaction that assigns them)."""
    for part in in_slices(key_ids):
        session.execute(
            update(LicenseKey).where(col(LicenseKey.id).in_(part)).values(handed_out_at=now)
        )


def _lock_product(session: Session, product_id: str) -> Product:
    # Serializes seat and key hand-outs per product on PostgreSQL; SQLite writers are serial.
    return session.exec(select(Product).where(Product.id == product_id).with_for_update()).one()


def fulfil(session: Session, rt: Runtime, req: LicenseRequest, *, now: datetime) -> None:
    """Give an approved request its key or seat, or put it in the product's queue."""
    assert req.id is not None
    product = _lock_product(session, req.product_id)
    # Someone approved for a product they still hold asked for an extension of that seat
    # (bot/expiry.py): a person holds one seat per product, so its end moves instead.
    held = grants.held_seat(session, product.id, req.requester_id)
    if held is not None and held.expires_at is not None:
        grants.extend(session, rt, product, held, req, now=now)
        return
    if not _assign(session, rt, product, req, now=now):
        req.status = "waitlisted"
        req.waitlisted_at = now
        session.add(req)
        session.flush()
        audit.defer(
            session,
            rt.audit_keys,
            at=now,
            actor=SYSTEM_ACTOR,
            action="request.waitlisted",
            subject=f"request:{req.id}",
            details={"product": product.id, "position": waitlist_position(session, req)},
        )
        notifications.queue(session, notifications.REQUEST_WAITLISTED, now=now, request_id=req.id)
        # IT hears "out of seats" once per product (the seat alert), not once per request.
        seat_alerts.evaluate(session, rt, {product.id}, now=now)


def _assign(
    session: Session, rt: Runtime, product: Product, req: LicenseRequest, *, now: datetime
) -> bool:
    assert req.id is not None
    if seats_taken(session, product.id) >= product.seats:
        return False
    key_id = None
    if product.delivery == "key":
        key_id = free_key_id(session, product.id)
        if key_id is None:
            return False
        mark_handed_out(session, [key_id], now=now)
    assignment = Assignment(
        product_id=product.id,
        user_id=req.requester_id,
        request_id=req.id,
        key_id=key_id,
        assigned_at=now,
        expires_at=grants.expires_at(product, now),
        last_used_at=usage.last_use(session, product.id, req.requester_id),
    )
    session.add(assignment)
    req.status = "approved"
    req.closed_at = now
    req.updated_at = now
    session.add(req)
    session.flush()
    audit.defer(
        session,
        rt.audit_keys,
        at=now,
        actor=SYSTEM_ACTOR,
        action="key.assigned" if key_id is not None else "seat.assigned",
        subject=f"user:{req.requester_id}",
        details={
            "product": product.id,
            "request": req.id,
            "assignment": assignment.id,
            **({"key_id": key_id} if key_id is not None else {}),
        },
    )
    seat_events.assigned(session, rt, assignment, now=now)
    notifications.queue(session, notifications.REQUEST_APPROVED, now=now, request_id=req.id)
    if product.delivery == "seat":
        notifications.queue(session, notifications.IT_PROVISION, now=now, request_id=req.id)
    return True


def assign_waitlisted(session: Session, rt: Runtime, product_id: str, *, now: datetime) -> int:
    """Hand free seats or keys to the people waiting, first come first served."""
    product = _lock_product(session, product_id)
    served = 0
    queue = session.exec(
        select(LicenseRequest)
        .where(LicenseRequest.product_id == product_id, LicenseRequest.status == "waitlisted")
        .order_by(col(LicenseRequest.waitlisted_at), col(LicenseRequest.id))
    ).all()
    for req in queue:
        if not _assign(session, rt, product, req, now=now):
            break
        served += 1
    return served


def release_seats(
    session: Session,
    rt: Runtime,
    seats: Sequence[tuple[int | None, str, str]],
    *,
    reason: str,
    action: str,
    notify: str,
    now: datetime,
) -> int:
    """Give back many seats at once (a job's reclaim or expiry): ``seats`` are (assignment ID,
    holder, product), already locked by the caller. Each is released with ``reason``, audited
    as ``action``, its holder told with ``notify``, and the people waiting served, per product.
    Returns how many waitlisted requests got a seat."""
    ids = [seat[0] for seat in seats]
    for ids_slice in in_slices(ids):
        session.execute(
            update(Assignment)
            .where(col(Assignment.id).in_(ids_slice))
            .values(released_at=now, release_reason=reason)
        )
    # Thousands of seats at once: one batch of audit entries and one of outbox rows.
    audit.append_many(
        session,
        rt.audit_keys,
        [
            audit.Event(
                at=now,
                actor=SYSTEM_ACTOR,
                action=action,
                subject=f"user:{user_id}",
                details={"product": product_id, "assignment": assignment_id},
            )
            for assignment_id, user_id, product_id in seats
        ],
    )
    notifications.queue_many(session, notify, [{"assignment_id": i} for i in ids], now=now)
    for ids_slice in in_slices(ids):
        released = session.exec(select(Assignment).where(col(Assignment.id).in_(ids_slice)))
        seat_events.released_many(session, rt, released.all(), now=now)
    served = 0
    for product_id in sorted({seat[2] for seat in seats}):  # per product, not per seat
        served += assign_waitlisted(session, rt, product_id, now=now)
    return served


def waitlist_position(session: Session, req: LicenseRequest) -> int:
    if req.status != "waitlisted" or req.waitlisted_at is None:
        return 0
    ahead = session.exec(
        select(func.count())
        .select_from(LicenseRequest)
        .where(
            LicenseRequest.product_id == req.product_id,
            LicenseRequest.status == "waitlisted",
            (col(LicenseRequest.waitlisted_at) < req.waitlisted_at)
            | (
                (col(LicenseRequest.waitlisted_at) == req.waitlisted_at)
                & (col(LicenseRequest.id) < req.id)
            ),
        )
    ).one()
    return ahead + 1


@dataclass(frozen=True)
class RevealedKey:
    assignment_id: int
    product_id: str
    product_name: str
    key: str
    # The modal's ``external_id``: the reveal's transaction already queued hiding the key
    # again under it, before Slack had given the modal an ID.
    view_ref: str = ""

    def __repr__(self) -> str:  # a key must never reach a log line through a repr
        return f"RevealedKey(assignment_id={self.assignment_id}, product_id={self.product_id!r})"


def reveal_key(rt: Runtime, *, actor: str, assignment_id: int) -> RevealedKey:
    """Decrypt the key of an assignment for its holder, and audit that it was shown."""
    now = rt.clock.now()
    with rt.db.transaction() as session:
        assignment = session.get(Assignment, assignment_id)
        if assignment is None or assignment.user_id != actor:
            raise NotAllowed("You can't reveal this key: it is not assigned to you.")
        if assignment.released_at is not None:
            raise NotAllowed("You can't reveal this key: the license was given back.")
        if assignment.key_id is None:
            raise InputError("This license is a seat, not a key: there is nothing to reveal.")
        key_row = session.get(LicenseKey, assignment.key_id)
        product = session.get(Product, assignment.product_id)
        assert key_row is not None and product is not None
        try:
            plaintext = rt.vault.reveal(key_row.ciphertext)
        except VaultKeyError:
            raise VaultError(
                "This key cannot be decrypted with the configured LICENSEBOT_ENCRYPTION_KEYS; "
                "IT has to fix the bot's settings."
            ) from None
        # Asking for the key is a use of the product: it keeps the seat from looking idle.
        # Before the audit append: the usage row's foreign key share-locks the product row, and
        # key imports lock the product and then audit_head; the same order here cannot deadlock.
        usage.record_signal(
            session, product_id=product.id, user_id=actor, at=now, source="reveal", now=now
        )
        audit.defer(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="key.revealed",
            subject=f"user:{actor}",
            details={"product": product.id, "assignment": assignment_id},
        )
        # Hiding it again is queued here, in this one transaction, under an ID of our choosing
        # that the modal will carry; a modal that never opens makes that a no-op.
        view_ref = f"reveal-{secrets.token_urlsafe(12)}"
        notifications.queue(
            session,
            notifications.MASK_REVEAL,
            now=now,
            delay=timedelta(seconds=rt.reveal_seconds),
            view_ref=view_ref,
            product_name=product.name,
        )
    return RevealedKey(assignment_id, product.id, product.name, plaintext, view_ref)
