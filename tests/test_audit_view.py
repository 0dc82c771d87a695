"""``audit_view.recent``: who may look, and which entries are about a person or a product."""

from __future__ import annotations

from datetime import UTC

import pytest

from bot import approvals, audit_view, roles
from bot.errors import InputError, NotAllowed, UnknownProduct
from bot.requests import submit
from bot.runtime import Runtime
from storage import audit
from tests import company

AUDITOR = "UAUD00001"


@pytest.fixture
def office(runtime: Runtime) -> Runtime:
    """The sample company, an auditor, and a request by the employee approved by the manager."""
    company.seed(runtime)
    roles.grant(runtime, AUDITOR, "auditor", actor="test")
    result = submit(runtime, asked_by=company.EMPLOYEE, product_id="figma", justification="UI")
    approvals.decide(
        runtime, request_id=result.request_id, step=0, actor=company.MANAGER, approve=True
    )
    submit(
        runtime,
        asked_by=company.MANAGER,
        product_id="slack-huddles",
        justification="",
        for_user=company.NEWHIRE,
    )
    return runtime


def actions(lines: list[audit_view.AuditLine]) -> list[str]:
    return [line.action for line in lines]


@pytest.mark.parametrize("viewer", [AUDITOR, company.ADMIN])
def test_auditors_and_it_admins_see_a_persons_entries_newest_first(
    office: Runtime, viewer: str
) -> None:
    lines = audit_view.recent(office, viewer=viewer, user=company.EMPLOYEE)

    # Their own request, the manager's approval of it (a request of theirs), the seat they got.
    assert actions(lines) == [
        "seat.assigned",
        "request.approved",
        "step.approved",
        "step.opened",
        "request.created",
    ]
    assert [line.id for line in lines] == sorted((line.id for line in lines), reverse=True)
    assert lines[-1].actor == company.EMPLOYEE and lines[-1].details["product"] == "figma"
    assert all(line.at.tzinfo is UTC for line in lines)


def test_a_person_is_found_as_actor_subject_and_for(office: Runtime) -> None:
    manager = audit_view.recent(office, viewer=AUDITOR, user=company.MANAGER)
    newhire = audit_view.recent(office, viewer=AUDITOR, user=company.NEWHIRE)
    auditor = audit_view.recent(office, viewer=AUDITOR, user=AUDITOR)

    assert {"step.approved", "request.created"} <= set(actions(manager))  # as actor
    assert "request.created" in actions(newhire)  # details "for" (and their request)
    assert "seat.assigned" in actions(newhire)  # subject user:<id>
    assert actions(auditor) == ["role.granted"]  # role changes name the user as subject


def test_a_for_inside_free_text_does_not_match(office: Runtime) -> None:
    submit(
        office,
        asked_by=company.ORPHAN,
        product_id="sublime",
        justification=f'"for":"{company.IT1}"',
    )
    assert audit_view.recent(office, viewer=AUDITOR, user=company.IT1) == []


def test_a_products_entries(office: Runtime) -> None:
    lines = audit_view.recent(office, viewer=company.ADMIN, product="FIGMA")

    assert actions(lines) == [
        "seat.assigned",
        "request.approved",
        "step.approved",
        "step.opened",
        "request.created",
    ]
    keys = audit_view.recent(office, viewer=AUDITOR, product="intellij")
    assert actions(keys) == ["keys.imported"]


def test_only_the_latest_entries_are_returned(office: Runtime) -> None:
    with office.db.transaction() as session:
        for i in range(30):
            audit.append(
                session,
                office.audit_keys,
                at=office.clock.now(),
                actor=company.EMPLOYEE,
                action="test.event",
                subject=f"thing:{i}",
                details={"i": i},
            )

    lines = audit_view.recent(office, viewer=AUDITOR, user=company.EMPLOYEE)

    assert len(lines) == audit_view.DEFAULT_LIMIT == 20
    assert [line.details["i"] for line in lines] == list(range(29, 9, -1))


@pytest.mark.parametrize("viewer", [company.EMPLOYEE, company.MANAGER, company.IT1, "UNOBODY01"])
def test_anyone_else_is_refused_before_anything_is_looked_up(office: Runtime, viewer: str) -> None:
    for target in ({"user": company.EMPLOYEE}, {"product": "figma"}, {"product": "no-such"}):
        with pytest.raises(NotAllowed, match="can't view the audit log"):
            audit_view.recent(office, viewer=viewer, **target)


def test_a_revoked_auditor_is_refused(office: Runtime) -> None:
    roles.revoke(office, AUDITOR, "auditor", actor="test")
    with pytest.raises(NotAllowed):
        audit_view.recent(office, viewer=AUDITOR, user=company.EMPLOYEE)


def test_unknown_products_and_malformed_users_are_refused(office: Runtime) -> None:
    with pytest.raises(UnknownProduct) as unknown:
        audit_view.recent(office, viewer=AUDITOR, product="figam")
    assert unknown.value.suggestions == ["figma"]
    with pytest.raises(UnknownProduct) as nul:
        audit_view.recent(office, viewer=AUDITOR, product="fig\x00ma")
    assert nul.value.suggestions == ["figma"]
    with pytest.raises(InputError, match="not a Slack user"):
        audit_view.recent(office, viewer=AUDITOR, user="U%_")
    with pytest.raises(ValueError, match="exactly one"):
        audit_view.recent(office, viewer=AUDITOR)
