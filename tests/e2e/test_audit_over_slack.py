"""``/license audit`` over HTTP: auditors and IT admins see entries, everyone else is refused."""

from __future__ import annotations

import json

from bot import jobs, roles
from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from storage.models import AuditHead
from tests.company import ADMIN, EMPLOYEE, IT2, MANAGER
from tests.e2e.conftest import dm_with, ephemeral_to

AUDITOR = IT2  # ivan: in the IT group, and granted the auditor role below


def test_an_auditor_sees_a_persons_latest_entries(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    roles.grant(runtime, AUDITOR, "auditor", actor="test")
    sender.slash(EMPLOYEE, "request figma for the design review")
    slack.wait_for(dm_with(slack, MANAGER, "Figma"))

    answer = sender.slash(AUDITOR, f"audit <@{EMPLOYEE}|Erik Employee>")

    assert answer.status_code == 200
    shown = slack.wait_for(ephemeral_to(slack, AUDITOR, "Audit log for"))
    assert f"<@{EMPLOYEE}>" in shown.all_text
    assert "`request.created` by" in shown.all_text and "`step.opened`" in shown.all_text
    assert "justification: for the design review" in shown.all_text
    # Newest first: the step opened after the request was created.
    assert shown.all_text.index("step.opened") < shown.all_text.index("request.created")


def test_an_it_admin_sees_a_products_entries(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(ADMIN, "audit intellij")

    shown = slack.wait_for(ephemeral_to(slack, ADMIN, "Audit log for"))
    assert "`keys.imported`" in shown.all_text and "added: 2" in shown.all_text
    for key in ("IJ-AAAA-1111-SECRET-KEY-0001", "IJ-BBBB-2222-SECRET-KEY-0002"):
        assert key not in json.dumps(shown.blocks)


def test_an_employee_is_refused_and_sees_nothing_else(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(EMPLOYEE, "request figma")
    slack.wait_for(dm_with(slack, MANAGER, "Figma"))
    before = len(slack.messages)

    for target in (f"<@{MANAGER}|maria>", EMPLOYEE, "figma", "no-such-product"):
        answer = sender.slash(EMPLOYEE, f"audit {target}")
        assert answer.status_code == 200

    slack.wait_for(lambda: len(slack.messages) >= before + 4)
    new = slack.messages[before:]
    assert [m.ephemeral_to for m in new] == [EMPLOYEE] * 4
    assert all("can't view the audit log" in m.all_text for m in new)
    for m in new:
        assert "request.created" not in m.all_text and "Audit log for" not in m.all_text
        # The refusal does not even say whether the product exists.
        assert "Did you mean" not in m.all_text


def test_audit_alone_or_with_two_words_shows_how_to_use_it(
    slack: SlackSim, sender: SlackSender
) -> None:
    sender.slash(ADMIN, "audit")
    sender.slash(ADMIN, "audit figma intellij")

    slack.wait_for(
        lambda: len([m for m in slack.messages if "/license audit @user" in m.all_text]) == 2
    )
    usages = [m for m in slack.messages if m.ephemeral_to == ADMIN]
    assert len(usages) == 2 and all("/license audit PRODUCT_ID" in m.all_text for m in usages)


def test_the_daily_audit_head_reaches_the_it_channel(
    slack: SlackSim, bot: BotServer, runtime: Runtime
) -> None:
    assert jobs.publish_audit_head(runtime, runtime.clock.now())
    with runtime.db.read() as s:
        head = s.get(AuditHead, 1)
    assert head is not None and head.last_id > 0
    notice = slack.wait_for(
        lambda: next((m for m in slack.messages_in("CIT00001") if head.hash in m.all_text), None)
    )
    assert f"{head.last_id} entries" in notice.all_text
