"""Approval reminders and escalation over Slack: the reminder DM carries working buttons, and an
escalated step can be approved by IT, closing every approver's card."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import col, select

from bot import jobs
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import Message, SlackSim
from handlers import ids
from storage.models import AuditEntry, LicenseRequest, OutboxMessage
from tests.company import ADMIN, EMPLOYEE, MANAGER
from tests.e2e.conftest import dm_with


def bot_dms(slack: SlackSim, user: str, containing: str) -> list[Message]:
    return [
        m
        for m in slack.messages_in(slack.dm_channel(user))
        if not m.is_ephemeral and containing in m.all_text
    ]


def has_buttons(message: Message) -> bool:
    return ids.ACTION_APPROVE in json.dumps(message.blocks)


def run_reminders(runtime: Runtime, clock: ManualClock) -> int:
    """Run the job as the scheduler does; how many reminders and escalations it made."""

    def changes() -> int:
        with runtime.db.read() as s:
            actions = s.exec(select(AuditEntry.action)).all()
        return sum(a in ("request.reminded", "step.escalated") for a in actions)

    before = changes()
    assert jobs.JOBS["reminders"].run(runtime, clock.now())
    return changes() - before


def all_sent(runtime: Runtime) -> bool:
    with runtime.db.read() as s:
        return not s.exec(select(OutboxMessage.id).where(OutboxMessage.status == "pending")).all()


def current(slack: SlackSim, message: Message) -> Message:
    found = slack.find_message(message.channel, message.ts)
    assert found is not None
    return found


def test_one_reminder_dm_whose_buttons_decide_the_step(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    sender.slash(EMPLOYEE, "request figma for the new brand")
    card = slack.wait_for(dm_with(slack, MANAGER, "for the new brand"))
    assert has_buttons(card)

    clock.advance(timedelta(hours=24))
    assert run_reminders(runtime, clock)
    assert not run_reminders(runtime, clock)  # twice: still one reminder
    reminder = slack.wait_for(dm_with(slack, MANAGER, "Reminder"))
    assert f"<@{EMPLOYEE}> has been waiting 24 hours" in reminder.all_text
    assert "Figma Professional" in reminder.all_text and "for the new brand" in reminder.all_text
    assert has_buttons(reminder) and reminder.ts != card.ts
    # The first card hands its buttons over to the reminder.
    slack.wait_for(lambda: not has_buttons(current(slack, card)), what="old card without buttons")
    assert "newer message below" in current(slack, card).all_text
    clock.advance(timedelta(hours=1))
    run_reminders(runtime, clock)
    slack.wait_for(lambda: all_sent(runtime), what="the outbox delivered")
    assert len(bot_dms(slack, MANAGER, "Reminder")) == 1

    clock.advance(timedelta(seconds=5))  # Slack's pace: one message per second per channel
    assert sender.click(MANAGER, reminder, label="Approve").status_code == 200
    slack.wait_for(
        lambda: f"Approved by <@{MANAGER}>" in current(slack, reminder).all_text,
        what="the reminder updated as decided",
    )
    assert not has_buttons(current(slack, reminder))
    slack.wait_for(dm_with(slack, EMPLOYEE, "IT will set up your seat"))


def test_escalated_step_is_approved_by_it_and_the_approvers_card_shows_it(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    sender.slash(EMPLOYEE, "request figma for the rebrand")
    slack.wait_for(dm_with(slack, MANAGER, "for the rebrand"))
    clock.advance(timedelta(hours=24))
    run_reminders(runtime, clock)
    reminder = slack.wait_for(dm_with(slack, MANAGER, "Reminder"))

    clock.advance(timedelta(hours=48))
    assert run_reminders(runtime, clock)
    assert not run_reminders(runtime, clock)
    admin_card = slack.wait_for(dm_with(slack, ADMIN, "for the rebrand"))
    assert has_buttons(admin_card)
    assert "escalated after 72 h without a decision" in admin_card.all_text
    told = slack.wait_for(dm_with(slack, EMPLOYEE, "waited 72 hours"))
    assert f"<@{ADMIN}>" in told.all_text

    clock.advance(timedelta(seconds=5))  # Slack's pace: one message per second per channel
    assert sender.click(ADMIN, admin_card, label="Approve").status_code == 200
    slack.wait_for(
        lambda: f"Approved by <@{ADMIN}>" in current(slack, reminder).all_text,
        what="the manager's card updated as decided by IT",
    )
    assert not has_buttons(current(slack, reminder))
    assert f"Approved by <@{ADMIN}>" in current(slack, admin_card).all_text
    slack.wait_for(dm_with(slack, EMPLOYEE, "IT will set up your seat"))
    assert len(bot_dms(slack, ADMIN, "for the rebrand")) == 1  # one card, no reminder

    with runtime.db.read() as s:
        actions = s.exec(select(AuditEntry.action).order_by(col(AuditEntry.id))).all()
        req = s.exec(select(LicenseRequest)).one()
    assert req.status == "approved"
    assert actions.count("request.reminded") == 1 and actions.count("step.escalated") == 1


def test_a_cancelled_request_is_not_reminded(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    sender.slash(EMPLOYEE, "request figma for a side project")
    card = slack.wait_for(dm_with(slack, MANAGER, "for a side project"))
    clock.advance(timedelta(seconds=5))
    sender.slash(EMPLOYEE, "cancel 1")
    slack.wait_for(lambda: not has_buttons(current(slack, card)), what="card closed")
    clock.advance(timedelta(days=5))
    assert not run_reminders(runtime, clock)
    slack.wait_for(lambda: all_sent(runtime), what="the outbox delivered")
    assert bot_dms(slack, MANAGER, "Reminder") == [] and bot_dms(slack, ADMIN, "Figma") == []
