"""Asking for a license: validation, duplicates, and the start of its approval route."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot import approvals, catalog, delivery, notifications, roles
from bot.errors import (
    AlreadyHolds,
    Conflict,
    DuplicateRequest,
    InputError,
    NotAllowed,
    UnknownProduct,
)
from bot.runtime import Runtime
from bot.text import storable
from storage import audit
from storage.models import Assignment, LicenseRequest, Person, Product, StepApprover

OPEN_STATUSES = ("pending", "waitlisted")


@dataclass(frozen=True)
class SubmitResult:
    request_id: int
    product_id: str
    product_name: str
    requester_id: str
    status: str  # pending | approved | waitlisted
    step: int  # 0-based step now open (pending only)
    step_count: int
    next_approvers: list[str] = field(default_factory=list)
    why: str = ""  # why the step fell back to IT, if it did
    waitlist_position: int = 0


def submit(
    rt: Runtime,
    *,
    asked_by: str,
    product_id: str,
    justification: str,
    for_user: str | None = None,
    origin_key: str | None = None,
    extends_seat: int | None = None,
) -> SubmitResult:
    """Create a request for ``for_user`` (default: the asker) and open its first step.

    ``origin_key`` names where the request came from when that can arrive twice (a modal's
    view ID): the second arrival gets the first one's result and creates nothing.
    ``extends_seat`` asks to extend that seat, which the requester holds (bot/expiry.py):
    approved, it moves the seat's end instead of handing out another seat.
    """
    try:
        return _submit(
            rt,
            asked_by=asked_by,
            product_id=product_id,
            justification=justification,
            for_user=for_user,
            origin_key=origin_key,
            extends_seat=extends_seat,
        )
    except IntegrityError:
        # The same origin committed between our look-up and our insert (PostgreSQL).
        if origin_key is None or (earlier := _by_origin(rt, origin_key)) is None:
            raise
        return earlier


def _by_origin(rt: Runtime, origin_key: str) -> SubmitResult | None:
    with rt.db.read() as session:
        req = session.exec(
            select(LicenseRequest).where(LicenseRequest.origin_key == origin_key)
        ).first()
        if req is None:
            return None
        product = session.get(Product, req.product_id)
        assert product is not None
        return _result(session, req, product)


def _submit(
    rt: Runtime,
    *,
    asked_by: str,
    product_id: str,
    justification: str,
    for_user: str | None,
    origin_key: str | None,
    extends_seat: int | None = None,
) -> SubmitResult:
    requester = for_user or asked_by
    now = rt.clock.now()
    justification = storable(justification)
    product_id = storable(product_id).strip().lower()
    if origin_key is not None and (earlier := _by_origin(rt, origin_key)) is not None:
        return earlier
    with rt.db.transaction() as session:
        # An ID longer than any product's cannot match (and would not fit the column).
        product = session.get(Product, product_id) if len(product_id) <= 64 else None
        if product is None or not product.active:
            typed = product_id[:64]  # enough to suggest from, and to quote back
            raise UnknownProduct(typed, catalog.suggest_in(session, typed, active_only=True))
        if requester != asked_by:
            _check_may_ask_for(session, rt, asked_by=asked_by, requester=requester)
        _check_not_duplicate(session, product, requester, extends_seat=extends_seat)
        req = LicenseRequest(
            product_id=product.id,
            requester_id=requester,
            requested_by=asked_by,
            justification=justification,
            route=list(product.approval),
            origin_key=origin_key,
            created_at=now,
            updated_at=now,
        )
        session.add(req)
        session.flush()
        assert req.id is not None
        audit.defer(
            session,
            rt.audit_keys,
            at=now,
            actor=asked_by,
            action="request.created",
            subject=f"request:{req.id}",
            details={
                "product": product.id,
                "for": requester,
                "justification": justification,
                **({"extends": extends_seat} if extends_seat is not None else {}),
            },
        )
        if product.auto_approve or not product.approval:
            approvals.approve_automatically(session, rt, req, now=now)
        else:
            approvals.open_step(session, rt, req, now=now)
        result = _result(session, req, product)
    rt.wake_dispatcher()
    return result


def _check_may_ask_for(session: Session, rt: Runtime, *, asked_by: str, requester: str) -> None:
    person = session.get(Person, requester)
    if person is None:
        raise InputError(
            f"<@{requester}> is not in the directory yet; ask IT to import them first."
        )
    if person.manager_slack_user_id == asked_by or roles.has_role(
        session, asked_by, "it_admin", rt.admins
    ):
        return
    raise NotAllowed(
        f"You can't request a license for <@{requester}>: only their manager or IT can."
    )


def _check_not_duplicate(
    session: Session, product: Product, requester: str, *, extends_seat: int | None = None
) -> None:
    held = session.exec(
        select(Assignment.id).where(
            Assignment.product_id == product.id,
            Assignment.user_id == requester,
            col(Assignment.released_at).is_(None),
        )
    ).first()
    if extends_seat is not None and held != extends_seat:
        raise Conflict(
            f"Seat #{extends_seat} is not a {product.name} seat <@{requester}> holds now, so "
            f"there is nothing to extend; ask for a new one with `/license request {product.id}`."
        )
    if held is not None and extends_seat is None:
        raise AlreadyHolds(f"<@{requester}> already has {product.name}: see `/license mine`.")
    open_req = session.exec(
        select(LicenseRequest).where(
            LicenseRequest.product_id == product.id,
            LicenseRequest.requester_id == requester,
            col(LicenseRequest.status).in_(OPEN_STATUSES),
        )
    ).first()
    if open_req is not None:
        assert open_req.id is not None
        raise DuplicateRequest(
            f"<@{requester}> already has request #{open_req.id} for {product.name} "
            f"({open_req.status}); nothing new was created.",
            open_req.id,
        )


def _result(session: Session, req: LicenseRequest, product: Product) -> SubmitResult:
    assert req.id is not None
    approvers: list[str] = []
    why = ""
    if req.status == "pending":
        rows = session.exec(
            select(StepApprover).where(
                StepApprover.request_id == req.id, StepApprover.step == req.step
            )
        ).all()
        approvers = sorted(r.approver_id for r in rows)
        why = rows[0].why if rows else ""
    return SubmitResult(
        request_id=req.id,
        product_id=product.id,
        product_name=product.name,
        requester_id=req.requester_id,
        status=req.status,
        step=req.step,
        step_count=len(req.route),
        next_approvers=approvers,
        why=why,
        waitlist_position=delivery.waitlist_position(session, req),
    )


def cancel(rt: Runtime, *, request_id: int, actor: str) -> str:
    """Withdraw an open request (its requester or whoever asked for them); returns the product's
    name. Approvers' cards are updated to say there is nothing left to decide."""
    now = rt.clock.now()
    with rt.db.transaction() as session:
        req = session.exec(
            select(LicenseRequest).where(LicenseRequest.id == request_id).with_for_update()
        ).one_or_none()
        if req is None or actor not in (req.requester_id, req.requested_by):
            raise NotAllowed(f"You can't cancel request #{request_id}: it is not yours.")
        if req.status not in OPEN_STATUSES:
            raise Conflict(f"Request #{request_id} is already {req.status}; nothing to cancel.")
        close_cancelled(session, rt, req, actor=actor, now=now)
        product = session.get(Product, req.product_id)
        name = product.name if product else req.product_id
    rt.wake_dispatcher()
    return name


def close_cancelled(
    session: Session,
    rt: Runtime,
    req: LicenseRequest,
    *,
    actor: str,
    now: datetime,
    reason: str = "",
) -> None:
    """Mark an open request cancelled (audited); approvers' cards show nothing left to decide."""
    was_pending = req.status == "pending"
    req.status, req.closed_at, req.updated_at = "cancelled", now, now
    session.add(req)
    details: dict[str, object] = {"product": req.product_id}
    if reason:
        details["reason"] = reason
    audit.defer(
        session,
        rt.audit_keys,
        at=now,
        actor=actor,
        action="request.cancelled",
        subject=f"request:{req.id}",
        details=details,
    )
    if was_pending:
        notifications.queue(
            session, notifications.STEP_CLOSED, now=now, request_id=req.id, step=req.step
        )
