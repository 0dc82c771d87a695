"""Reclaim over Slack: the nudge DM with Keep and Release, answered by its holder only."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot import jobs
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.seats import import_seats
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from storage.models import Assignment
from tests.company import EMPLOYEE, MANAGER, NEWHIRE, OUTSIDER
from tests.e2e.conftest import dm_with, ephemeral_to


def nudge_figma(slack: SlackSim, runtime: Runtime, clock: ManualClock) -> None:
    assigned = (clock.now() - timedelta(days=40)).isoformat()
    import_seats(
        runtime, f"product_id,slack_user_id,assigned_at\nfigma,{EMPLOYEE},{assigned}\n", actor="t"
    )
    assert jobs.JOBS["reclaim"].run(runtime, clock.now())


def test_release_from_the_nudge_frees_the_seat_for_the_next_in_line(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    nudge_figma(slack, runtime, clock)
    # Figma's only seat is held: the new hire's approved request waits in line.
    sender.slash(NEWHIRE, "request figma for the design review")
    sender.click(MANAGER, slack.wait_for(dm_with(slack, MANAGER, "Figma")), label="Approve")
    slack.wait_for(dm_with(slack, NEWHIRE, "in the queue"))

    nudge = slack.wait_for(dm_with(slack, EMPLOYEE, "still using"))
    assert "Figma Professional" in nudge.all_text and "$144.00/yr" in nudge.all_text
    assert "never since it was assigned" in nudge.all_text

    # Someone else's click is refused and changes nothing.
    assert sender.click(OUTSIDER, nudge, label="Release").status_code == 200
    slack.wait_for(ephemeral_to(slack, OUTSIDER, "not assigned to you"))
    with runtime.db.read() as s:
        assert (
            s.exec(select(Assignment).where(Assignment.user_id == EMPLOYEE)).one().released_at
            is None
        )

    sender.click(EMPLOYEE, nudge, label="Release")
    slack.wait_for(
        lambda: (m := slack.find_message(nudge.channel, nudge.ts)) and "Thanks" in m.all_text,
        what="the nudge card updated",
    )
    slack.wait_for(dm_with(slack, NEWHIRE, "IT will set up your seat"))


def test_keep_from_the_nudge_snoozes_it(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    nudge_figma(slack, runtime, clock)
    nudge = slack.wait_for(dm_with(slack, EMPLOYEE, "still using"))
    sender.click(EMPLOYEE, nudge, label="Keep")
    slack.wait_for(
        lambda: (m := slack.find_message(nudge.channel, nudge.ts)) and "You kept" in m.all_text,
        what="the nudge card updated",
    )
    updated = slack.find_message(nudge.channel, nudge.ts)
    assert updated is not None and "keep_seat" not in str(updated.blocks)  # no buttons left
    with runtime.db.read() as s:
        held = s.exec(select(Assignment).where(Assignment.user_id == EMPLOYEE)).one()
    assert held.released_at is None and held.snoozed_until is not None
