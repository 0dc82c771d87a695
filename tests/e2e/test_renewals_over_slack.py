"""Renewal notices as IT sees them in its channel."""

from __future__ import annotations

from datetime import date, timedelta

from bot import jobs
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.seats import import_seats
from bot.server import BotServer
from bot.slacksim.server import Message, SlackSim
from tests.company import MANAGER

IT_CHANNEL = "CIT00001"


def it_posts(slack: SlackSim, containing: str) -> list[Message]:
    return [m for m in slack.messages_in(IT_CHANNEL) if containing in m.all_text]


def test_it_is_told_30_days_ahead_with_the_seat_figures(
    slack: SlackSim, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    # IntelliJ (3 seats at $599) renews on 2027-03-01: move to 28 days before.
    clock.advance(timedelta(days=(date(2027, 2, 1) - clock.now().date()).days))
    held_since = (clock.now() - timedelta(days=100)).isoformat()
    import_seats(
        runtime,
        f"product_id,slack_user_id,assigned_at\nintellij,{MANAGER},{held_since}\n",
        actor="t",
    )
    assert jobs.JOBS["renewals"].run(runtime, clock.now())
    assert not jobs.JOBS["renewals"].run(runtime, clock.now())

    notice = slack.wait_for(lambda: next(iter(it_posts(slack, "renews in 28 days")), None))
    text = notice.all_text
    for fact in (
        "JetBrains IntelliJ IDEA Ultimate",
        "2027-03-01",
        "*Seats bought*\n3 (1 assigned now)",
        "*Used in the last 30 days*\n0",
        "*Peak use (90 days)*\n1",
        "*Waitlist*\n0",
        "*Recommended*\n2 (peak + waitlist + 1 buffer)",
        "saves *$599.00/yr*",
    ):
        assert fact in text, fact
    assert len(it_posts(slack, "renews in")) == 1

    # A week later nothing new; at 7 days left the last notice.
    clock.advance(timedelta(days=7))
    jobs.JOBS["renewals"].run(runtime, clock.now())
    clock.advance(timedelta(days=14))
    jobs.JOBS["renewals"].run(runtime, clock.now())
    slack.wait_for(lambda: next(iter(it_posts(slack, "renews in 7 days")), None))
    assert len(it_posts(slack, "renews in")) == 2
