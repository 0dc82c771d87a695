"""Approval reminders (once per approver and step) and escalation to it_admin (once per step)."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot import approvals, jobs, requests
from bot.clock import ManualClock
from bot.runtime import Runtime
from storage.db import Database
from storage.models import AuditEntry, LicenseRequest, OutboxMessage, StepApprover
from tests.company import ADMIN, EMPLOYEE, IT1, IT2, MANAGER, seed
from tests.conftest import START


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    seed(runtime)
    return runtime


def changes(rt: Runtime) -> int:
    with rt.db.read() as s:
        return len(
            s.exec(
                select(AuditEntry.id).where(
                    col(AuditEntry.action).in_(("request.reminded", "step.escalated"))
                )
            ).all()
        )


def run(rt: Runtime, clock: ManualClock) -> int:
    """Run the job as the scheduler does; how many reminders and escalations it made."""
    before = changes(rt)
    assert jobs.JOBS["reminders"].run(rt, clock.now())  # no period to claim: it always runs
    return changes(rt) - before


def queued(rt: Runtime, kind: str) -> list[dict[str, object]]:
    with rt.db.read() as s:
        rows = s.exec(
            select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(col(OutboxMessage.id))
        ).all()
    return [r.payload for r in rows]


def audited(rt: Runtime, action: str) -> list[dict[str, object]]:
    with rt.db.read() as s:
        rows = s.exec(
            select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        ).all()
    return [json.loads(r.details) for r in rows]


def approvers(rt: Runtime, request_id: int, step: int) -> list[StepApprover]:
    with rt.db.read() as s:
        return list(
            s.exec(
                select(StepApprover)
                .where(StepApprover.request_id == request_id, StepApprover.step == step)
                .order_by(col(StepApprover.approver_id))
            ).all()
        )


def ask(rt: Runtime, product: str = "figma", who: str = EMPLOYEE) -> int:
    return requests.submit(rt, asked_by=who, product_id=product, justification="work").request_id


def test_one_reminder_per_approver_after_24_hours_however_often_the_job_runs(
    rt: Runtime, clock: ManualClock
) -> None:
    request_id = ask(rt)
    clock.advance(timedelta(hours=23, minutes=59))
    assert not run(rt, clock)
    assert queued(rt, "approval_reminder") == []

    clock.advance(timedelta(minutes=1))
    assert run(rt, clock)
    assert not run(rt, clock)  # the same moment again: nothing new
    clock.advance(timedelta(hours=10))
    assert not run(rt, clock)  # later, still before escalation: nothing new

    reminders = queued(rt, "approval_reminder")
    assert [(r["request_id"], r["approver_id"], r["step"]) for r in reminders] == [
        (request_id, MANAGER, 0)
    ]
    assert reminders[0]["opened_at"] == START.isoformat()
    [row] = approvers(rt, request_id, 0)
    assert row.reminded_at is not None and not row.escalated
    [entry] = audited(rt, "request.reminded")
    assert entry["approver"] == MANAGER and entry["product"] == "figma" and entry["step"] == 1


def test_every_approver_of_a_group_step_is_reminded_counting_from_when_the_step_opened(
    rt: Runtime, clock: ManualClock
) -> None:
    request_id = ask(rt, "intellij")
    clock.advance(timedelta(hours=20))
    approvals.decide(rt, request_id=request_id, step=0, actor=MANAGER, approve=True)
    with rt.db.read() as s:
        req = s.get(LicenseRequest, request_id)
        assert req is not None and req.step == 1 and req.step_opened_at is not None

    clock.advance(timedelta(hours=5))  # 25 h after the request, 5 h after step 2 opened
    assert not run(rt, clock)
    clock.advance(timedelta(hours=19))  # step 2 has waited 24 h
    assert run(rt, clock)
    reminders = queued(rt, "approval_reminder")
    assert sorted((r["approver_id"], r["step"]) for r in reminders) == [(IT1, 1), (IT2, 1)]
    assert all(r["opened_at"] == (START + timedelta(hours=20)).isoformat() for r in reminders)


def test_reminder_and_escalation_hours_come_from_the_policy(
    rt: Runtime, clock: ManualClock
) -> None:
    rt.policy = dataclasses.replace(
        rt.policy, reminder_after=timedelta(hours=2), escalate_after=timedelta(hours=5)
    )
    request_id = ask(rt)
    clock.advance(timedelta(hours=2))
    assert run(rt, clock)
    assert len(queued(rt, "approval_reminder")) == 1
    clock.advance(timedelta(hours=3))
    assert run(rt, clock)
    [escalated] = audited(rt, "step.escalated")
    assert escalated["after_hours"] == "5" and escalated["added"] == [ADMIN]
    assert [r.why for r in approvers(rt, request_id, 0) if r.approver_id == ADMIN] == [
        "escalated after 5 h without a decision"
    ]


def test_escalation_after_72_hours_adds_it_admins_once_and_they_can_decide(
    rt: Runtime, clock: ManualClock
) -> None:
    request_id = ask(rt)
    clock.advance(timedelta(hours=24))
    run(rt, clock)
    clock.advance(timedelta(hours=48))
    assert run(rt, clock)
    assert not run(rt, clock)
    clock.advance(timedelta(days=10))
    assert not run(rt, clock)

    rows = {r.approver_id: r for r in approvers(rt, request_id, 0)}
    assert set(rows) == {MANAGER, ADMIN}
    assert rows[ADMIN].escalated and rows[ADMIN].why == "escalated after 72 h without a decision"
    assert rows[MANAGER].escalated  # the step's marker: escalated once
    assert [(p["approver_id"], p["step"]) for p in queued(rt, "approval_card")] == [
        (MANAGER, 0),
        (ADMIN, 0),
    ]
    assert queued(rt, "request_escalated") == [
        {"request_id": request_id, "step": 0, "added": [ADMIN], "after_hours": "72"}
    ]
    assert len(queued(rt, "approval_reminder")) == 1  # the escalated step is not reminded again
    [entry] = audited(rt, "step.escalated")
    assert entry == {
        "product": "figma",
        "step": 1,
        "of": 1,
        "after_hours": "72",
        "approvers": [MANAGER],
        "added": [ADMIN],
    }

    result = approvals.decide(rt, request_id=request_id, step=0, actor=ADMIN, approve=True)
    assert result.request_status == "approved"


def test_a_step_first_seen_past_72_hours_escalates_without_a_reminder(
    rt: Runtime, clock: ManualClock
) -> None:
    ask(rt)
    clock.advance(timedelta(hours=80))
    assert run(rt, clock)
    assert queued(rt, "approval_reminder") == []
    assert len(audited(rt, "step.escalated")) == 1


def test_it_admins_already_approving_are_not_added_again(rt: Runtime, clock: ManualClock) -> None:
    request_id = ask(rt, "sublime")  # approval: [role:it_admin]
    clock.advance(timedelta(hours=72))
    assert run(rt, clock)
    assert not run(rt, clock)
    assert [r.approver_id for r in approvers(rt, request_id, 0)] == [ADMIN]
    [entry] = audited(rt, "step.escalated")
    assert entry["added"] == [] and entry["approvers"] == [ADMIN]
    assert queued(rt, "request_escalated") == [] and queued(rt, "escalation_nobody") == []
    assert [p["approver_id"] for p in queued(rt, "approval_card")] == [ADMIN]


def test_no_it_admin_to_escalate_to_is_told_to_it_once(rt: Runtime, clock: ManualClock) -> None:
    rt.admins = frozenset()
    request_id = ask(rt)
    clock.advance(timedelta(hours=72))
    assert run(rt, clock)
    assert not run(rt, clock)
    assert queued(rt, "escalation_nobody") == [
        {"request_id": request_id, "step": 0, "after_hours": "72"}
    ]
    assert [r.approver_id for r in approvers(rt, request_id, 0)] == [MANAGER]


def test_the_requester_is_never_added_as_their_own_approver(
    rt: Runtime, clock: ManualClock
) -> None:
    rt.admins = frozenset({ADMIN, EMPLOYEE})
    request_id = ask(rt)
    clock.advance(timedelta(hours=72))
    run(rt, clock)
    assert [r.approver_id for r in approvers(rt, request_id, 0)] == [ADMIN, MANAGER]


def test_decided_and_cancelled_requests_are_never_reminded_nor_escalated(
    rt: Runtime, clock: ManualClock
) -> None:
    denied = ask(rt)
    cancelled = ask(rt, "intellij")
    approvals.decide(rt, request_id=denied, step=0, actor=MANAGER, approve=False, reason="no")
    requests.cancel(rt, request_id=cancelled, actor=EMPLOYEE)
    clock.advance(timedelta(days=30))
    assert not run(rt, clock)
    assert queued(rt, "approval_reminder") == []
    assert audited(rt, "step.escalated") == [] and audited(rt, "request.reminded") == []


def test_two_processes_running_the_job_at_once_remind_and_escalate_once(
    rt: Runtime, clock: ManualClock
) -> None:
    # Two runtimes with their own engines, as two `serve` processes on one database.
    other = Runtime(
        db=Database(rt.db.url),
        vault=rt.vault,
        clock=clock,
        audit_keys=rt.audit_keys,
        admins=rt.admins,
    )
    for product in ("figma", "intellij", "sublime"):
        ask(rt, product)

    def race() -> None:
        barrier = threading.Barrier(2)

        def fire(runtime: Runtime) -> None:
            barrier.wait()
            run(runtime, clock)

        threads = [threading.Thread(target=fire, args=(r,)) for r in (rt, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    try:
        clock.advance(timedelta(hours=24))
        race()
        assert sorted(str(p["approver_id"]) for p in queued(rt, "approval_reminder")) == sorted(
            [MANAGER, MANAGER, ADMIN]
        )
        clock.advance(timedelta(hours=48))
        race()
    finally:
        other.db.dispose()
    assert len(audited(rt, "step.escalated")) == 3
    assert len(audited(rt, "request.reminded")) == 3
    assert len(queued(rt, "request_escalated")) == 2  # figma, intellij (sublime: IT already)
