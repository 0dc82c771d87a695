"""Approval steps: opening a step, deciding it, and what follows a decision.

Authorization is decided here, from the database, at the moment of each click.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot import delivery, notifications, routing
from bot.errors import AlreadyDecided, Conflict, NotAllowed
from bot.runtime import Runtime
from storage import audit
from storage.models import Decision, LicenseRequest, Product, StepApprover

SYSTEM_ACTOR = "licensebot"


def open_step(session: Session, rt: Runtime, req: LicenseRequest, *, now: datetime) -> None:
    """Route the request's current step and queue a card for each approver."""
    assert req.id is not None
    # Reminders and escalation count from here (bot/reminders.py), not from the request's age.
    req.step_opened_at = now
    spec = req.route[req.step]
    route = routing.resolve(
        session,
        spec,
        requester=req.requester_id,
        excluded={req.requester_id, req.requested_by},
        admins=rt.admins,
    )
    for approver in route.approvers:
        session.add(
            StepApprover(request_id=req.id, step=req.step, approver_id=approver, why=route.why)
        )
    session.flush()
    audit.defer(
        session,
        rt.audit_keys,
        at=now,
        actor=SYSTEM_ACTOR,
        action="step.opened",
        subject=f"request:{req.id}",
        details={
            "step": req.step + 1,
            "of": len(req.route),
            "rule": spec,
            "approvers": route.approvers,
            "why": route.why,
        },
    )
    for approver in route.approvers:
        notifications.queue(
            session,
            notifications.APPROVAL_CARD,
            now=now,
            request_id=req.id,
            step=req.step,
            approver_id=approver,
        )
    if not route.approvers:
        notifications.queue(session, notifications.REQUEST_STALLED, now=now, request_id=req.id)


def approve_automatically(
    session: Session, rt: Runtime, req: LicenseRequest, *, now: datetime
) -> None:
    assert req.id is not None
    session.add(
        Decision(request_id=req.id, step=0, decider_id=SYSTEM_ACTOR, outcome="auto", decided_at=now)
    )
    audit.defer(
        session,
        rt.audit_keys,
        at=now,
        actor=SYSTEM_ACTOR,
        action="request.approved",
        subject=f"request:{req.id}",
        details={"automatic": True, "product": req.product_id},
    )
    req.status = "approved"
    req.closed_at = now
    delivery.fulfil(session, rt, req, now=now)


@dataclass(frozen=True)
class DecisionResult:
    request_id: int
    step: int
    outcome: str  # "approved" | "denied"
    request_status: str  # the request's status after the decision


def decide(
    rt: Runtime, *, request_id: int, step: int, actor: str, approve: bool, reason: str = ""
) -> DecisionResult:
    """Record one approver's decision on one step; refuse anyone the database does not allow."""
    reason = reason.strip()
    if not approve and not reason:
        raise Conflict("A reason is required to deny a request.")
    now = rt.clock.now()
    with rt.db.transaction() as session:
        req = session.exec(
            select(LicenseRequest).where(LicenseRequest.id == request_id).with_for_update()
        ).one_or_none()
        if req is None:
            raise Conflict(f"Request #{request_id} does not exist.")
        _authorize(session, req, step=step, actor=actor)
        decision = Decision(
            request_id=request_id,
            step=step,
            decider_id=actor,
            outcome="approved" if approve else "denied",
            reason=reason,
            decided_at=now,
        )
        session.add(decision)
        try:
            session.flush()
        except IntegrityError:
            # Someone else's decision committed between our check and our insert.
            raise AlreadyDecided(
                f"Step {step + 1} of request #{request_id} was already decided."
            ) from None
        audit.defer(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="step.approved" if approve else "step.denied",
            subject=f"request:{request_id}",
            details={"step": step + 1, "of": len(req.route), "reason": reason},
        )
        notifications.queue(
            session, notifications.STEP_CLOSED, now=now, request_id=request_id, step=step
        )
        req.updated_at = now
        if not approve:
            req.status = "denied"
            req.closed_at = now
            audit.defer(
                session,
                rt.audit_keys,
                at=now,
                actor=actor,
                action="request.denied",
                subject=f"request:{request_id}",
                details={"product": req.product_id, "reason": reason},
            )
            notifications.queue(
                session, notifications.REQUEST_DENIED, now=now, request_id=request_id
            )
        elif step + 1 < len(req.route):
            req.step = step + 1
            open_step(session, rt, req, now=now)
        else:
            req.status = "approved"
            req.closed_at = now
            audit.defer(
                session,
                rt.audit_keys,
                at=now,
                actor=actor,
                action="request.approved",
                subject=f"request:{request_id}",
                details={"product": req.product_id},
            )
            delivery.fulfil(session, rt, req, now=now)
        session.add(req)
        status = req.status
    rt.wake_dispatcher()
    return DecisionResult(
        request_id=request_id,
        step=step,
        outcome="approved" if approve else "denied",
        request_status=status,
    )


def _authorize(session: Session, req: LicenseRequest, *, step: int, actor: str) -> None:
    assert req.id is not None
    earlier = session.get(Decision, (req.id, step))
    if actor == req.requester_id:
        raise NotAllowed("You can't approve or deny your own request.")
    is_approver = session.get(StepApprover, (req.id, step, actor)) is not None
    if not is_approver:
        raise NotAllowed(
            f"You can't decide step {step + 1} of request #{req.id}: "
            "you are not one of its approvers."
        )
    if earlier is not None:
        when = earlier.decided_at.strftime("%Y-%m-%d %H:%M UTC")
        raise AlreadyDecided(f"Already {earlier.outcome} by <@{earlier.decider_id}> on {when}.")
    if req.status != "pending" or step != req.step:
        raise AlreadyDecided(
            f"Request #{req.id} is no longer waiting for this step ({req.status})."
        )


def record_card(
    rt: Runtime, *, request_id: int, step: int, approver_id: str, channel: str, ts: str
) -> None:
    """Remember where an approver's card was posted, so closing the step can update it."""
    with rt.db.transaction() as session:
        row = session.get(StepApprover, (request_id, step, approver_id))
        if row is not None:
            row.card_channel, row.card_ts = channel, ts
            session.add(row)


@dataclass(frozen=True)
class PostedCard:
    approver_id: str
    channel: str | None
    ts: str | None


def step_cards(rt: Runtime, *, request_id: int, step: int) -> list[PostedCard]:
    """Every approver of a step and where their card was posted (None until it was)."""
    with rt.db.read() as session:
        rows = session.exec(
            select(StepApprover)
            .where(StepApprover.request_id == request_id, StepApprover.step == step)
            .order_by(col(StepApprover.approver_id))
        ).all()
        return [PostedCard(r.approver_id, r.card_channel, r.card_ts) for r in rows]


def check_may_decide(rt: Runtime, *, request_id: int, step: int, actor: str) -> str:
    """Raise unless ``actor`` may decide that step now; returns the product's name."""
    with rt.db.read() as session:
        req = session.get(LicenseRequest, request_id)
        if req is None:
            raise Conflict(f"Request #{request_id} does not exist.")
        _authorize(session, req, step=step, actor=actor)
        product = session.get(Product, req.product_id)
        return product.name if product else req.product_id
