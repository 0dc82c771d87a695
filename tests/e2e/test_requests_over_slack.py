"""Each numbered behaviour of the core flow, driven over HTTP as Slack drives it."""

from __future__ import annotations

import json
import threading
import time

import httpx
from sqlmodel import col, select

from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import Message, SlackSim
from handlers import ids
from storage.models import AuditEntry, Decision, LicenseRequest
from tests.company import ADMIN, EMPLOYEE, IT1, IT2, MANAGER, NEWHIRE, ORPHAN, OUTSIDER
from tests.e2e.conftest import SECRET, dm_with, ephemeral_to


def request_rows(rt: Runtime) -> list[LicenseRequest]:
    with rt.db.read() as s:
        return list(s.exec(select(LicenseRequest).order_by(col(LicenseRequest.id))).all())


def audit_count(rt: Runtime) -> int:
    with rt.db.read() as s:
        return len(s.exec(select(AuditEntry.id)).all())


def test_unknown_product_gets_closest_matches(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(EMPLOYEE, "request intelij")
    reply = slack.wait_for(ephemeral_to(slack, EMPLOYEE, "intelij"))
    assert "intellij" in reply.all_text
    assert request_rows(runtime) == []


def test_duplicate_and_already_held_are_told_and_nothing_is_duplicated(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(EMPLOYEE, "request figma first")
    sender.slash(EMPLOYEE, "request figma second")
    slack.wait_for(ephemeral_to(slack, EMPLOYEE, "already has request #1"))
    assert len(request_rows(runtime)) == 1
    card = slack.wait_for(dm_with(slack, MANAGER, "Figma"))
    sender.click(MANAGER, card, label="Approve")
    slack.wait_for(dm_with(slack, EMPLOYEE, "approved"))
    sender.slash(EMPLOYEE, "request figma third")
    slack.wait_for(ephemeral_to(slack, EMPLOYEE, "already has Figma"))
    assert len(request_rows(runtime)) == 1


def test_long_unicode_justification_is_stored_whole_and_shown_within_limits(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    why = ("Für das Ω-Projekt 🚀 <@U999> <!channel> " * 300).strip()
    assert sender.slash(EMPLOYEE, f"request figma {why}").status_code == 200
    card = slack.wait_for(dm_with(slack, MANAGER, "Für das Ω-Projekt"))
    assert request_rows(runtime)[0].justification == why
    assert "<!channel>" not in json.dumps(card.blocks)  # escaped, not a real mention
    assert all(c.ok for c in slack.calls_to("chat.postMessage"))


def test_refusals_at_click_time_change_nothing(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(EMPLOYEE, "request intellij")
    card = slack.wait_for(dm_with(slack, MANAGER, "1 of 2"))
    audit_before = audit_count(runtime)
    # The requester, an outsider and a later step's approver all click the manager's card.
    for intruder in (EMPLOYEE, OUTSIDER, IT1):
        assert sender.click(intruder, card, label="Approve").status_code == 200
        slack.wait_for(ephemeral_to(slack, intruder, "can't"))
    assert sender.click(OUTSIDER, card, label="Deny").status_code == 200
    slack.wait_for(lambda: len([m for m in slack.messages if m.ephemeral_to == OUTSIDER]) >= 2)
    assert slack.open_modal(OUTSIDER) is None
    with runtime.db.read() as s:
        assert s.exec(select(Decision)).all() == []
    assert audit_count(runtime) == audit_before
    # The manager decides on the card; a second click from a stale App Home (rendered before
    # the decision) is told who decided.
    sender.app_home_opened(MANAGER)
    stale_home = slack.wait_for(lambda: slack.home(MANAGER))
    sender.click(MANAGER, card, label="Approve")
    slack.wait_for(dm_with(slack, IT1, "2 of 2"))
    sender.click(MANAGER, stale_home, label="Approve")
    # App Home clicks carry no response_url: the answer comes as a DM and Home is refreshed.
    slack.wait_for(dm_with(slack, MANAGER, f"Already approved by <@{MANAGER}>"))
    slack.wait_for(lambda: (h := slack.home(MANAGER)) and ids.ACTION_APPROVE not in str(h.blocks))
    with runtime.db.read() as s:
        assert len(s.exec(select(Decision)).all()) == 1


def test_deny_asks_for_a_reason_and_tells_the_requester(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(EMPLOYEE, "request figma for the design review")
    card = slack.wait_for(dm_with(slack, MANAGER, "Figma"))
    sender.click(MANAGER, card, label="Deny")
    modal = slack.wait_for(lambda: slack.open_modal(MANAGER))
    assert modal.callback_id == ids.VIEW_DENY
    answer = sender.submit_view(MANAGER, modal, {ids.BLOCK_REASON: {ids.INPUT_REASON: "   "}})
    assert answer.json()["response_action"] == "errors"
    assert request_rows(runtime)[0].status == "pending"
    sender.submit_view(MANAGER, modal, {ids.BLOCK_REASON: {ids.INPUT_REASON: "Use the team seat"}})
    denied = slack.wait_for(dm_with(slack, EMPLOYEE, "Use the team seat"))
    assert "Figma" in denied.all_text and f"<@{MANAGER}>" in denied.all_text
    assert request_rows(runtime)[0].status == "denied"


def test_request_form_from_command_and_shortcut(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(EMPLOYEE, "request")
    form = slack.wait_for(lambda: slack.open_modal(EMPLOYEE))
    assert form.callback_id == ids.VIEW_REQUEST
    answer = sender.submit_view(
        EMPLOYEE,
        form,
        {
            ids.BLOCK_PRODUCT: {ids.INPUT_PRODUCT: "figma"},
            ids.BLOCK_JUSTIFICATION: {ids.INPUT_JUSTIFICATION: "mockups"},
        },
    )
    assert answer.json()["response_action"] == "update"
    assert [(r.product_id, r.justification) for r in request_rows(runtime)] == [
        ("figma", "mockups")
    ]
    slack.wait_for(dm_with(slack, MANAGER, "mockups"))

    sender.shortcut(NEWHIRE, ids.SHORTCUT_REQUEST)
    form = slack.wait_for(lambda: slack.open_modal(NEWHIRE))
    assert form.callback_id == ids.VIEW_REQUEST


def test_seat_product_tells_it_channel_to_provision(slack: SlackSim, sender: SlackSender) -> None:
    sender.slash(EMPLOYEE, "request figma")
    sender.click(MANAGER, slack.wait_for(dm_with(slack, MANAGER, "Figma")), label="Approve")
    notice = slack.wait_for(
        lambda: next((m for m in slack.messages_in("CIT00001") if "provision" in m.all_text), None)
    )
    assert f"<@{EMPLOYEE}>" in notice.all_text and "#1" in notice.all_text
    told = slack.wait_for(dm_with(slack, EMPLOYEE, "approved"))
    assert "Reveal key" not in told.all_text


def test_out_of_seats_waitlists_and_tells_it(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    # figma has one seat: the second approved request waits in the queue.
    sender.slash(EMPLOYEE, "request figma")
    sender.click(MANAGER, slack.wait_for(dm_with(slack, MANAGER, "#1")), label="Approve")
    sender.slash(NEWHIRE, "request figma")
    sender.click(MANAGER, slack.wait_for(dm_with(slack, MANAGER, "#2")), label="Approve")
    slack.wait_for(dm_with(slack, NEWHIRE, "queue"))
    slack.wait_for(
        lambda: next((m for m in slack.messages_in("CIT00001") if "out of" in m.all_text), None)
    )
    assert request_rows(runtime)[1].status == "waitlisted"


def test_auto_approved_product(slack: SlackSim, sender: SlackSender, runtime: Runtime) -> None:
    sender.slash(ORPHAN, "request slack-huddles")
    slack.wait_for(ephemeral_to(slack, ORPHAN, "approved"))
    assert request_rows(runtime)[0].status == "approved"


def test_manager_requests_for_a_new_hire(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(MANAGER, f"request intellij for <@{NEWHIRE}|nina> starts Monday")
    slack.wait_for(ephemeral_to(slack, MANAGER, "#1"))
    row = request_rows(runtime)[0]
    assert (row.requester_id, row.requested_by, row.justification) == (
        NEWHIRE,
        MANAGER,
        "starts Monday",
    )
    # Maria asked, so the "manager" step cannot be hers: it goes to IT, and the card says why.
    card = slack.wait_for(dm_with(slack, ADMIN, "1 of 2"))
    assert "IT" in card.all_text
    sender.slash(EMPLOYEE, f"request intellij for <@{NEWHIRE}>")
    slack.wait_for(ephemeral_to(slack, EMPLOYEE, "only their manager or IT"))


def test_app_home_shows_requests_waiting_for_me(slack: SlackSim, sender: SlackSender) -> None:
    sender.slash(EMPLOYEE, "request figma")
    slack.wait_for(dm_with(slack, MANAGER, "Figma"))
    sender.app_home_opened(MANAGER)
    home = slack.wait_for(lambda: slack.home(MANAGER))
    assert "Figma" in home.all_text
    sender.click(MANAGER, home, label="Approve")
    slack.wait_for(dm_with(slack, EMPLOYEE, "approved"))
    sender.app_home_opened(EMPLOYEE)
    slack.wait_for(lambda: (h := slack.home(EMPLOYEE)) and "Figma" in h.all_text)


def test_help_catalog_and_unknown_subcommand(slack: SlackSim, sender: SlackSender) -> None:
    sender.slash(EMPLOYEE, "catalog")
    listing = slack.wait_for(ephemeral_to(slack, EMPLOYEE, "intellij"))
    assert "figma" in listing.all_text
    sender.slash(EMPLOYEE, "")
    slack.wait_for(ephemeral_to(slack, EMPLOYEE, "/license mine"))
    sender.slash(EMPLOYEE, "frobnicate")
    slack.wait_for(ephemeral_to(slack, EMPLOYEE, "frobnicate"))


def test_forged_and_stale_requests_are_refused(
    sender: SlackSender, bot: BotServer, runtime: Runtime
) -> None:
    body = b"command=%2Flicense&text=request+figma&user_id=UEMP00001&trigger_id=1&team_id=T0001"
    form = "application/x-www-form-urlencoded"
    assert sender.raw(body, form, sign=False).status_code == 401
    assert sender.raw(body, form, secret="not-the-secret").status_code == 401
    assert sender.raw(body, form, timestamp=int(time.time()) - 301).status_code == 401
    assert request_rows(runtime) == []
    ssl = sender.raw(b"ssl_check=1&token=x", form, sign=False)
    assert ssl.status_code == 200
    assert SECRET not in ssl.text


def test_healthz(bot: BotServer) -> None:
    assert httpx.get(bot.url + "/healthz").status_code == 200
    assert httpx.get(bot.url + "/nope").status_code == 404


def test_two_approvers_clicking_at_once_make_one_decision(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(EMPLOYEE, "request intellij")
    sender.click(MANAGER, slack.wait_for(dm_with(slack, MANAGER, "1 of 2")), label="Approve")
    cards = [slack.wait_for(dm_with(slack, who, "2 of 2")) for who in (IT1, IT2)]
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def click(who: str, card: Message) -> None:
        barrier.wait()
        codes.append(sender.click(who, card, label="Approve").status_code)

    threads = [
        threading.Thread(target=click, args=pair) for pair in zip((IT1, IT2), cards, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200, 200]
    with runtime.db.read() as s:
        decisions = s.exec(select(Decision).where(Decision.step == 1)).all()
    assert len(decisions) == 1
    loser = IT1 if decisions[0].decider_id == IT2 else IT2
    slack.wait_for(ephemeral_to(slack, loser, "Already approved by"))
    assert (
        len(
            slack.wait_for(
                lambda: [
                    m
                    for m in slack.messages_in(slack.dm_channel(EMPLOYEE))
                    if "Reveal key" in m.all_text
                ]
            )
        )
        == 1
    )


def test_app_home_lists_my_open_requests_with_their_status(
    slack: SlackSim, sender: SlackSender
) -> None:
    sender.slash(EMPLOYEE, "request intellij")
    slack.wait_for(dm_with(slack, MANAGER, "1 of 2"))
    sender.app_home_opened(EMPLOYEE)
    home = slack.wait_for(lambda: slack.home(EMPLOYEE))
    assert "IntelliJ" in home.all_text and f"<@{MANAGER}>" in home.all_text
    assert "1 of 2" in home.all_text


def test_healthz_says_503_when_the_database_is_gone(slack: SlackSim, runtime: Runtime) -> None:
    from bot.app import assemble
    from storage.db import Database
    from tests.e2e.conftest import TOKEN

    gone = Runtime(
        db=Database("postgresql+psycopg://postgres@127.0.0.1:1/none"),
        vault=runtime.vault,
        clock=runtime.clock,
        audit_keys=runtime.audit_keys,
    )
    server = BotServer(
        assemble(gone, token=TOKEN, signing_secret=SECRET, api_url=slack.api_url), port=0
    )
    server.start()
    try:
        answer = httpx.get(server.url + "/healthz")
        assert answer.status_code == 503 and answer.json()["ok"] is False
    finally:
        server.stop()
        gone.db.dispose()


def test_a_command_whose_text_says_payload_is_still_a_command(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    # Bolt alone parses this body as an empty interaction and answers 404.
    answer = sender.slash(EMPLOYEE, "request figma payload design work")
    assert answer.status_code == 200
    assert [r.justification for r in request_rows(runtime)] == ["payload design work"]
