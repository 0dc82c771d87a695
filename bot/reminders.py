"""Approval reminders and escalation: a step nobody decides does not wait forever.

Both count from the moment the open step opened (``license_request.step_opened_at``, set by
``approvals.open_step``; requests older than that column count from ``created_at``):

- after ``policy.reminder_after`` (``LICENSEBOT_REMINDER_HOURS``, 24 h) each approver of the
  open step gets one reminder: the approval card again, as a new DM with the same Approve/Deny
  buttons (``step_approver.reminded_at`` records it, so it is sent once per approver and step);
- after ``policy.escalate_after`` (``LICENSEBOT_ESCALATION_HOURS``, 72 h) the step escalates
  once: every ``it_admin`` who is not already one of its approvers (and is not the requester)
  becomes one, with its own card; the requester is told. When there is no ``it_admin`` to
  escalate to, IT is told so instead.

``step_approver.escalated`` is set on every row of a step once that step has escalated (the
rows escalation adds carry it from the start and say why in ``why``); it is the step's "already
escalated" marker, and an escalated step gets no further reminders (its approvers were reminded
or have just been handed the card). Both changes are audited (``request.reminded``,
``step.escalated``).

The ``reminders`` job runs every 15 minutes. Its scans are SQL queries over open steps, and
their markers are written in the same transaction as the notifications, under row locks: two
runs, or two processes, never remind or escalate the same step twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from bot import notifications, roles
from bot.clock import utc
from bot.runtime import Runtime
from storage import audit
from storage.models import LicenseRequest, StepApprover

SYSTEM_ACTOR = "licensebot"
JOB_ID = "reminders"

# When the open step opened: requests from before step_opened_at existed count from creation.
_OPENED = func.coalesce(col(LicenseRequest.step_opened_at), col(LicenseRequest.created_at))
# The open step's approver rows of a request.
_OF_OPEN_STEP = and_(
    col(StepApprover.request_id) == col(LicenseRequest.id),
    col(StepApprover.step) == col(LicenseRequest.step),
)


@dataclass(frozen=True)
class ReminderResult:
    reminded: int  # approvers reminded
    escalated: int  # steps escalated


def hours(delta: timedelta) -> str:
    """``72`` for 72 hours, ``1.5`` for 90 minutes: how the settings are written."""
    value = delta.total_seconds() / 3600
    return f"{value:g}"


def remind(session: Session, rt: Runtime, *, now: datetime) -> int:
    """Remind each approver of a step open longer than ``reminder_after``; once each."""
    cutoff = now - rt.policy.reminder_after
    # Locked: a concurrent run waits here and then no longer sees these rows as unreminded.
    due = session.execute(
        sa_select(
            col(StepApprover.request_id),
            col(StepApprover.step),
            col(StepApprover.approver_id),
            col(LicenseRequest.product_id),
            _OPENED,
        )
        .join(LicenseRequest, _OF_OPEN_STEP)
        .where(
            col(LicenseRequest.status) == "pending",
            cutoff >= _OPENED,
            col(StepApprover.reminded_at).is_(None),
            col(StepApprover.escalated).is_(False),
        )
        .order_by(col(StepApprover.request_id), col(StepApprover.approver_id))
        .with_for_update(of=StepApprover)
    ).all()
    if not due:
        return 0
    # One UPDATE by primary key for all of them (an executemany, not a statement per row).
    session.execute(
        update(StepApprover),
        [
            {"request_id": r, "step": s, "approver_id": a, "reminded_at": now}
            for r, s, a, _p, _o in due
        ],
    )
    for request_id, step, approver_id, product_id, opened in due:
        opened_at = utc(opened)
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=SYSTEM_ACTOR,
            action="request.reminded",
            subject=f"request:{request_id}",
            details={
                "product": product_id,
                "step": step + 1,
                "approver": approver_id,
                "waiting_since": opened_at.isoformat(),
            },
        )
        notifications.queue(
            session,
            notifications.APPROVAL_REMINDER,
            now=now,
            request_id=request_id,
            step=step,
            approver_id=approver_id,
            opened_at=opened_at.isoformat(),
        )
    return len(due)


def _due_for_escalation(cutoff: datetime) -> list[ColumnElement[Any]]:
    has_approvers = exists().where(_OF_OPEN_STEP)
    escalated = exists().where(_OF_OPEN_STEP, col(StepApprover.escalated).is_(True))
    # A step with no approver rows at all was already reported to IT as stalled when it opened.
    return [
        col(LicenseRequest.status) == "pending",
        cutoff >= _OPENED,
        has_approvers,
        ~escalated,
    ]


def escalate(session: Session, rt: Runtime, *, now: datetime) -> int:
    """Hand every step open longer than ``escalate_after`` to IT as well; once per step."""
    conditions = _due_for_escalation(now - rt.policy.escalate_after)
    # Lock the requests first (approvals.decide locks them too), then look again in a new
    # statement: on PostgreSQL it sees what a concurrent run committed while we waited.
    locked = session.exec(
        select(LicenseRequest.id)
        .where(*conditions)
        .order_by(col(LicenseRequest.id))
        .with_for_update()
    ).all()
    if not locked:
        return 0
    due = session.exec(
        select(LicenseRequest)
        .where(col(LicenseRequest.id).in_(locked), *conditions)
        .order_by(col(LicenseRequest.id))
    ).all()
    admins = roles.holders(session, "it_admin", rt.admins)
    after = hours(rt.policy.escalate_after)
    for req in due:
        _escalate_one(session, rt, req, admins=admins, after=after, now=now)
    return len(due)


def _escalate_one(
    session: Session,
    rt: Runtime,
    req: LicenseRequest,
    *,
    admins: list[str],
    after: str,
    now: datetime,
) -> None:
    assert req.id is not None
    before = list(
        session.exec(
            select(StepApprover.approver_id)
            .where(StepApprover.request_id == req.id, StepApprover.step == req.step)
            .order_by(col(StepApprover.approver_id))
        ).all()
    )
    # Like routing: the requester (and whoever asked for them) never approves their request.
    eligible = [a for a in admins if a not in (req.requester_id, req.requested_by)]
    added = [a for a in eligible if a not in before]
    session.execute(
        update(StepApprover)
        .where(col(StepApprover.request_id) == req.id, col(StepApprover.step) == req.step)
        .values(escalated=True)
    )
    why = f"escalated after {after} h without a decision"
    for admin in added:
        session.add(
            StepApprover(
                request_id=req.id, step=req.step, approver_id=admin, why=why, escalated=True
            )
        )
    session.flush()
    audit.append(
        session,
        rt.audit_keys,
        at=now,
        actor=SYSTEM_ACTOR,
        action="step.escalated",
        subject=f"request:{req.id}",
        details={
            "product": req.product_id,
            "step": req.step + 1,
            "of": len(req.route),
            "after_hours": after,
            "approvers": before,
            "added": added,
        },
    )
    for admin in added:
        notifications.queue(
            session,
            notifications.APPROVAL_CARD,
            now=now,
            request_id=req.id,
            step=req.step,
            approver_id=admin,
        )
    if added:
        notifications.queue(
            session,
            notifications.REQUEST_ESCALATED,
            now=now,
            request_id=req.id,
            step=req.step,
            added=added,
            after_hours=after,
        )
    elif not eligible:
        notifications.queue(
            session,
            notifications.ESCALATION_NOBODY,
            now=now,
            request_id=req.id,
            step=req.step,
            after_hours=after,
        )
    # Otherwise every it_admin already approves this step: they had the card and a reminder.


def scan(session: Session, rt: Runtime, *, now: datetime) -> ReminderResult:
    """Escalate first: a step due for both is escalated, and escalated steps are not reminded."""
    escalated = escalate(session, rt, now=now)
    reminded = remind(session, rt, now=now)
    return ReminderResult(reminded=reminded, escalated=escalated)


def run(rt: Runtime, now: datetime) -> bool:
    """The scheduled job (every 15 minutes). It claims no period: each run does what is due,
    and the markers make it idempotent per approver and per step. Always True (it ran)."""
    with rt.db.transaction() as session:
        result = scan(session, rt, now=now)
    if result.reminded or result.escalated:
        rt.wake_dispatcher()
    return True
