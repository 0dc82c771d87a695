"""Time-limited grants and seat alerts over Slack: the expiry warning's "Request extension"
button, the approval that extends the same seat, the end of a seat, and IT's seat alert."""

from __future__ import annotations

from datetime import UTC, timedelta

from sqlmodel import col, select

from bot import catalog, jobs
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from storage.models import Assignment
from tests import company
from tests.company import EMPLOYEE, MANAGER, NEWHIRE, OUTSIDER
from tests.e2e.conftest import dm_with, ephemeral_to

TRIAL = """
  - id: trial
    name: Analytics Trial
    delivery: seat
    seats: 1
    approval: [manager]
    max_days: 10
"""
IT_CHANNEL = "CIT00001"


def add_trial(runtime: Runtime) -> None:
    catalog.load_catalog(runtime, company.CATALOG + TRIAL, actor="test")


def grant_trial(slack: SlackSim, sender: SlackSender, user: str) -> None:
    sender.slash(user, "request trial for a quarter's analysis")
    card = slack.wait_for(
        lambda: next(
            (
                m
                for m in reversed(slack.messages_in(slack.dm_channel(MANAGER)))
                if "Analytics Trial" in m.all_text and f"<@{user}>" in m.all_text
            ),
            None,
        ),
        what=f"the approval card for {user}",
    )
    sender.click(MANAGER, card, label="Approve")


def it_messages(slack: SlackSim, containing: str) -> list[str]:
    return [m.all_text for m in slack.messages_in(IT_CHANNEL) if containing in m.all_text]


def test_request_extension_from_the_warning_extends_the_same_seat(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    add_trial(runtime)
    grant_trial(slack, sender, EMPLOYEE)
    slack.wait_for(dm_with(slack, EMPLOYEE, "was approved"))

    # Where the holder looks at their licenses, the end is shown.
    sender.slash(EMPLOYEE, "mine")
    mine = slack.wait_for(ephemeral_to(slack, EMPLOYEE, "Analytics Trial"))
    assert "ends 2026-11-12" in mine.all_text

    clock.advance(timedelta(days=8))
    assert jobs.JOBS["expiry"].run(runtime, clock.now())
    warning = slack.wait_for(dm_with(slack, EMPLOYEE, "ends on 2026-11-12"))
    assert "Analytics Trial" in warning.all_text and "another 10 days" in warning.all_text

    # Only the holder may ask; anyone else's click is refused and changes nothing.
    sender.click(OUTSIDER, warning, label="Request extension")
    slack.wait_for(ephemeral_to(slack, OUTSIDER, "not assigned to you"))

    sender.click(EMPLOYEE, warning, label="Request extension")
    slack.wait_for(ephemeral_to(slack, EMPLOYEE, "Waiting for approval from"))
    card = slack.wait_for(dm_with(slack, MANAGER, "Extension of seat"))
    sender.click(MANAGER, card, label="Approve")
    slack.wait_for(dm_with(slack, EMPLOYEE, "seat runs until 2026-11-22"))

    with runtime.db.read() as s:
        seats = s.exec(select(Assignment).where(Assignment.product_id == "trial")).all()
    assert len(seats) == 1 and seats[0].released_at is None
    assert seats[0].expires_at is not None
    assert seats[0].expires_at.replace(tzinfo=UTC) == clock.now() + timedelta(days=12)


def test_an_ended_seat_is_released_the_holder_told_and_the_next_in_line_served(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    add_trial(runtime)
    grant_trial(slack, sender, EMPLOYEE)
    slack.wait_for(dm_with(slack, EMPLOYEE, "was approved"))
    grant_trial(slack, sender, NEWHIRE)
    slack.wait_for(dm_with(slack, NEWHIRE, "in the queue"))
    # IT hears once that the product is out of seats, with the numbers.
    slack.wait_for(lambda: it_messages(slack, "out of seats"), what="the seat alert")
    (alert,) = it_messages(slack, "out of seats")
    assert "1 request waiting" in alert and "Seats bought*\n1" in alert

    clock.advance(timedelta(days=10))
    assert jobs.JOBS["expiry"].run(runtime, clock.now())
    slack.wait_for(dm_with(slack, EMPLOYEE, "ended on 2026-11-12 and was released"))
    slack.wait_for(dm_with(slack, NEWHIRE, "was approved"))
    with runtime.db.read() as s:
        holder = s.exec(
            select(Assignment.user_id).where(
                Assignment.product_id == "trial", col(Assignment.released_at).is_(None)
            )
        ).one()
    assert holder == NEWHIRE
    # The seat changed hands with nobody left waiting and nothing free: min_free_seats is 0,
    # so the product is back to normal.
    slack.wait_for(lambda: it_messages(slack, "back to normal"), what="the all-clear")
    assert len(it_messages(slack, "out of seats")) == 1
    assert len(it_messages(slack, "back to normal")) == 1
