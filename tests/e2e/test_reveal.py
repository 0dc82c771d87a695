"""Reveal key: only the holder, only in a modal, hidden again after LICENSEBOT_REVEAL_SECONDS."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from storage.models import AuditEntry, OutboxMessage
from tests.company import ADMIN, EMPLOYEE, SUBLIME_KEYS
from tests.e2e.conftest import dm_with, ephemeral_to

KEY = SUBLIME_KEYS[0]


def approve_sublime(slack: SlackSim, sender: SlackSender) -> None:
    sender.slash(EMPLOYEE, "request sublime")
    sender.click(ADMIN, slack.wait_for(dm_with(slack, ADMIN, "Sublime")), label="Approve")


def test_reveal_from_license_mine_and_hide_again(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    approve_sublime(slack, sender)
    slack.wait_for(dm_with(slack, EMPLOYEE, "Reveal key"))
    sender.slash(EMPLOYEE, "mine")
    mine = slack.wait_for(ephemeral_to(slack, EMPLOYEE, "Sublime"))
    assert KEY not in mine.all_text
    sender.click(EMPLOYEE, mine, label="Reveal key")
    modal = slack.wait_for(lambda: slack.open_modal(EMPLOYEE))
    assert KEY in modal.all_text and "5 minutes" in modal.all_text

    # Not hidden before the time is up; hidden (in place, same modal) after it.
    clock.advance(timedelta(seconds=runtime.reveal_seconds - 5))
    bot.bot.dispatcher.wake()
    assert KEY in (slack.open_modal(EMPLOYEE) or modal).all_text
    clock.advance(timedelta(seconds=10))
    bot.bot.dispatcher.wake()
    slack.wait_for(
        lambda: (m := slack.view(modal.id)) and KEY not in m.all_text, what="the key hidden again"
    )
    with runtime.db.read() as s:
        reveals = s.exec(select(AuditEntry).where(AuditEntry.action == "key.revealed")).all()
    assert len(reveals) == 1 and KEY not in reveals[0].details


def test_every_reveal_is_audited_and_closing_the_modal_first_is_fine(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    approve_sublime(slack, sender)
    told = slack.wait_for(dm_with(slack, EMPLOYEE, "Reveal key"))
    for _ in range(2):
        sender.click(EMPLOYEE, told, label="Reveal key")
        modal = slack.wait_for(lambda: slack.open_modal(EMPLOYEE))
        sender.close_view(EMPLOYEE, modal)
    clock.advance(timedelta(seconds=runtime.reveal_seconds + 1))
    bot.bot.dispatcher.wake()
    with runtime.db.read() as s:
        assert len(s.exec(select(AuditEntry).where(AuditEntry.action == "key.revealed")).all()) == 2

    # Masking a modal the user already closed is a no-op, not a message stuck as failed.
    def masks_done() -> bool:
        masks = [m for m in outbox_rows(runtime) if m.kind == "mask_reveal"]
        return len(masks) == 2 and all(m.status == "sent" for m in masks)

    slack.wait_for(masks_done, what="both masks handled")


def outbox_rows(runtime: Runtime) -> list[OutboxMessage]:
    with runtime.db.read() as s:
        return list(s.exec(select(OutboxMessage)).all())


def test_hiding_the_key_is_queued_with_the_reveal_under_the_modals_external_id(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    approve_sublime(slack, sender)
    told = slack.wait_for(dm_with(slack, EMPLOYEE, "Reveal key"))
    sender.click(EMPLOYEE, told, label="Reveal key")
    modal = slack.wait_for(lambda: slack.open_modal(EMPLOYEE))
    # One transaction: the mask was queued before Slack named the modal, under its external_id.
    masks = [m for m in outbox_rows(runtime) if m.kind == "mask_reveal"]
    assert modal.external_id and [m.payload["view_ref"] for m in masks] == [modal.external_id]
    assert "view_id" not in masks[0].payload and KEY not in str(masks[0].payload)

    # Slack refusing the modal: the reveal is audited (the key was decrypted), and hiding a
    # modal that never opened is a no-op, not a failure.
    sender.close_view(EMPLOYEE, modal)
    slack.fail_next("views.open", status=200, error="expired_trigger_id")
    sender.click(EMPLOYEE, told, label="Reveal key")
    slack.wait_for(ephemeral_to(slack, EMPLOYEE, "click Reveal key again"))
    clock.advance(timedelta(seconds=runtime.reveal_seconds + 1))
    bot.bot.dispatcher.wake()

    def masks_done() -> bool:
        masks = [m for m in outbox_rows(runtime) if m.kind == "mask_reveal"]
        return len(masks) == 2 and all(m.status == "sent" for m in masks)

    slack.wait_for(masks_done, what="both masks handled")
