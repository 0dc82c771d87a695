"""Read models for what people see: request cards, my licenses, my requests, my approvals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from bot import catalog, delivery, routing
from bot.catalog import ProductInfo
from bot.clock import utc
from bot.runtime import Runtime
from storage.models import (
    Assignment,
    Decision,
    LicenseRequest,
    Product,
    StepApprover,
)


@dataclass(frozen=True)
class DecisionView:
    step: int  # 0-based
    decider_id: str
    outcome: str  # approved | denied | auto
    reason: str
    decided_at: datetime


@dataclass(frozen=True)
class RequestCard:
    id: int
    product: ProductInfo
    requester_id: str
    requested_by: str
    justification: str
    status: str  # pending | approved | denied | waitlisted
    step: int  # 0-based step open now (or last step reached)
    step_count: int
    step_labels: list[str]  # readable names of the steps, in order
    decisions: list[DecisionView]
    approvers: dict[int, list[str]]  # step -> approvers
    fallback_why: dict[int, str]  # step -> why it went to IT (empty if it did not)
    created_at: datetime
    waitlist_position: int = 0
    # Where each approver's card was posted, (step, approver) -> (channel, ts): read with the
    # card, so updating the cards needs no second query.
    posted: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)

    def decision_for(self, step: int) -> DecisionView | None:
        return next((d for d in self.decisions if d.step == step), None)


@dataclass(frozen=True)
class LicenseView:
    assignment_id: int
    product_id: str
    product_name: str
    delivery: str
    assigned_at: datetime
    has_key: bool
    expires_at: datetime | None = None  # time-limited grants (product max_days)


@dataclass(frozen=True)
class Overview:
    """Everything App Home shows one person."""

    user_id: str
    licenses: list[LicenseView]
    requests: list[RequestCard]  # open (pending or waitlisted), newest first
    waiting_for_me: list[RequestCard] = field(default_factory=list)


def _card(session: Session, req: LicenseRequest) -> RequestCard:
    assert req.id is not None
    decisions = [
        DecisionView(d.step, d.decider_id, d.outcome, d.reason, utc(d.decided_at))
        for d in session.exec(
            select(Decision).where(Decision.request_id == req.id).order_by(col(Decision.step))
        )
    ]
    approvers: dict[int, list[str]] = {}
    why: dict[int, str] = {}
    posted: dict[tuple[int, str], tuple[str, str]] = {}
    for row in session.exec(
        select(StepApprover)
        .where(StepApprover.request_id == req.id)
        .order_by(col(StepApprover.step), col(StepApprover.approver_id))
    ):
        approvers.setdefault(row.step, []).append(row.approver_id)
        if row.why:
            why[row.step] = row.why
        if row.card_channel and row.card_ts:
            posted[(row.step, row.approver_id)] = (row.card_channel, row.card_ts)
    return RequestCard(
        id=req.id,
        product=catalog.product_info(session, req.product_id),
        requester_id=req.requester_id,
        requested_by=req.requested_by,
        justification=req.justification,
        status=req.status,
        step=req.step,
        step_count=len(req.route),
        step_labels=[routing.describe(s) for s in req.route],
        decisions=decisions,
        approvers=approvers,
        fallback_why=why,
        created_at=utc(req.created_at),
        waitlist_position=delivery.waitlist_position(session, req),
        posted=posted,
    )


def request_card(rt: Runtime, request_id: int) -> RequestCard | None:
    with rt.db.read() as session:
        req = session.get(LicenseRequest, request_id)
        return _card(session, req) if req else None


def licenses_of(session: Session, user_id: str) -> list[LicenseView]:
    rows = session.exec(
        select(Assignment, Product)
        .join(Product, col(Product.id) == col(Assignment.product_id))
        .where(Assignment.user_id == user_id, col(Assignment.released_at).is_(None))
        .order_by(col(Product.name))
    ).all()
    return [
        LicenseView(
            a.id or 0,
            p.id,
            p.name,
            p.delivery,
            utc(a.assigned_at),
            a.key_id is not None,
            utc(a.expires_at) if a.expires_at else None,
        )
        for a, p in rows
    ]


def my_licenses(rt: Runtime, user_id: str) -> list[LicenseView]:
    with rt.db.read() as session:
        return licenses_of(session, user_id)


def overview(rt: Runtime, user_id: str) -> Overview:
    with rt.db.read() as session:
        mine = session.exec(
            select(LicenseRequest)
            .where(
                LicenseRequest.requester_id == user_id,
                col(LicenseRequest.status).in_(("pending", "waitlisted")),
            )
            .order_by(col(LicenseRequest.id).desc())
            .limit(20)
        ).all()
        waiting = session.exec(
            select(LicenseRequest)
            .join(StepApprover, col(StepApprover.request_id) == col(LicenseRequest.id))
            .where(
                StepApprover.approver_id == user_id,
                col(StepApprover.step) == col(LicenseRequest.step),
                LicenseRequest.status == "pending",
            )
            .order_by(col(LicenseRequest.id))
            .limit(20)
        ).all()
        return Overview(
            user_id=user_id,
            licenses=licenses_of(session, user_id),
            requests=[_card(session, r) for r in mine],
            waiting_for_me=[_card(session, r) for r in waiting],
        )
