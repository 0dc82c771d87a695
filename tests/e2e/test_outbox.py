"""Durable delivery: Slack's 429s and 5xx are retried, failures are kept, nothing is re-posted."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner
from sqlmodel import select

from bot import dispatcher
from bot.cli import cli
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from storage.models import OutboxMessage, StepApprover
from tests.company import EMPLOYEE, MANAGER
from tests.e2e.conftest import dm_with


def card_rows(rt: Runtime) -> list[OutboxMessage]:
    with rt.db.read() as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "approval_card")).all()
        return list(rows)


def manager_cards(slack: SlackSim) -> list[str]:
    return [m.ts for m in slack.messages_in(slack.dm_channel(MANAGER)) if "Figma" in m.all_text]


def test_429_waits_for_retry_after_then_delivers_once(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    sender.slash(EMPLOYEE, "request figma")
    slack.wait_for(lambda: (rows := card_rows(runtime)) and rows[0].last_error == "ratelimited")
    row = card_rows(runtime)[0]
    # A 429 defers the message: it is not a failed attempt (MAX_ATTEMPTS is not used up).
    assert row.status == "pending" and row.attempts == 0
    clock.advance(timedelta(seconds=6))
    bot.bot.dispatcher.wake()
    bot.bot.dispatcher.run_once()
    assert manager_cards(slack) == []  # Retry-After not over yet
    clock.advance(timedelta(seconds=2))
    bot.bot.dispatcher.wake()
    slack.wait_for(lambda: manager_cards(slack))
    slack.wait_for(lambda: card_rows(runtime)[0].status == "sent")
    assert len(manager_cards(slack)) == 1 and card_rows(runtime)[0].attempts == 1


def test_5xx_is_retried_with_backoff_then_kept_as_failed_and_listed(
    slack: SlackSim,
    sender: SlackSender,
    bot: BotServer,
    runtime: Runtime,
    clock: ManualClock,
    database_url: str,
    encryption_key: str,
) -> None:
    slack.fail_next("chat.postMessage", status=503, times=1000)
    sender.slash(EMPLOYEE, "request figma")
    for attempt in range(1, dispatcher.MAX_ATTEMPTS + 1):
        slack.wait_for(
            lambda n=attempt: card_rows(runtime)[0].attempts >= n, what=f"attempt {attempt}"
        )
        row = card_rows(runtime)[0]
        if attempt < dispatcher.MAX_ATTEMPTS:
            # Backoff grows: the next attempt is not due before 2**(attempt-1) seconds.
            wait = dispatcher.backoff(attempt - 1)
            assert row.status == "pending"
            clock.advance(wait)
            bot.bot.dispatcher.wake()
    assert card_rows(runtime)[0].status == "failed"
    assert manager_cards(slack) == []
    listed = CliRunner().invoke(
        cli,
        ["outbox", "list", "--status", "failed"],
        env={"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key},
    )
    assert listed.exit_code == 0, listed.output
    assert "approval_card" in listed.output and "failed" in listed.output
    assert f"approver_id={MANAGER}" in listed.output and "HTTP 503" in listed.output
    # An operator can queue it again once Slack is back.
    retried = CliRunner().invoke(
        cli,
        ["outbox", "retry"],
        env={"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key},
    )
    assert retried.exit_code == 0 and "Queued 1 failed message again." in retried.output


def test_a_permanent_slack_error_fails_at_once(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    sender.slash(EMPLOYEE, "request figma")
    slack.wait_for(lambda: (rows := card_rows(runtime)) and rows[0].status == "failed")
    assert card_rows(runtime)[0].attempts == 1


def test_a_card_redelivered_after_a_crash_is_updated_not_posted_twice(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    sender.slash(EMPLOYEE, "request figma")
    first = slack.wait_for(dm_with(slack, MANAGER, "Figma"))
    slack.wait_for(lambda: card_rows(runtime)[0].status == "sent")
    # As if the process died after Slack answered but before the row was marked sent.
    with runtime.db.transaction() as s:
        row = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "approval_card")).one()
        row.status = "pending"
        s.add(row)
    # Its lease runs out; then any dispatcher takes it again.
    clock.advance(dispatcher.LEASE)
    bot.bot.dispatcher.wake()
    slack.wait_for(lambda: card_rows(runtime)[0].status == "sent")
    slack.wait_for(lambda: slack.calls_to("chat.update"))
    assert manager_cards(slack) == [first.ts]
    with runtime.db.read() as s:
        assert s.exec(select(StepApprover)).one().card_ts == first.ts


def test_a_message_that_crashes_its_renderer_fails_alone(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    from bot import notifications

    with runtime.db.transaction() as s:
        # A payload no renderer can use (as after a bug), queued before a good message.
        notifications.queue(s, notifications.APPROVAL_CARD, now=clock.now(), request_id="x")
    sender.slash(EMPLOYEE, "request figma")
    slack.wait_for(lambda: manager_cards(slack), what="the good message still delivered")

    def broken_row() -> OutboxMessage:
        with runtime.db.read() as s:
            return s.exec(select(OutboxMessage).where(OutboxMessage.id == 1)).one()

    # Delivered by another worker, the good message may reach Slack before this is written.
    slack.wait_for(lambda: broken_row().attempts == 1, what="the broken message's attempt")
    broken = broken_row()
    assert broken.status == "pending" and broken.attempts == 1
    assert "ValueError" in broken.last_error
