"""The bot as a process: killed mid-work it loses nothing; stopped with SIGTERM it drains."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from storage.db import Database
from storage.models import OutboxMessage
from tests import company
from tests.company import EMPLOYEE, IT1, IT2, MANAGER, NEWHIRE
from tests.e2e.conftest import PEOPLE, SECRET, TOKEN, dm_with
from tests.e2e.processes import LICENSEBOT, ServeProcess, serve_env


@pytest.fixture
def sim() -> Iterator[SlackSim]:
    with SlackSim(bot_token=TOKEN) as s:
        for user_id, name in PEOPLE.items():
            s.add_user(user_id, name=name)
        yield s


@pytest.fixture
def env(sim: SlackSim, database_url: str, encryption_key: str, tmp_path: Path) -> dict[str, str]:
    """Settings for a bot talking to ``sim``, with the sample company loaded by the CLI."""
    env = serve_env(
        database_url,
        sim.api_url,
        encryption_key,
    )
    (tmp_path / "catalog.yml").write_text(company.CATALOG)
    (tmp_path / "people.csv").write_text(company.DIRECTORY)
    for args in (["catalog", "load", "catalog.yml"], ["directory", "import", "people.csv"]):
        subprocess.run([LICENSEBOT, *args], env=env, cwd=tmp_path, check=True, capture_output=True)
    return env


def test_notifications_of_a_decision_survive_a_kill(
    sim: SlackSim, env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
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


def test_sigterm_answers_in_flight_requests_and_delivers_queued_notifications(
    sim: SlackSim, env: dict[str, str], tmp_path: Path
) -> None:
    bot = ServeProcess(env, tmp_path)
    sim.latency = 1.0  # every Slack call now takes a second
    answers: list[int] = []
    with SlackSender(sim, bot.url + "/slack/events", SECRET) as sender:
        assert sender.slash(EMPLOYEE, "request figma").status_code == 200  # card being sent
        # Opening the form waits on views.open: this request is in flight at SIGTERM.
        opening = threading.Thread(
            target=lambda: answers.append(sender.slash(NEWHIRE, "request").status_code)
        )
        opening.start()
        time.sleep(0.3)
        err = bot.stop()
        opening.join(timeout=30)
    assert bot.proc.returncode == 0, err
    assert answers == [200]
    assert sim.open_modal(NEWHIRE) is not None
    assert [m for m in sim.messages_in(sim.dm_channel(MANAGER)) if "Figma" in m.all_text]
