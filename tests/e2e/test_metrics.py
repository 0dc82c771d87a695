"""GET /metrics: Prometheus text with requests by kind, ack latency, outbox, decisions, reveals."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import request_kind
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from tests.company import ADMIN, EMPLOYEE
from tests.e2e.conftest import dm_with


def scrape(bot: BotServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(bot.url + "/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_what_happened(slack: SlackSim, sender: SlackSender, bot: BotServer) -> None:
    sender.slash(EMPLOYEE, "request sublime")
    sender.click(ADMIN, slack.wait_for(dm_with(slack, ADMIN, "Sublime")), label="Approve")
    told = slack.wait_for(dm_with(slack, EMPLOYEE, "Reveal key"))
    sender.click(EMPLOYEE, told, label="Reveal key")
    slack.wait_for(lambda: slack.open_modal(EMPLOYEE))

    m = scrape(bot)
    assert m[("licensebot_slack_requests_total", (("kind", "command"), ("status", "200")))] == 1
    assert (
        m[("licensebot_slack_requests_total", (("kind", "block_actions"), ("status", "200")))] == 2
    )
    assert m[("licensebot_ack_seconds_count", (("kind", "block_actions"),))] == 2
    assert m[("licensebot_ack_seconds_bucket", (("kind", "command"), ("le", "+Inf")))] == 1
    assert m[("licensebot_decisions_total", (("outcome", "approved"),))] == 1
    assert m[("licensebot_key_reveals_total", ())] == 1
    assert ("licensebot_outbox_messages", (("status", "sent"),)) in m


def test_request_kind_never_raises_on_garbage() -> None:
    assert request_kind(b"command=%2Flicense&text=x", "application/x-www-form-urlencoded") == (
        "command"
    )
    assert request_kind(b'{"type":"event_callback"}', "application/json") == "event"
    assert request_kind(b"payload=%7Bnot-json", "application/x-www-form-urlencoded") == "other"
    assert request_kind(b"\xff\xfe", "application/json") == "other"
    assert request_kind(b"[1,2]", "application/json") == "other"
