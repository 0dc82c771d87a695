"""The running app over real HTTP, with a local Slack playing Slack's side."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bot.app import assemble
from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import Message, SlackSim
from tests import company

TOKEN = "xoxb-e2e-test-token"
SECRET = "e2e-signing-secret-0123456789abcdef"

PEOPLE = {
    company.EMPLOYEE: "erik",
    company.MANAGER: "maria",
    company.NEWHIRE: "nina",
    company.ORPHAN: "otto",
    company.IT1: "ines",
    company.IT2: "ivan",
    company.ADMIN: "ada",
    company.OUTSIDER: "oscar",
}


@pytest.fixture
def slack() -> Iterator[SlackSim]:
    sim = SlackSim(bot_token=TOKEN)
    for user_id, name in PEOPLE.items():
        sim.add_user(user_id, name=name, email=f"{name}@example.com")
    sim.add_channel("CIT00001", name="it-licenses")
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def bot(runtime: Runtime, slack: SlackSim) -> Iterator[BotServer]:
    company.seed(runtime)
    assembled = assemble(
        runtime,
        token=TOKEN,
        signing_secret=SECRET,
        api_url=slack.api_url,
        poll_seconds=0.05,
        # The clock stands still in these tests: a 1 s pace would hold a second DM forever.
        # Pacing has its own tests (tests/e2e/test_pacing.py), which advance the clock.
        pace=None,
    )
    server = BotServer(assembled, host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sender(slack: SlackSim, bot: BotServer) -> Iterator[SlackSender]:
    s = SlackSender(slack, bot.url + "/slack/events", SECRET)
    yield s
    s.close()


def dm_with(slack: SlackSim, user: str, containing: str) -> Callable[[], Message | None]:
    """A wait_for predicate: the newest bot DM to ``user`` whose text contains ``containing``."""

    def find() -> Message | None:
        found = [
            m
            for m in slack.messages_in(slack.dm_channel(user))
            if not m.is_ephemeral and containing in m.all_text
        ]
        return found[-1] if found else None

    return find


def ephemeral_to(slack: SlackSim, user: str, containing: str) -> Callable[[], Message | None]:
    def find() -> Message | None:
        found = [m for m in slack.messages if m.ephemeral_to == user and containing in m.all_text]
        return found[-1] if found else None

    return find
