"""SlackSender against a signature-checking endpoint, and a real Bolt app end to end."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

import bot.slacksim.server as sim_server
from bot.slacksim import Message, SlackSender, SlackSim, View

SECRET = "test-signing-secret"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    form: dict[str, str] = field(default_factory=dict)

    @property
    def payload(self) -> dict[str, Any]:
        if "payload" in self.form:
            return dict(json.loads(self.form["payload"]))
        return dict(json.loads(self.body))


Reply = tuple[int, str, bytes]


class AppStub:
    """Stands in for the bot's endpoint: verifies Slack's signature like Bolt does."""

    def __init__(self) -> None:
        self.verifier = SignatureVerifier(SECRET)
        self.received: list[Received] = []
        self.reply: Callable[[Received], Reply] = lambda _: (200, "text/plain", b"")
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if not stub.verifier.is_valid_request(body, headers):
                    status, ctype, out = 401, "application/json", b'{"error":"invalid request"}'
                else:
                    got = Received(headers, body)
                    if "x-www-form-urlencoded" in headers.get("content-type", ""):
                        got.form = dict(parse_qsl(body.decode(), keep_blank_values=True))
                    stub.received.append(got)
                    status, ctype, out = stub.reply(got)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def answer_json(self, body: dict[str, Any]) -> None:
        self.reply = lambda _: (200, "application/json", json.dumps(body).encode())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def sim() -> Iterator[SlackSim]:
    with SlackSim() as sim:
        sim.add_user("U1", name="alice", email="alice@example.com")
        sim.add_user("U2", name="bob")
        yield sim


@pytest.fixture
def stub() -> Iterator[AppStub]:
    stub = AppStub()
    yield stub
    stub.close()


@pytest.fixture
def sender(sim: SlackSim, stub: AppStub) -> Iterator[SlackSender]:
    with SlackSender(sim, stub.url, SECRET) as sender:
        yield sender


@pytest.fixture
def client(sim: SlackSim) -> WebClient:
    return WebClient(token=sim.bot_token, base_url=sim.api_url)


def button(text: str, action_id: str, value: str | None = None) -> dict[str, Any]:
    el: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
    }
    if value is not None:
        el["value"] = value
    return el


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def post_with_buttons(sim: SlackSim, client: WebClient, channel: str = "C1") -> Message:
    blocks = [
        section("License request for *jira*"),
        {
            "type": "actions",
            "block_id": "req_42",
            "elements": [
                button("Approve", "approve", "req-42"),
                button("Deny", "deny", "req-42"),
                button("Open", "open"),
            ],
        },
    ]
    posted = client.chat_postMessage(channel=channel, text="License request", blocks=blocks)
    message = sim.find_message(posted["channel"], posted["ts"])
    assert message is not None
    return message


REQUEST_MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "req_license",
    "private_metadata": '{"p":"jira"}',
    "title": {"type": "plain_text", "text": "Request"},
    "submit": {"type": "plain_text", "text": "Send"},
    "blocks": [
        {
            "type": "input",
            "block_id": "seats",
            "label": {"type": "plain_text", "text": "Seats"},
            "element": {"type": "plain_text_input", "action_id": "seats_in", "initial_value": "1"},
        },
        {
            "type": "input",
            "block_id": "product",
            "label": {"type": "plain_text", "text": "Product"},
            "element": {
                "type": "static_select",
                "action_id": "product_in",
                "options": [
                    {"text": {"type": "plain_text", "text": "Jira"}, "value": "jira"},
                    {"text": {"type": "plain_text", "text": "Figma"}, "value": "figma"},
                ],
            },
        },
        {
            "type": "input",
            "block_id": "approver",
            "optional": True,
            "label": {"type": "plain_text", "text": "Approver"},
            "element": {"type": "users_select", "action_id": "approver_in"},
        },
    ],
}


def open_modal(sim: SlackSim, client: WebClient, user: str = "U1") -> View:
    client.views_open(trigger_id=sim.new_trigger_id(user), view=REQUEST_MODAL)
    view = sim.open_modal(user)
    assert view is not None
    return view


# -- signing --


def test_forged_and_stale_requests_are_rejected(sender: SlackSender, stub: AppStub) -> None:
    body = b'{"type":"event_callback","event":{"type":"app_mention"}}'
    assert sender.raw(body, "application/json").status_code == 200
    assert sender.raw(body, "application/json", secret="wrong").status_code == 401
    assert sender.raw(body, "application/json", sign=False).status_code == 401
    stale = int(time.time()) - 301
    assert sender.raw(body, "application/json", timestamp=stale).status_code == 401
    assert len(stub.received) == 1


# -- slash commands --


def test_slash_command_fields_and_minted_credentials(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    assert sender.slash("U1", "show jira").status_code == 200
    form = stub.received[-1].form
    assert form["command"] == "/license" and form["text"] == "show jira"
    assert form["user_id"] == "U1" and form["user_name"] == "alice"
    assert form["channel_id"] == "DU1" and form["channel_name"] == "directmessage"
    assert form["team_id"] == "T0001" and form["team_domain"] == "acme"
    assert form["api_app_id"] == "A0001" and form["is_enterprise_install"] == "false"
    assert form["response_url"].startswith(f"{sim.base_url}/commands/T0001/")
    assert client.views_open(trigger_id=form["trigger_id"], view=REQUEST_MODAL)["ok"]
    assert WebhookClient(form["response_url"]).send(text="later").status_code == 200
    assert sim.messages_visible_to("U1", "DU1")[0].text == "later"
    assert sim.messages_visible_to("U2", "DU1") == []


def test_slash_ack_body_is_shown_like_slack(
    sim: SlackSim, sender: SlackSender, stub: AppStub
) -> None:
    stub.answer_json({"text": "Working on it…"})
    sender.slash("U1", "show jira", channel="C1")
    ack = sim.messages_visible_to("U1", "C1")
    assert [(m.text, m.ephemeral_to, m.via) for m in ack] == [("Working on it…", "U1", "ack")]
    url = stub.received[-1].form["response_url"]
    assert WebhookClient(url).send(text="Key: ****", replace_original=True).status_code == 200
    replaced = sim.messages_visible_to("U1", "C1")
    assert len(replaced) == 1 and replaced[0].text == "Key: ****"
    assert replaced[0].history[0]["text"] == "Working on it…"

    stub.answer_json({"response_type": "in_channel", "text": "Everyone sees this"})
    sender.slash("U1", "announce", channel="C1")
    assert sim.messages_visible_to("U2", "C1")[-1].text == "Everyone sees this"

    stub.answer_json({"text": "t", "blocks": [section("x" * 3001)]})
    sender.slash("U1", "broken", channel="C1")
    assert sim.calls_to("ack")[-1].error == "invalid_blocks"


def test_slow_or_failing_ack_is_not_shown(
    sim: SlackSim, sender: SlackSender, stub: AppStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sim_server, "ACK_TIMEOUT", 0.05)

    def slow(_: Received) -> Reply:
        time.sleep(0.1)
        return 200, "application/json", b'{"text":"too late"}'

    stub.reply = slow
    sender.slash("U1", "show")
    stub.reply = lambda _: (404, "application/json", b'{"error":"unhandled request"}')
    sender.slash("U1", "show")
    assert [c.error for c in sim.calls_to("ack")] == ["operation_timeout", "dispatch_failed"]
    assert sim.messages_in("DU1") == []


# -- block actions --


def test_click_builds_block_actions_payload(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    message = post_with_buttons(sim, client)
    assert sender.click("U1", message, label="Approve").status_code == 200
    payload = stub.received[-1].payload
    assert payload["type"] == "block_actions"
    assert payload["user"] == {"id": "U1", "username": "alice", "name": "alice", "team_id": "T0001"}
    assert payload["team"]["id"] == "T0001" and payload["api_app_id"] == "A0001"
    assert payload["container"] == {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    assert payload["channel"]["id"] == "C1"
    assert payload["message"]["ts"] == message.ts and payload["message"]["blocks"]
    (action,) = payload["actions"]
    assert action["type"] == "button" and action["action_id"] == "approve"
    assert action["block_id"] == "req_42" and action["value"] == "req-42"
    assert action["text"] == {"type": "plain_text", "text": "Approve"} and action["action_ts"]
    assert payload["response_url"].startswith(f"{sim.base_url}/actions/T0001/")
    assert payload["trigger_id"]

    hook = WebhookClient(payload["response_url"])
    assert hook.send(text="Approved by alice", replace_original=True).status_code == 200
    updated = sim.find_message("C1", message.ts)
    assert updated is not None and updated.text == "Approved by alice"
    with pytest.raises(LookupError, match=r"no longer|no button"):
        sender.click("U1", message, action_id="approve")

    again = post_with_buttons(sim, client)
    sender.click("U2", again, action_id="open")
    assert "value" not in stub.received[-1].payload["actions"][0]


def test_click_fails_loudly(sim: SlackSim, sender: SlackSender, client: WebClient) -> None:
    message = post_with_buttons(sim, client)
    with pytest.raises(LookupError, match=r"available: .*approve"):
        sender.click("U1", message, label="Nope")
    with pytest.raises(LookupError, match="3 elements match"):
        sender.click("U1", message)
    with pytest.raises(LookupError, match="2 elements match"):
        sender.click("U1", message, value="req-42")
    sender.click("U1", message, label="Deny", value="req-42")


def test_click_on_ephemeral_message(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    blocks = [section("key: ABC"), {"type": "actions", "elements": [button("Hide", "hide_key")]}]
    ts = client.chat_postEphemeral(channel="DU1", user="U1", text="key", blocks=blocks)[
        "message_ts"
    ]
    message = sim.find_message("DU1", ts)
    assert message is not None
    with pytest.raises(LookupError, match="cannot see"):
        sender.click("U2", message, label="Hide")
    sender.click("U1", message, label="Hide")
    payload = stub.received[-1].payload
    assert payload["container"]["is_ephemeral"] is True and "message" not in payload
    assert payload["actions"][0]["block_id"]  # generated, as Slack does
    assert WebhookClient(payload["response_url"]).send(delete_original=True).status_code == 200
    assert sim.messages_visible_to("U1", "DU1") == []


# -- modals --


def test_submit_view_state_shapes_and_response_actions(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    view = open_modal(sim, client)
    stub.answer_json({"response_action": "errors", "errors": {"seats": "1-100 only"}})
    sender.submit_view(
        "U1", view, {"seats": {"seats_in": "500"}, "product": {"product_in": "jira"}}
    )
    payload = stub.received[-1].payload
    assert payload["type"] == "view_submission" and payload["response_urls"] == []
    sent = payload["view"]
    assert sent["id"] == view.id and sent["callback_id"] == "req_license"
    assert sent["private_metadata"] == '{"p":"jira"}' and sent["hash"] == view.hash
    assert sent["state"]["values"] == {
        "seats": {"seats_in": {"type": "plain_text_input", "value": "500"}},
        "product": {
            "product_in": {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": "Jira"},
                    "value": "jira",
                },
            }
        },
        "approver": {"approver_in": {"type": "users_select", "selected_user": None}},
    }
    still = sim.open_modal("U1")
    assert still is not None and still.errors == {"seats": "1-100 only"}

    updated_view = {**REQUEST_MODAL, "title": {"type": "plain_text", "text": "Confirm"}}
    stub.answer_json({"response_action": "update", "view": updated_view})
    sender.submit_view("U1", view, {"product": {"product_in": "figma"}})
    values = stub.received[-1].payload["view"]["state"]["values"]
    assert values["seats"]["seats_in"]["value"] == "500"  # still typed in after the errors
    top = sim.open_modal("U1")
    assert top is not None and top.id == view.id and top.title == "Confirm" and top.errors is None

    stub.answer_json({"response_action": "push", "view": {**REQUEST_MODAL, "callback_id": "p"}})
    sender.submit_view("U1", top, {"product": {"product_in": "jira"}})
    pushed = sim.open_modal("U1")
    assert pushed is not None and pushed.stack == 1 and pushed.callback_id == "p"

    stub.reply = lambda _: (200, "text/plain", b"")
    sender.submit_view("U1", pushed, {"product": {"product_in": "jira"}})
    assert sim.open_modal("U1") == sim.view(view.id)  # empty ack pops only the top view

    stub.answer_json({"response_action": "clear"})
    sender.submit_view("U1", view, {"product": {"product_in": "jira"}})
    assert sim.open_modal("U1") is None and sim.view(view.id).open is False  # type: ignore[union-attr]


def test_untouched_inputs_submit_their_initial_values(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    sender.submit_view("U1", open_modal(sim, client), {"product": {"product_in": "jira"}})
    values = stub.received[-1].payload["view"]["state"]["values"]
    assert values["seats"]["seats_in"] == {"type": "plain_text_input", "value": "1"}
    assert sim.open_modal("U1") is None


def test_submit_view_refuses_what_slack_client_would(
    sim: SlackSim, sender: SlackSender, client: WebClient
) -> None:
    view = open_modal(sim, client)
    with pytest.raises(ValueError, match="required input product/product_in"):
        sender.submit_view("U1", view, {"seats": {"seats_in": "3"}})
    with pytest.raises(KeyError, match="no input nope/x"):
        sender.submit_view("U1", view, {"nope": {"x": "1"}})
    with pytest.raises(LookupError, match="no option 'word'"):
        sender.submit_view("U1", view, {"product": {"product_in": "word"}})
    with pytest.raises(LookupError, match="belongs to U1"):
        sender.submit_view("U2", view, {"product": {"product_in": "jira"}})


def test_select_in_modal_is_remembered_for_submission(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    view = open_modal(sim, client)
    sender.select("U1", view, "product_in", "figma")
    action = stub.received[-1].payload["actions"][0]
    assert action["type"] == "static_select" and action["selected_option"]["value"] == "figma"
    assert stub.received[-1].payload["container"] == {"type": "view", "view_id": view.id}
    sender.submit_view("U1", view)
    values = stub.received[-1].payload["view"]["state"]["values"]
    assert values["product"]["product_in"]["selected_option"]["value"] == "figma"


def test_close_view_notifies_only_when_asked(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    view = open_modal(sim, client)
    assert sender.close_view("U1", view) is None and sim.open_modal("U1") is None
    notify = {**REQUEST_MODAL, "notify_on_close": True}
    client.views_open(trigger_id=sim.new_trigger_id("U1"), view=notify)
    top = sim.open_modal("U1")
    assert top is not None
    response = sender.close_view("U1", top)
    assert response is not None and stub.received[-1].payload["type"] == "view_closed"


def test_shortcut_payload(sender: SlackSender, stub: AppStub, sim: SlackSim) -> None:
    sender.shortcut("U1", "request_license")
    payload = stub.received[-1].payload
    assert payload["type"] == "shortcut" and payload["callback_id"] == "request_license"
    assert payload["user"]["id"] == "U1" and payload["trigger_id"]


# -- events --


def test_event_envelope_and_retry_headers(sender: SlackSender, stub: AppStub) -> None:
    sender.event({"type": "app_mention", "user": "U1"}, event_id="Ev1", retry_num=2)
    got = stub.received[-1]
    envelope = got.payload
    assert envelope["type"] == "event_callback" and envelope["event_id"] == "Ev1"
    assert envelope["team_id"] == "T0001" and envelope["api_app_id"] == "A0001"
    assert envelope["authorizations"][0]["user_id"] == "UBOT" and envelope["event_time"]
    assert got.headers["x-slack-retry-num"] == "2"
    assert got.headers["x-slack-retry-reason"] == "http_timeout"
    sender.event({"type": "app_mention"})
    assert "x-slack-retry-num" not in stub.received[-1].headers
    assert stub.received[-1].payload["event_id"] != "Ev1"


def test_app_home_opened_message_im_and_user_change(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    sender.app_home_opened("U1")
    assert "view" not in stub.received[-1].payload["event"]
    client.views_publish(user_id="U1", view={"type": "home", "blocks": [section("Home")]})
    sender.app_home_opened("U1")
    event = stub.received[-1].payload["event"]
    assert event["type"] == "app_home_opened" and event["channel"] == "DU1"
    assert event["view"]["type"] == "home"

    sender.message_im("U1", "help")
    event = stub.received[-1].payload["event"]
    assert event["channel_type"] == "im" and event["text"] == "help"
    assert sim.messages_in("DU1")[-1].user == "U1"

    sim.add_user("U2", name="bob", deleted=True)
    sender.user_change("U2")
    assert stub.received[-1].payload["event"]["user"]["deleted"] is True


# -- a real Bolt app --


class _QuietWSGIHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_bolt_app_round_trip(sim: SlackSim) -> None:
    app = App(
        signing_secret=SECRET,
        client=WebClient(token=sim.bot_token, base_url=sim.api_url),
    )

    @app.command("/license")
    def show(ack: Ack, respond: Respond) -> None:
        ack("Working on it…")
        respond(
            replace_original=True,
            text="Your key",
            blocks=[
                section("`KEY-123`"),
                {"type": "actions", "elements": [button("Hide", "hide_key")]},
            ],
        )

    @app.action("hide_key")
    def hide(ack: Ack, respond: Respond) -> None:
        ack()
        respond(delete_original=True)

    @app.shortcut("request_license")
    def request(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=REQUEST_MODAL)

    @app.view("req_license")
    def submitted(ack: Ack, view: dict[str, Any]) -> None:
        seats = view["state"]["values"]["seats"]["seats_in"]["value"]
        if not seats.isdigit():
            ack(response_action="errors", errors={"seats": "a number please"})
        else:
            ack()

    server: WSGIServer = make_server(
        "127.0.0.1", 0, SlackRequestHandler(app), handler_class=_QuietWSGIHandler
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
    try:
        with SlackSender(sim, url, SECRET) as sender:
            assert sender.slash("U1", "show jira").status_code == 200
            key = sim.wait_for(
                lambda: next(
                    (m for m in sim.messages_visible_to("U1", "DU1") if "KEY-123" in m.all_text),
                    None,
                )
            )
            assert key.ephemeral_to == "U1" and key.history[0]["text"] == "Working on it…"
            assert len(sim.messages_in("DU1")) == 1

            assert sender.click("U1", key, label="Hide").status_code == 200
            sim.wait_for(lambda: not sim.messages_visible_to("U1", "DU1"))

            sender.shortcut("U1", "request_license")
            modal = sim.wait_for(lambda: sim.open_modal("U1"))
            sender.submit_view(
                "U1", modal, {"seats": {"seats_in": "many"}, "product": {"product_in": "jira"}}
            )
            errored = sim.open_modal("U1")
            assert errored is not None and errored.errors == {"seats": "a number please"}
            sender.submit_view("U1", errored, {"seats": {"seats_in": "3"}})
            assert sim.open_modal("U1") is None
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    methods = {c.method for c in sim.calls}
    assert {"auth.test", "response_url", "views.open", "ack"} <= methods


def test_click_picks_the_block_when_buttons_repeat(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    blocks = [
        {"type": "actions", "block_id": f"seat_{n}", "elements": [button("Keep", "keep", "x")]}
        for n in (1, 2)
    ]
    posted = client.chat_postMessage(channel="C1", text="seats", blocks=blocks)
    message = sim.find_message("C1", posted["ts"])
    assert message is not None
    with pytest.raises(LookupError, match="2 elements match"):
        sender.click("U1", message, action_id="keep")
    with pytest.raises(LookupError, match="block_id='seat_3'"):
        sender.click("U1", message, action_id="keep", block_id="seat_3")
    sender.click("U1", message, action_id="keep", block_id="seat_2")
    assert stub.received[-1].payload["actions"][0]["block_id"] == "seat_2"


def test_select_a_user_in_a_users_select(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    picker = {"type": "users_select", "action_id": "pick"}
    posted = client.chat_postMessage(
        channel="C1", text="who", blocks=[{"type": "actions", "elements": [picker]}]
    )
    message = sim.find_message("C1", posted["ts"])
    assert message is not None
    sender.select("U1", message, "pick", "U2")
    (action,) = stub.received[-1].payload["actions"]
    assert action["type"] == "users_select" and action["selected_user"] == "U2"
    with pytest.raises(LookupError, match="not a user"):
        sender.select("U1", message, "pick", "U404")


def test_a_new_submission_replaces_the_errors_of_the_last(
    sim: SlackSim, sender: SlackSender, stub: AppStub, client: WebClient
) -> None:
    view = open_modal(sim, client)
    stub.answer_json({"response_action": "errors", "errors": {"seats": "1-100 only"}})
    sender.submit_view("U1", view, {"product": {"product_in": "jira"}})
    assert sim.view(view.id).errors == {"seats": "1-100 only"}  # type: ignore[union-attr]
    # Pushed on top: the form underneath no longer shows the old errors.
    stub.answer_json({"response_action": "push", "view": {**REQUEST_MODAL, "callback_id": "p"}})
    sender.submit_view("U1", view, {"product": {"product_in": "jira"}})
    assert sim.view(view.id).errors is None  # type: ignore[union-attr]
