"""Slack's pace over real HTTP: one message per second per channel, Retry-After pauses.

SlackSim enforces Slack's per-channel limit here (429 "ratelimited" with Retry-After) on the
test's clock, so a bot that went too fast would show 429s in the sim's calls.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot import directory, jobs, notifications
from bot.app import assemble
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.seats import import_seats
from bot.server import BotServer
from bot.slacksim.server import Call, SlackSim
from storage.models import OutboxMessage
from tests import company
from tests.e2e.conftest import SECRET, TOKEN

IT = "CIT00001"
FANS = [f"UFAN{n:05d}" for n in range(12)]


@pytest.fixture
def bot(runtime: Runtime, slack: SlackSim, clock: ManualClock) -> Iterator[BotServer]:
    """The bot as `serve` builds it (paced), against a Slack that enforces the limit."""
    slack.now = lambda: clock.now().timestamp()
    slack.rate_limit_per_channel_per_second = 1
    company.seed(runtime)
    server = BotServer(
        assemble(
            runtime, token=TOKEN, signing_secret=SECRET, api_url=slack.api_url, poll_seconds=0.05
        ),
        host="127.0.0.1",
        port=0,
    )
    server.start()
    yield server
    server.stop()


def posts(slack: SlackSim, channel: str | None = None) -> list[Call]:
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if channel is None or c.args.get("channel") == channel
    ]


def rows(rt: Runtime, kind: str) -> list[OutboxMessage]:
    with rt.db.read() as s:
        stmt = select(OutboxMessage).where(OutboxMessage.kind == kind)
        return list(s.exec(stmt.order_by(col(OutboxMessage.id))).all())


def all_sent(rt: Runtime, kind: str) -> list[OutboxMessage] | None:
    found = rows(rt, kind)
    return found if all(r.status == "sent" for r in found) else None


def queue_it_notices(rt: Runtime, clock: ManualClock, count: int) -> None:
    with rt.db.transaction() as s:
        for n in range(count):
            notifications.queue(
                s, notifications.AUDIT_HEAD, now=clock.now(), entries=n, head="ab" * 32, day="d"
            )


def test_a_reclaim_fan_out_to_many_dms_goes_out_at_once(
    slack: SlackSim, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    people = "".join(f"{u},{u.lower()}@example.com,Fan {n},,Sales\n" for n, u in enumerate(FANS))
    directory.import_directory(
        runtime, "slack_user_id,email,name,manager_slack_user_id,department\n" + people, actor="t"
    )
    for user in FANS:
        slack.add_user(user, name=user.lower(), email=f"{user.lower()}@example.com")
    assigned = (clock.now() - timedelta(days=40)).isoformat()
    import_seats(
        runtime,
        "product_id,slack_user_id,assigned_at\n"
        + "".join(f"slack-huddles,{u},{assigned}\n" for u in FANS),
        actor="t",
    )
    assert jobs.JOBS["reclaim"].run(runtime, clock.now())
    # Every nudge goes to its own DM: none waits for another, the clock never moves.
    slack.wait_for(
        lambda: len(all_sent(runtime, notifications.RECLAIM_NUDGE) or []) == len(FANS),
        what="every nudge sent",
    )
    assert {slack.dm_channel(u) for u in FANS} <= {c.response["channel"] for c in posts(slack)}
    assert all(c.status == 200 for c in posts(slack))  # Slack never had to say 429
    assert all(r.attempts == 1 for r in rows(runtime, notifications.RECLAIM_NUDGE))


def test_messages_to_one_channel_are_a_second_apart_and_others_keep_flowing(
    slack: SlackSim, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    queue_it_notices(runtime, clock, 4)
    with runtime.db.transaction() as s:
        for user in (company.EMPLOYEE, company.MANAGER, company.NEWHIRE):
            notifications.queue(s, notifications.NOTICE, now=clock.now(), user_id=user, text="hi")
    bot.bot.dispatcher.wake()
    # The DMs are not held up by the IT channel's queue.
    slack.wait_for(lambda: len(posts(slack)) == 4, what="one IT post and three DMs")
    for sent in range(1, 5):
        slack.wait_for(lambda n=sent: len(posts(slack, IT)) == n, what=f"IT post {sent}")
        bot.bot.dispatcher.run_once()
        assert len(posts(slack, IT)) == sent  # the next one waits for the clock to move
        clock.advance(timedelta(seconds=1))
        bot.bot.dispatcher.wake()
    it_posts = posts(slack, IT)
    assert all(c.status == 200 for c in posts(slack))
    assert all(b.at - a.at >= 1.0 for a, b in itertools.pairwise(it_posts))
    # In the order they were queued, none lost, none counted as a failed attempt.
    assert [f"{n} entries" in str(c.args["text"]) for n, c in enumerate(it_posts)] == [True] * 4
    # Slack records the post before the dispatcher's thread commits it as sent.
    notices = slack.wait_for(lambda: all_sent(runtime, notifications.AUDIT_HEAD), what="all sent")
    assert [(r.status, r.attempts) for r in notices] == [("sent", 1)] * 4


def test_a_429_pauses_every_delivery_for_retry_after_without_using_attempts(
    slack: SlackSim, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    start = clock.now()
    slack.fail_next("chat.postMessage", status=429, retry_after=30)
    queue_it_notices(runtime, clock, 1)
    bot.bot.dispatcher.wake()
    slack.wait_for(
        lambda: [r.last_error for r in rows(runtime, notifications.AUDIT_HEAD)] == ["ratelimited"],
        what="the IT notice deferred",
    )
    # Queued after the 429 (a call already in flight on another worker cannot be recalled).
    with runtime.db.transaction() as s:
        notifications.queue(
            s, notifications.NOTICE, now=clock.now(), user_id=company.EMPLOYEE, text="hi"
        )
    bot.bot.dispatcher.wake()
    slack.wait_for(
        lambda: [r.last_error for r in rows(runtime, notifications.NOTICE)] == ["ratelimited"],
        what="the DM deferred too",
    )
    # Only the first message reached Slack; the other was not sent into the limit.
    assert [c.status for c in posts(slack)] == [429]
    for row in rows(runtime, notifications.AUDIT_HEAD) + rows(runtime, notifications.NOTICE):
        assert row.status == "pending" and row.attempts == 0
        assert row.next_attempt_at.replace(tzinfo=start.tzinfo) == start + timedelta(seconds=30)

    clock.advance(timedelta(seconds=29))
    bot.bot.dispatcher.wake()
    bot.bot.dispatcher.run_once()
    assert len(posts(slack)) == 1  # still paused

    clock.advance(timedelta(seconds=1))
    bot.bot.dispatcher.wake()
    slack.wait_for(lambda: len(posts(slack)) == 3, what="both delivered after the pause")
    slack.wait_for(
        lambda: all(
            all_sent(runtime, kind) for kind in (notifications.AUDIT_HEAD, notifications.NOTICE)
        )
    )
    for row in rows(runtime, notifications.AUDIT_HEAD) + rows(runtime, notifications.NOTICE):
        assert row.attempts == 1
