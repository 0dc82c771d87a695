"""The request → approval → delivery rules, through the domain services."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import col, select

from bot import approvals, delivery, keys, overview, requests
from bot.errors import AlreadyDecided, AlreadyHolds, DuplicateRequest, NotAllowed, UnknownProduct
from bot.runtime import Runtime
from storage.models import AuditEntry, Decision, LicenseRequest, OutboxMessage
from tests import company
from tests.company import ADMIN, EMPLOYEE, IT1, IT2, MANAGER, NEWHIRE, ORPHAN, OUTSIDER


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    company.seed(runtime)
    return runtime


def outbox_kinds(rt: Runtime) -> list[tuple[str, dict[str, object]]]:
    with rt.db.read() as s:
        rows = s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        return [(r.kind, r.payload) for r in rows]


def actions(rt: Runtime) -> list[str]:
    with rt.db.read() as s:
        return [e.action for e in s.exec(select(AuditEntry).order_by(col(AuditEntry.id)))]


def test_request_routes_to_manager_then_group_and_hands_out_a_key(rt: Runtime) -> None:
    result = requests.submit(rt, asked_by=EMPLOYEE, product_id="intellij", justification="API")
    assert (result.status, result.step, result.step_count) == ("pending", 0, 2)
    assert result.next_approvers == [MANAGER]
    assert (
        "approval_card",
        {"request_id": result.request_id, "step": 0, "approver_id": MANAGER},
    ) in outbox_kinds(rt)

    approvals.decide(rt, request_id=result.request_id, step=0, actor=MANAGER, approve=True)
    card = overview.request_card(rt, result.request_id)
    assert card is not None and card.step == 1 and card.approvers[1] == [IT1, IT2]

    done = approvals.decide(rt, request_id=result.request_id, step=1, actor=IT2, approve=True)
    assert done.request_status == "approved"
    licenses = overview.my_licenses(rt, EMPLOYEE)
    assert [(lic.product_id, lic.has_key) for lic in licenses] == [("intellij", True)]
    revealed = delivery.reveal_key(rt, actor=EMPLOYEE, assignment_id=licenses[0].assignment_id)
    assert revealed.key == company.INTELLIJ_KEYS[0]
    assert company.INTELLIJ_KEYS[0] not in repr(revealed)
    assert actions(rt)[-1] == "key.revealed"
    assert "key.assigned" in actions(rt)


def test_unknown_product_suggests_close_matches(rt: Runtime) -> None:
    with pytest.raises(UnknownProduct) as err:
        requests.submit(rt, asked_by=EMPLOYEE, product_id="intelij", justification="")
    assert "intellij" in err.value.suggestions


def test_duplicate_pending_request_and_holder_are_refused(rt: Runtime) -> None:
    first = requests.submit(rt, asked_by=EMPLOYEE, product_id="figma", justification="")
    with pytest.raises(DuplicateRequest) as dup:
        requests.submit(rt, asked_by=EMPLOYEE, product_id="figma", justification="again")
    assert dup.value.request_id == first.request_id
    approvals.decide(rt, request_id=first.request_id, step=0, actor=MANAGER, approve=True)
    with pytest.raises(AlreadyHolds):
        requests.submit(rt, asked_by=EMPLOYEE, product_id="figma", justification="")
    with rt.db.read() as s:
        assert len(s.exec(select(LicenseRequest)).all()) == 1


def test_no_manager_falls_back_to_it_admins_and_says_why(rt: Runtime) -> None:
    result = requests.submit(rt, asked_by=ORPHAN, product_id="figma", justification="")
    assert result.next_approvers == [ADMIN]
    assert "no manager" in result.why


def test_requester_never_approves_own_request(rt: Runtime) -> None:
    # IT1 is in it-team: their own request's it-team step goes to IT2 only.
    result = requests.submit(rt, asked_by=IT1, product_id="sublime", justification="")
    assert result.next_approvers == [ADMIN]
    mine = requests.submit(rt, asked_by=MANAGER, product_id="figma", justification="")
    # Maria has no manager: falls back to IT admins, never herself.
    assert MANAGER not in mine.next_approvers


def test_only_current_step_approvers_may_decide(rt: Runtime) -> None:
    r = requests.submit(rt, asked_by=EMPLOYEE, product_id="intellij", justification="")
    for actor in (EMPLOYEE, IT1, OUTSIDER):
        with pytest.raises(NotAllowed):
            approvals.decide(rt, request_id=r.request_id, step=0, actor=actor, approve=True)
    approvals.decide(rt, request_id=r.request_id, step=0, actor=MANAGER, approve=True)
    with pytest.raises(AlreadyDecided) as again:
        approvals.decide(rt, request_id=r.request_id, step=0, actor=MANAGER, approve=True)
    assert f"<@{MANAGER}>" in again.value.message
    with pytest.raises(NotAllowed):  # the past-step approver is not an approver of step 2
        approvals.decide(rt, request_id=r.request_id, step=1, actor=MANAGER, approve=True)
    with rt.db.read() as s:
        assert len(s.exec(select(Decision)).all()) == 1


def test_simultaneous_clicks_make_one_decision(rt: Runtime) -> None:
    r = requests.submit(rt, asked_by=IT1, product_id="intellij", justification="")
    # IT1 has no manager → step 1 is IT admins; step 2 (it-team) excludes IT1 → IT2 only.
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def click(approve: bool) -> None:
        barrier.wait()
        try:
            approvals.decide(
                rt, request_id=r.request_id, step=0, actor=ADMIN, approve=approve, reason="no"
            )
            outcomes.append("decided")
        except AlreadyDecided:
            outcomes.append("refused")

    threads = [threading.Thread(target=click, args=(flag,)) for flag in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["decided", "refused"]
    with rt.db.read() as s:
        assert len(s.exec(select(Decision).where(Decision.request_id == r.request_id)).all()) == 1


def test_deny_needs_a_reason_and_closes_the_request(rt: Runtime) -> None:
    r = requests.submit(rt, asked_by=EMPLOYEE, product_id="figma", justification="")
    with pytest.raises(Exception, match="reason"):
        approvals.decide(rt, request_id=r.request_id, step=0, actor=MANAGER, approve=False)
    approvals.decide(
        rt,
        request_id=r.request_id,
        step=0,
        actor=MANAGER,
        approve=False,
        reason="Use the team account",
    )
    card = overview.request_card(rt, r.request_id)
    assert card is not None and card.status == "denied"
    assert ("request_denied", {"request_id": r.request_id}) in outbox_kinds(rt)


def test_auto_approved_product_is_assigned_at_once(rt: Runtime) -> None:
    r = requests.submit(rt, asked_by=EMPLOYEE, product_id="slack-huddles", justification="")
    assert r.status == "approved"
    with rt.db.read() as s:
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "request.approved")).one()
    assert entry.actor == "licensebot" and '"automatic":true' in entry.details
    assert ("it_provision", {"request_id": r.request_id}) in outbox_kinds(rt)


def test_out_of_keys_waitlists_then_import_serves_the_queue(rt: Runtime) -> None:
    first = requests.submit(rt, asked_by=EMPLOYEE, product_id="sublime", justification="")
    approvals.decide(rt, request_id=first.request_id, step=0, actor=ADMIN, approve=True)
    second = requests.submit(rt, asked_by=NEWHIRE, product_id="sublime", justification="")
    approvals.decide(rt, request_id=second.request_id, step=0, actor=ADMIN, approve=True)
    card = overview.request_card(rt, second.request_id)
    assert card is not None and card.status == "waitlisted" and card.waitlist_position == 1
    kinds = [k for k, _ in outbox_kinds(rt)]
    assert "request_waitlisted" in kinds and "it_seat_alert" in kinds
    keys.import_keys(rt, "sublime", ["SUBL-NEW-KEY-0002"], actor="test")
    card = overview.request_card(rt, second.request_id)
    assert card is not None and card.status == "approved"
    assert [lic.product_id for lic in overview.my_licenses(rt, NEWHIRE)] == ["sublime"]


def test_manager_may_request_for_a_report_but_nobody_else_may(rt: Runtime) -> None:
    r = requests.submit(
        rt, asked_by=MANAGER, product_id="figma", justification="new hire", for_user=NEWHIRE
    )
    assert r.requester_id == NEWHIRE
    # The manager step would be Maria herself, who asked: it goes to IT instead.
    assert MANAGER not in r.next_approvers
    with pytest.raises(NotAllowed):
        requests.submit(
            rt, asked_by=EMPLOYEE, product_id="figma", justification="", for_user=NEWHIRE
        )


def test_only_the_assignee_may_reveal(rt: Runtime) -> None:
    r = requests.submit(rt, asked_by=EMPLOYEE, product_id="sublime", justification="")
    approvals.decide(rt, request_id=r.request_id, step=0, actor=ADMIN, approve=True)
    lic = overview.my_licenses(rt, EMPLOYEE)[0]
    with pytest.raises(NotAllowed):
        delivery.reveal_key(rt, actor=MANAGER, assignment_id=lic.assignment_id)
    assert "key.revealed" not in actions(rt)


def test_empty_approval_list_approves_at_once(rt: Runtime) -> None:
    # company.CATALOG's slack-huddles has `approval: []` and no auto_approve.
    r = requests.submit(rt, asked_by=EMPLOYEE, product_id="slack-huddles", justification="")
    assert r.status == "approved" and r.next_approvers == []


def test_every_state_change_is_audited(rt: Runtime) -> None:
    from bot import roles

    roles.grant(rt, IT1, "auditor", actor="test")
    r = requests.submit(rt, asked_by=EMPLOYEE, product_id="figma", justification="")
    approvals.decide(rt, request_id=r.request_id, step=0, actor=MANAGER, approve=True)
    r2 = requests.submit(rt, asked_by=NEWHIRE, product_id="figma", justification="")
    approvals.decide(rt, request_id=r2.request_id, step=0, actor=MANAGER, approve=True)
    r3 = requests.submit(rt, asked_by=ORPHAN, product_id="intellij", justification="")
    approvals.decide(
        rt, request_id=r3.request_id, step=0, actor=ADMIN, approve=False, reason="no budget"
    )
    done = set(actions(rt))
    for action in (
        "catalog.loaded",
        "directory.imported",
        "keys.imported",
        "role.granted",
        "request.created",
        "step.opened",
        "step.approved",
        "step.denied",
        "request.approved",
        "request.denied",
        "seat.assigned",
        "request.waitlisted",
    ):
        assert action in done, action


def test_one_structured_log_line_per_committed_event(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="licensebot.events")
    r = requests.submit(rt, asked_by=EMPLOYEE, product_id="figma", justification="secret plans")
    with pytest.raises(DuplicateRequest):
        requests.submit(rt, asked_by=EMPLOYEE, product_id="figma", justification="")
    approvals.decide(rt, request_id=r.request_id, step=0, actor=MANAGER, approve=True)
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "licensebot.events"]
    assert (
        f"event=request.created actor={EMPLOYEE} subject=request:{r.request_id} "
        f"request={r.request_id} product=figma for={EMPLOYEE}" in lines[0]
    )
    assert [line.split()[0] for line in lines] == [
        "event=request.created",
        "event=step.opened",
        "event=step.approved",
        "event=request.approved",
        "event=seat.assigned",
    ]
    assert all("actor=" in line for line in lines)
    assert all("request=" in line for line in lines if "subject=request:" in line)
    assert "secret plans" not in caplog.text  # free text stays in the audit log


def test_two_reveals_at_once_both_show_the_key_and_both_are_audited(rt: Runtime) -> None:
    from storage import audit

    r = requests.submit(rt, asked_by=EMPLOYEE, product_id="sublime", justification="")
    approvals.decide(rt, request_id=r.request_id, step=0, actor=ADMIN, approve=True)
    assignment = overview.my_licenses(rt, EMPLOYEE)[0].assignment_id
    barrier = threading.Barrier(2)
    keys_seen: list[str] = []

    def reveal() -> None:
        barrier.wait()
        keys_seen.append(delivery.reveal_key(rt, actor=EMPLOYEE, assignment_id=assignment).key)

    threads = [threading.Thread(target=reveal) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert keys_seen == [company.SUBLIME_KEYS[0]] * 2
    assert actions(rt).count("key.revealed") == 2
    with rt.db.read() as s:
        assert audit.verify(s, rt.audit_keys).intact
