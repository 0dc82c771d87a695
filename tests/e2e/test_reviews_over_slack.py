"""Access reviews over Slack: cards to the reviewers, Keep and Revoke, refusals, reminders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlmodel import col, select

from bot import approvals, catalog, jobs, requests, reviews
from bot.cli import cli
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.seats import import_seats
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import Message, SlackSim
from storage.models import AccessReview, Assignment, AuditEntry, LicenseRequest
from tests.company import ADMIN, CATALOG, EMPLOYEE, IT1, IT2, MANAGER, NEWHIRE, OUTSIDER
from tests.e2e.conftest import dm_with, ephemeral_to
from tests.test_reviews import many_holders

# The sample company plus a seat product whose last approval step is the IT team.
DESIGN = """  - id: design
    name: Design Suite
    vendor: Acme
    delivery: seat
    seats: 2
    cost_per_seat: 300
    approval: [manager, it-team]
"""


def add_design(runtime: Runtime, clock: ManualClock) -> None:
    catalog.load_catalog(runtime, CATALOG + DESIGN, actor="test")
    assigned = (clock.now() - timedelta(days=90)).isoformat()
    import_seats(
        runtime,
        f"product_id,slack_user_id,assigned_at\ndesign,{EMPLOYEE},{assigned}\n"
        f"design,{MANAGER},{assigned}\n",
        actor="test",
    )


def seat_of(runtime: Runtime, product_id: str, user_id: str) -> int:
    with runtime.db.read() as s:
        found = s.exec(
            select(Assignment.id).where(
                Assignment.product_id == product_id, Assignment.user_id == user_id
            )
        ).first()
    assert found is not None
    return found


def released(runtime: Runtime, assignment_id: int) -> str | None:
    with runtime.db.read() as s:
        seat = s.get(Assignment, assignment_id)
    assert seat is not None
    return seat.release_reason if seat.released_at else None


def card_for(slack: SlackSim, user: str, product_name: str) -> Callable[[], Message | None]:
    return dm_with(slack, user, f"Access review: {product_name}")


def current(slack: SlackSim, message: Message) -> Callable[[], Message | None]:
    return lambda: slack.find_message(message.channel, message.ts)


def shows(slack: SlackSim, message: Message, text: str) -> Callable[[], Message | None]:
    def check() -> Message | None:
        found = slack.find_message(message.channel, message.ts)
        return found if found and text in found.all_text else None

    return check


def test_review_started_from_the_cli_is_answered_on_the_cards(
    slack: SlackSim,
    sender: SlackSender,
    bot: BotServer,
    runtime: Runtime,
    clock: ManualClock,
    database_url: str,
    encryption_key: str,
) -> None:
    add_design(runtime, clock)
    # The new hire's approved request waits: both seats are held.
    waiting = requests.submit(runtime, asked_by=NEWHIRE, product_id="design", justification="")
    approvals.decide(runtime, request_id=waiting.request_id, step=0, actor=MANAGER, approve=True)
    approvals.decide(runtime, request_id=waiting.request_id, step=1, actor=IT1, approve=True)
    slack.wait_for(dm_with(slack, NEWHIRE, "in the queue"))
    # The CLI runs on the wall clock; the bot's outbox must see its rows as due.
    clock.advance(datetime.now(UTC) - clock.now() + timedelta(minutes=1))

    env = {
        "DATABASE_URL": database_url,
        "LICENSEBOT_ENCRYPTION_KEYS": encryption_key,
        "LICENSEBOT_ADMINS": ADMIN,
        "SLACK_BOT_TOKEN": None,
        "SLACK_SIGNING_SECRET": None,
    }
    result = CliRunner().invoke(cli, ["review", "start", "design"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "of design: 2 holders, reviewers U0IT00001, U0IT00002." in result.output
    with runtime.db.read() as s:
        review_id = s.exec(select(AccessReview.id)).one()
    employee_seat, manager_seat = (
        seat_of(runtime, "design", EMPLOYEE),
        seat_of(runtime, "design", MANAGER),
    )

    # Each reviewer (the last step: the IT team) gets one card listing both holders.
    card1 = slack.wait_for(card_for(slack, IT1, "Design Suite"))
    card2 = slack.wait_for(card_for(slack, IT2, "Design Suite"))
    for card in (card1, card2):
        assert f"<@{EMPLOYEE}> (Erik Employee)" in card.all_text
        assert f"<@{MANAGER}> (Maria Manager)" in card.all_text
        assert "last use unknown" in card.all_text
    revoke_button = [
        e
        for b in card1.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["text"]["text"] == "Revoke"
    ]
    assert len(revoke_button) == 2 and all("confirm" in e for e in revoke_button)

    # Someone who is not a reviewer is refused; nothing changes.
    employee_ref = f"{review_id}:{employee_seat}"
    sender.click(OUTSIDER, card1, label="Revoke", value=employee_ref)
    slack.wait_for(ephemeral_to(slack, OUTSIDER, "not one of its reviewers"))
    assert released(runtime, employee_seat) is None

    # Revoke: the seat goes, its holder is told, the next in line gets it, both cards show it.
    sender.click(IT1, card1, label="Revoke", value=employee_ref)
    slack.wait_for(dm_with(slack, EMPLOYEE, "was revoked"))
    slack.wait_for(dm_with(slack, NEWHIRE, "IT will set up your seat"))
    assert released(runtime, employee_seat) == "revoked"
    with runtime.db.read() as s:
        req = s.get(LicenseRequest, waiting.request_id)
        assert req is not None and req.status == "approved"
    for card in (card1, card2):
        updated = slack.wait_for(shows(slack, card, f"Revoked by <@{IT1}>"))
        assert employee_ref not in str(updated.blocks)  # that holder's buttons are gone

    # Slack is slow to update the cards: the second reviewer still sees the buttons, and
    # their answer after the first one's is refused, naming who answered.
    slack.fail_next("chat.update", status=429, retry_after=30)
    manager_ref = f"{review_id}:{manager_seat}"
    sender.click(IT1, card1, label="Keep", value=manager_ref)
    slack.wait_for(lambda: slack.calls_to("chat.update")[-1].status == 429, what="the 429")
    sender.click(IT2, card2, label="Revoke", value=manager_ref)
    slack.wait_for(ephemeral_to(slack, IT2, f"already kept by <@{IT1}>"))
    assert released(runtime, manager_seat) is None

    # Every holder answered: the review is closed and audited; the cards say so.
    clock.advance(timedelta(seconds=31))
    for card in (card1, card2):
        closed = slack.wait_for(shows(slack, card, "closed on"))
        assert f"Kept by <@{IT1}>" in closed.all_text and "1 kept, 1 revoked" in closed.all_text
    with runtime.db.read() as s:
        review = s.get(AccessReview, review_id)
        assert review is not None and review.closed_at is not None
        actions = s.exec(
            select(AuditEntry.action).where(
                col(AuditEntry.action).in_(
                    ["review.started", "seat.revoked", "review.kept", "review.closed"]
                )
            )
        ).all()
    assert sorted(actions) == ["review.closed", "review.kept", "review.started", "seat.revoked"]


def test_an_unfinished_review_is_reminded_once_after_seven_days(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    add_design(runtime, clock)
    reviews.start(runtime, actor="test", product_id="design")
    slack.wait_for(card_for(slack, IT1, "Design Suite"))
    reminders = jobs.JOBS[reviews.REMINDER_JOB_ID]

    clock.advance(timedelta(days=7))
    assert reminders.run(runtime, clock.now())
    assert not reminders.run(runtime, clock.now())
    clock.advance(timedelta(days=1))
    assert reminders.run(runtime, clock.now())
    for reviewer in (IT1, IT2):
        slack.wait_for(dm_with(slack, reviewer, "still has 2 of 2 holders unanswered"))
    clock.advance(timedelta(seconds=5))
    jobs.JOBS["audit-head"].run(runtime, clock.now())  # something else is sent after
    slack.wait_for(lambda: slack.messages_in("CIT00001"), what="the audit head")
    for reviewer in (IT1, IT2):
        sent = [
            m for m in slack.messages_in(slack.dm_channel(reviewer)) if "unanswered" in m.all_text
        ]
        assert len(sent) == 1


def test_the_quarterly_review_runs_once_a_quarter(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    add_design(runtime, clock)
    quarterly = jobs.JOBS[reviews.JOB_ID]
    assert quarterly.run(runtime, clock.now())
    assert not quarterly.run(runtime, clock.now() + timedelta(days=1))
    slack.wait_for(card_for(slack, IT1, "Design Suite"))
    clock.advance(timedelta(seconds=5))
    jobs.JOBS["audit-head"].run(runtime, clock.now())  # something else is sent after
    slack.wait_for(lambda: slack.messages_in("CIT00001"), what="the audit head")
    cards = [
        m
        for m in slack.messages_in(slack.dm_channel(IT1))
        if "Access review: Design Suite" in m.all_text
    ]
    assert len(cards) == 1


def test_a_product_with_120_holders_gets_cards_slack_accepts(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    catalog.load_catalog(
        runtime,
        CATALOG + "  - {id: big, name: Big Suite, delivery: seat, seats: 500, approval: []}\n",
        actor="test",
    )
    people = many_holders(runtime, "big", 120)
    (started,) = reviews.start(runtime, actor="test", product_id="big").started
    assert started.reviewers == [ADMIN]

    def all_cards() -> list[Message] | None:
        found = [
            m
            for m in slack.messages_in(slack.dm_channel(ADMIN))
            if "Access review: Big Suite" in m.all_text
        ]
        if len(found) == 6:
            return found
        clock.advance(timedelta(seconds=1))  # one message per second per channel
        return None

    cards = slack.wait_for(all_cards, timeout=15, what="six cards")
    assert not [c for c in slack.calls_to("chat.postMessage") if not c.ok]
    text = "\n".join(c.all_text for c in cards)
    assert all(f"<@{u}>" in text for u in people)
    assert all(len(c.blocks) <= 50 for c in cards)
    assert "card 6 of 6" in cards[-1].all_text

    last_holder = seat_of(runtime, "big", people[-1])
    sender.click(ADMIN, cards[-1], label="Keep", value=f"{started.review_id}:{last_holder}")
    slack.wait_for(shows(slack, cards[-1], f"Kept by <@{ADMIN}>"))
    first = slack.find_message(cards[0].channel, cards[0].ts)
    assert first is not None and "Kept by" not in first.all_text
