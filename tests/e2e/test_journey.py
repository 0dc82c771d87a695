"""The whole journey over Slack's real protocol: request → manager → IT → key revealed.

The key must appear in exactly one place Slack saw: the modal opened for its holder.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from bot import audit_export
from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from handlers import ids
from tests.company import EMPLOYEE, INTELLIJ_KEYS, IT1, IT2, MANAGER
from tests.e2e.conftest import dm_with, ephemeral_to

KEY = INTELLIJ_KEYS[0]


def test_request_approve_approve_reveal(
    slack: SlackSim,
    sender: SlackSender,
    bot: BotServer,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)

    # 1. The employee asks; the answer is immediate, ephemeral, and says who approves next.
    response = sender.slash(EMPLOYEE, "request intellij need it for the API client")
    assert response.status_code == 200
    confirmation = slack.wait_for(ephemeral_to(slack, EMPLOYEE, "#1"))
    assert "IntelliJ" in confirmation.all_text and f"<@{MANAGER}>" in confirmation.all_text

    # 2. The manager's card: requester, product, justification, cost, seats, renewal, step 1 of 2.
    card = slack.wait_for(dm_with(slack, MANAGER, "need it for the API client"))
    for fact in (f"<@{EMPLOYEE}>", "IntelliJ", "599", "2027-03-01", "1 of 2"):
        assert fact in card.all_text, fact
    assert sender.click(MANAGER, card, label="Approve").status_code == 200

    # 3. Both IT approvers get a card for step 2; the first to click decides.
    it1_card = slack.wait_for(dm_with(slack, IT1, "2 of 2"))
    slack.wait_for(dm_with(slack, IT2, "2 of 2"))
    assert (
        sender.click(
            IT2, slack.wait_for(dm_with(slack, IT2, "2 of 2")), label="Approve"
        ).status_code
        == 200
    )

    # 4. IT1's card is updated in place to say who decided; its buttons are gone.
    def it1_card_closed() -> bool:
        current = slack.find_message(it1_card.channel, it1_card.ts)
        return current is not None and bool(current.history) and f"<@{IT2}>" in current.all_text

    slack.wait_for(it1_card_closed, what="IT1's card updated")
    closed = slack.find_message(it1_card.channel, it1_card.ts)
    assert closed is not None and ids.ACTION_APPROVE not in json.dumps(closed.blocks)

    # 5. The employee is told, with a Reveal key button and without the key.
    approved = slack.wait_for(dm_with(slack, EMPLOYEE, "Reveal key"))
    assert f"<@{IT2}>" in approved.all_text
    assert sender.click(EMPLOYEE, approved, label="Reveal key").status_code == 200
    modal = slack.wait_for(lambda: slack.open_modal(EMPLOYEE))
    assert KEY in modal.all_text

    # 6. Nobody else can reveal it: the manager clicking the same button is refused.
    assert sender.click(MANAGER, approved, label="Reveal key").status_code == 200
    slack.wait_for(ephemeral_to(slack, MANAGER, "can't reveal"))
    assert slack.open_modal(MANAGER) is None

    # 7. /license mine and App Home list the license with its own Reveal key.
    sender.slash(EMPLOYEE, "mine")
    mine = slack.wait_for(ephemeral_to(slack, EMPLOYEE, "IntelliJ"))
    assert any(
        el.get("action_id") == ids.ACTION_REVEAL
        for b in mine.blocks
        for el in [b.get("accessory") or {}, *b.get("elements", [])]
    )
    sender.app_home_opened(EMPLOYEE)
    home = slack.wait_for(lambda: slack.home(EMPLOYEE))
    assert "IntelliJ" in home.all_text and "Reveal key" in home.all_text

    # 8. The audit log tells the story, without the key.
    out = io.StringIO()
    audit_export.export(runtime, out, fmt="jsonl")
    exported = out.getvalue()
    for action in (
        "request.created",
        "step.approved",
        "request.approved",
        "key.assigned",
        "key.revealed",
    ):
        assert f'"{action}"' in exported, action
    assert KEY not in exported

    # 9. The key was never in a message, a non-modal Slack call, a log line, or the database.
    for call in slack.calls:
        if call.method == "views.open" and call.args.get("trigger_id"):
            continue
        assert KEY not in json.dumps(call.args), call.method
    for message in slack.messages:
        assert KEY not in message.all_text
    assert KEY not in caplog.text
    with runtime.db.engine.connect() as conn:
        for table in ("license_key", "audit_entry", "outbox_message", "license_request"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            assert KEY not in repr(rows), table
    if runtime.db.is_sqlite:
        db_file = Path(runtime.db.engine.url.database or "")
        for path in db_file.parent.glob(db_file.name + "*"):
            assert KEY.encode() not in path.read_bytes(), path
