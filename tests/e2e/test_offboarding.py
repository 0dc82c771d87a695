"""Offboarding (user_change deleted) and /license cancel."""

from __future__ import annotations

import json

from sqlmodel import col, select

from bot.runtime import Runtime
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from handlers import ids
from storage.models import Assignment, AuditEntry, LicenseRequest
from tests.company import ADMIN, EMPLOYEE, MANAGER, NEWHIRE, OUTSIDER
from tests.e2e.conftest import dm_with, ephemeral_to


def approve(
    slack: SlackSim, sender: SlackSender, who: str, product: str, approver: str, text: str
) -> None:
    sender.slash(who, f"request {product}")
    sender.click(approver, slack.wait_for(dm_with(slack, approver, text)), label="Approve")


def statuses(rt: Runtime) -> dict[int, str]:
    with rt.db.read() as s:
        return {r.id or 0: r.status for r in s.exec(select(LicenseRequest))}


def test_a_deactivated_account_gives_back_its_seats_and_requests(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    approve(slack, sender, EMPLOYEE, "sublime", ADMIN, "Sublime")  # a key
    approve(slack, sender, EMPLOYEE, "figma", MANAGER, "#2")  # the only figma seat
    approve(slack, sender, NEWHIRE, "figma", MANAGER, "#3")  # waitlisted behind it
    sender.slash(EMPLOYEE, "request intellij")  # #4, pending with the manager
    card = slack.wait_for(dm_with(slack, MANAGER, "IntelliJ"))
    assert statuses(runtime)[3] == "waitlisted"

    gone = {"type": "user_change", "user": {"id": EMPLOYEE, "deleted": True, "name": "erik"}}
    assert sender.event(gone, event_id="EvGONE1").status_code == 200

    with runtime.db.read() as s:
        mine = s.exec(select(Assignment).where(Assignment.user_id == EMPLOYEE)).all()
    assert {a.release_reason for a in mine} == {"offboarded"} and len(mine) == 2
    assert statuses(runtime)[4] == "cancelled"
    assert statuses(runtime)[3] == "approved"  # the freed seat went to the queue
    slack.wait_for(dm_with(slack, NEWHIRE, "Figma"))
    notice = slack.wait_for(
        lambda: next(
            (m for m in slack.messages_in("CIT00001") if "deactivated" in m.all_text), None
        )
    )
    assert "sublime" in notice.all_text and "vendor" in notice.all_text and "#4" in notice.all_text
    slack.wait_for(lambda: (m := slack.find_message(card.channel, card.ts)) and m.history)
    updated = slack.find_message(card.channel, card.ts)
    assert updated is not None and ids.ACTION_APPROVE not in json.dumps(updated.blocks)

    # A repeat (Slack sends user_change for other reasons too) changes nothing.
    with runtime.db.read() as s:
        before = len(s.exec(select(AuditEntry)).all())
    sender.event(gone, event_id="EvGONE2")
    with runtime.db.read() as s:
        assert len(s.exec(select(AuditEntry)).all()) == before


def test_an_active_account_change_does_nothing(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    approve(slack, sender, EMPLOYEE, "figma", MANAGER, "Figma")
    sender.event({"type": "user_change", "user": {"id": EMPLOYEE, "deleted": False}})
    with runtime.db.read() as s:
        held = s.exec(select(Assignment).where(col(Assignment.released_at).is_(None))).all()
    assert [a.user_id for a in held] == [EMPLOYEE]


def test_cancel_withdraws_my_open_request_only(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(EMPLOYEE, "request intellij")
    card = slack.wait_for(dm_with(slack, MANAGER, "IntelliJ"))
    sender.slash(OUTSIDER, "cancel 1")
    slack.wait_for(ephemeral_to(slack, OUTSIDER, "can't cancel"))
    sender.slash(EMPLOYEE, "cancel nope")
    slack.wait_for(ephemeral_to(slack, EMPLOYEE, "Say which request"))
    assert statuses(runtime) == {1: "pending"}
    sender.slash(EMPLOYEE, "cancel #1")
    slack.wait_for(ephemeral_to(slack, EMPLOYEE, "is cancelled"))
    assert statuses(runtime) == {1: "cancelled"}
    slack.wait_for(lambda: (m := slack.find_message(card.channel, card.ts)) and m.history)
    sender.slash(EMPLOYEE, "cancel 1")
    slack.wait_for(ephemeral_to(slack, EMPLOYEE, "already cancelled"))
    # App Home no longer offers the manager a decision on it.
    sender.app_home_opened(MANAGER)
    home = slack.wait_for(lambda: slack.home(MANAGER))
    assert ids.ACTION_APPROVE not in json.dumps(home.blocks)
