"""Provisioning webhooks: signed seat events POSTed to a real HTTP receiver, retried, and told
to IT (never lost) when they cannot be delivered."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot import catalog, dispatcher, jobs, notifications, outbox_status, webhooks
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.seats import import_seats
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import Message, SlackSim
from storage.models import AuditEntry, OutboxMessage
from tests import company
from tests.company import EMPLOYEE, MANAGER
from tests.e2e.conftest import dm_with
from tests.fakes.webhook_receiver import WebhookReceiver

HOOK_SECRET = "whsec-test-0123456789abcdef0123456789"
IT = "CIT00001"


@pytest.fixture
def receiver(clock: ManualClock) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(HOOK_SECRET, now=lambda: clock.now().timestamp()) as r:
        yield r


@pytest.fixture
def hooked(bot: BotServer, runtime: Runtime, receiver: WebhookReceiver) -> Runtime:
    """Figma (a seat product) provisions through the receiver; the bot signs with the secret."""
    text = company.CATALOG.replace(
        "    approval: [manager]\n",
        f"    approval: [manager]\n    provision_webhook: {receiver.url}\n",
    )
    assert text != company.CATALOG
    catalog.load_catalog(runtime, text, actor="test")
    runtime.policy = dataclasses.replace(runtime.policy, webhook_secret=HOOK_SECRET)
    return runtime


def hook_rows(rt: Runtime) -> list[OutboxMessage]:
    with rt.db.read() as s:
        stmt = select(OutboxMessage).where(OutboxMessage.kind == notifications.PROVISION_WEBHOOK)
        return list(s.exec(stmt.order_by(col(OutboxMessage.id))).all())


def approve_figma(slack: SlackSim, sender: SlackSender) -> None:
    sender.slash(EMPLOYEE, "request figma")
    sender.click(MANAGER, slack.wait_for(dm_with(slack, MANAGER, "Figma")), label="Approve")


def it_notice(slack: SlackSim, containing: str) -> Message | None:
    found = [m for m in slack.messages_in(IT) if containing in m.all_text]
    return found[-1] if found else None


def test_approving_a_seat_sends_a_signed_assigned_event(
    slack: SlackSim,
    sender: SlackSender,
    hooked: Runtime,
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    approve_figma(slack, sender)
    slack.wait_for(lambda: receiver.received, what="the webhook POST")
    got = receiver.received[0]
    assert got.verified and got.status == 204
    assert got.path == "/hooks/provision?token=url-secret"
    event = got.event
    row = hook_rows(hooked)[0]
    assert event == {
        "event": "seat.assigned",
        "id": row.payload["delivery_id"],
        "product_id": "figma",
        "product_name": "Figma Professional",
        "user": {"slack_user_id": EMPLOYEE, "email": "emp@example.com", "name": "Erik Employee"},
        "assignment_id": row.payload["assignment_id"],
        "at": clock.now().isoformat(),
    }
    assert got.headers["x-licensebot-event"] == "seat.assigned"
    assert got.headers["x-licensebot-delivery"] == event["id"]
    assert got.headers["x-licensebot-timestamp"] == str(int(clock.now().timestamp()))
    assert got.headers["content-type"] == "application/json"
    slack.wait_for(lambda: hook_rows(hooked)[0].status == "sent")
    # The bot's own helper and the receiver agree on the format; a changed byte breaks it.
    ts, sig = got.headers["x-licensebot-timestamp"], got.headers["x-licensebot-signature"]
    now = clock.now().timestamp()
    assert webhooks.verify(HOOK_SECRET, timestamp=ts, body=got.body, signature=sig, now=now)
    assert not webhooks.verify(
        HOOK_SECRET, timestamp=ts, body=got.body + b" ", signature=sig, now=now
    )
    assert not webhooks.verify(
        HOOK_SECRET, timestamp=str(int(ts) - 1), body=got.body, signature=sig, now=now
    )
    assert not webhooks.verify(  # a replay, ten minutes later
        HOOK_SECRET, timestamp=ts, body=got.body, signature=sig, now=now + 600
    )


def test_releasing_from_the_reclaim_nudge_sends_a_released_event(
    slack: SlackSim,
    sender: SlackSender,
    hooked: Runtime,
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    assigned = (clock.now() - timedelta(days=40)).isoformat()
    import_seats(
        hooked, f"product_id,slack_user_id,assigned_at\nfigma,{EMPLOYEE},{assigned}\n", actor="t"
    )
    assert jobs.JOBS["reclaim"].run(hooked, clock.now())
    nudge = slack.wait_for(dm_with(slack, EMPLOYEE, "still using"))
    sender.click(EMPLOYEE, nudge, label="Release")
    slack.wait_for(lambda: receiver.received, what="the webhook POST")
    [got] = receiver.received
    assert got.verified
    assert got.event["event"] == "seat.released" and got.event["reason"] == "released"
    assert got.event["user"]["slack_user_id"] == EMPLOYEE
    assert "key" not in got.body.decode().lower()


def test_a_failing_receiver_is_retried_with_backoff_and_gets_the_event_once(
    slack: SlackSim,
    sender: SlackSender,
    bot: BotServer,
    hooked: Runtime,
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    receiver.fail_next(500, times=3)
    approve_figma(slack, sender)
    for attempt in range(1, 4):
        slack.wait_for(lambda n=attempt: len(receiver.received) == n, what=f"attempt {attempt}")
        slack.wait_for(lambda n=attempt: hook_rows(hooked)[0].attempts == n)
        row = hook_rows(hooked)[0]
        assert row.status == "pending" and row.last_error.startswith("HTTP 500 from 127.0.0.1:")
        wait = dispatcher.backoff(attempt - 1)
        # Not before its backoff is over.
        clock.advance(wait - timedelta(milliseconds=500))
        bot.bot.dispatcher.run_once()
        assert len(receiver.received) == attempt
        clock.advance(timedelta(milliseconds=500))
        bot.bot.dispatcher.wake()
    slack.wait_for(lambda: hook_rows(hooked)[0].status == "sent")
    assert [r.status for r in receiver.received] == [500, 500, 500, 204]
    assert all(r.verified for r in receiver.received)
    # Every retry carries the same event id (receivers drop duplicates by it).
    assert len({r.event["id"] for r in receiver.received}) == 1
    assert it_notice(slack, "Provisioning webhook failed") is None


def test_a_receiver_that_keeps_failing_is_told_to_it_and_can_be_retried(
    slack: SlackSim,
    sender: SlackSender,
    bot: BotServer,
    hooked: Runtime,
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    receiver.fail_next(503, times=dispatcher.MAX_ATTEMPTS)
    approve_figma(slack, sender)
    for attempt in range(1, dispatcher.MAX_ATTEMPTS + 1):
        slack.wait_for(lambda n=attempt: hook_rows(hooked)[0].attempts >= n, what=f"try {attempt}")
        if attempt < dispatcher.MAX_ATTEMPTS:
            clock.advance(dispatcher.backoff(attempt - 1))
            bot.bot.dispatcher.wake()
    row = hook_rows(hooked)[0]
    assert row.id is not None
    assert row.status == "failed" and len(receiver.received) == dispatcher.MAX_ATTEMPTS
    told = slack.wait_for(lambda: it_notice(slack, "Provisioning webhook failed"))
    assert "seat.assigned" in told.all_text and "Figma Professional" in told.all_text
    assert f"<@{EMPLOYEE}>" in told.all_text and "127.0.0.1:" in told.all_text
    assert "HTTP 503" in told.all_text and f"licensebot outbox retry {row.id}" in told.all_text
    assert "url-secret" not in told.all_text  # the URL's path/query may hold a token
    with hooked.db.read() as s:
        audited = s.exec(select(AuditEntry).where(AuditEntry.action == "webhook.failed")).one()
    assert f'"outbox":{row.id}' in audited.details.replace(" ", "")

    # The receiver is fixed; IT retries it (what `licensebot outbox retry ID` runs, on the
    # test's clock).
    assert outbox_status.retry_failed(hooked, actor="U0IT00001", ids=[row.id]) == 1
    bot.bot.dispatcher.wake()
    slack.wait_for(lambda: hook_rows(hooked)[0].status == "sent", what="delivered on retry")
    assert receiver.received[-1].status == 204 and receiver.received[-1].verified


def test_a_receiver_with_another_secret_refuses_the_signature(
    slack: SlackSim,
    sender: SlackSender,
    hooked: Runtime,
    receiver: WebhookReceiver,
) -> None:
    receiver.secret = "not-the-bot-secret-0123456789abcdef"
    approve_figma(slack, sender)
    slack.wait_for(lambda: receiver.received, what="the webhook POST")
    got = receiver.received[0]
    assert not got.verified and got.status == 401
    # A 401 cannot get better by itself: failed at once, and IT hears about it.
    slack.wait_for(lambda: hook_rows(hooked)[0].status == "failed")
    told = slack.wait_for(lambda: it_notice(slack, "Provisioning webhook failed"))
    assert "HTTP 401" in told.all_text
    # The same request checks out with the right secret: the signature is real, not decoration.
    receiver.secret = HOOK_SECRET
    assert receiver.verify(got.headers, got.body)
    assert not receiver.verify(got.headers, got.body.replace(b"Erik", b"Eve "))


def test_without_a_secret_nothing_unsigned_is_sent_and_it_is_told(
    slack: SlackSim,
    sender: SlackSender,
    hooked: Runtime,
    receiver: WebhookReceiver,
) -> None:
    hooked.policy = dataclasses.replace(hooked.policy, webhook_secret=None)
    approve_figma(slack, sender)
    slack.wait_for(lambda: (rows := hook_rows(hooked)) and rows[0].status == "failed")
    assert receiver.received == []
    assert "LICENSEBOT_WEBHOOK_SECRET is not set" in hook_rows(hooked)[0].last_error
    told = slack.wait_for(lambda: it_notice(slack, "Provisioning webhook failed"))
    assert "LICENSEBOT_WEBHOOK_SECRET" in told.all_text


def test_products_without_a_webhook_queue_nothing(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime
) -> None:
    approve_figma(slack, sender)
    slack.wait_for(dm_with(slack, EMPLOYEE, "Figma"))
    assert hook_rows(runtime) == []
