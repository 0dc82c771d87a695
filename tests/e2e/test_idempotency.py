"""Slack delivers some things twice; each is acted on once."""

from __future__ import annotations

from sqlmodel import select

from bot.runtime import Runtime
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from handlers import ids
from storage.models import LicenseRequest, OutboxMessage
from tests.company import EMPLOYEE, MANAGER


def home_refreshes(rt: Runtime) -> int:
    with rt.db.read() as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "home_refresh")).all()
        return len(rows)


def test_event_retries_and_duplicate_event_ids_are_processed_once(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    event = {
        "type": "app_home_opened",
        "user": EMPLOYEE,
        "channel": "DEMP",
        "tab": "home",
        "event_ts": "1700000000.000100",
    }
    assert sender.event(event, event_id="Ev0001").status_code == 200
    assert sender.event(event, event_id="Ev0001", retry_num=1).status_code == 200
    assert sender.event(event, event_id="Ev0001").status_code == 200
    assert home_refreshes(runtime) == 1
    assert sender.event(event, event_id="Ev0002").status_code == 200
    assert home_refreshes(runtime) == 2


def test_a_modal_submitted_twice_creates_one_request(
    slack: SlackSim, sender: SlackSender, runtime: Runtime
) -> None:
    sender.slash(EMPLOYEE, "request")
    form = slack.wait_for(lambda: slack.open_modal(EMPLOYEE))
    first = sender.submit_view(EMPLOYEE, form, {ids.BLOCK_PRODUCT: {ids.INPUT_PRODUCT: "figma"}})
    # Slack delivers the very same submission again (a retry after a slow network).
    again = sender.raw(first.request.content, "application/x-www-form-urlencoded")
    assert again.status_code == 200 and again.json()["response_action"] == "update"
    assert again.json()["view"] == first.json()["view"]
    with runtime.db.read() as s:
        assert len(s.exec(select(LicenseRequest)).all()) == 1
    slack.wait_for(
        lambda: [m for m in slack.messages_in(slack.dm_channel(MANAGER)) if "Figma" in m.all_text]
    )
    assert (
        len([m for m in slack.messages_in(slack.dm_channel(MANAGER)) if "Figma" in m.all_text]) == 1
    )
