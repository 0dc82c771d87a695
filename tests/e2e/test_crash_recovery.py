"""A bot killed after a decision, before Slack got the news, tells everyone after a restart."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from storage.db import Database
from storage.models import OutboxMessage
from tests import company
from tests.company import EMPLOYEE, IT1, IT2, MANAGER
from tests.e2e.conftest import PEOPLE, SECRET, TOKEN, dm_with
from tests.e2e.processes import LICENSEBOT, ServeProcess, base_env


@pytest.fixture
def sim() -> Iterator[SlackSim]:
    with SlackSim(bot_token=TOKEN) as s:
        for user_id, name in PEOPLE.items():
            s.add_user(user_id, name=name)
        yield s


def test_notifications_of_a_decision_survive_a_kill(
    sim: SlackSim, database_url: str, encryption_key: str, tmp_path: Path
) -> None:
    env = base_env(
        database_url,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=sim.api_url,
        LICENSEBOT_ENCRYPTION_KEYS=encryption_key,
    )
    (tmp_path / "catalog.yml").write_text(company.CATALOG)
    (tmp_path / "people.csv").write_text(company.DIRECTORY)
    for args in (["catalog", "load", "catalog.yml"], ["directory", "import", "people.csv"]):
        subprocess.run([LICENSEBOT, *args], env=env, cwd=tmp_path, check=True, capture_output=True)
    db = Database(database_url)

    def pending() -> list[OutboxMessage]:
        with db.read() as s:
            return list(s.exec(select(OutboxMessage).where(OutboxMessage.status == "pending")))

    bot = ServeProcess(env, tmp_path)
    try:
        with SlackSender(sim, bot.url + "/slack/events", SECRET) as sender:
            sender.slash(EMPLOYEE, "request intellij for the API client")
            card = sim.wait_for(dm_with(sim, MANAGER, "1 of 2"))
            # Slack goes down; the manager's click is still decided and acked at once.
            for method in ("chat.postMessage", "chat.update"):
                sim.fail_next(method, status=503, times=1000)
            assert sender.click(MANAGER, card, label="Approve").status_code == 200
            sim.wait_for(
                lambda: len(rows := pending()) == 3 and all(r.attempts for r in rows),
                timeout=10,
                what="three notifications tried once",
            )
        bot.kill()
    finally:
        bot.kill()

    sim.clear_faults()
    bot = ServeProcess(env, tmp_path)
    try:
        sim.wait_for(lambda: not pending(), timeout=20, what="the outbox drained after restart")
        for approver in (IT1, IT2):
            cards = [m for m in sim.messages_in(sim.dm_channel(approver)) if "2 of 2" in m.all_text]
            assert len(cards) == 1, approver
        closed = sim.find_message(card.channel, card.ts)
        assert closed is not None and f"<@{MANAGER}>" in closed.all_text and closed.history
    finally:
        err = bot.stop()
        db.dispose()
    assert bot.proc.returncode == 0, err
