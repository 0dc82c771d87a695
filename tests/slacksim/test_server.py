"""SlackSim against slack_sdk's real clients: shapes, limits, state and faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.slacksim import SlackSim, validate_blocks, validate_view


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> Iterator[SlackSim]:
    with SlackSim(now=clock) as sim:
        sim.add_user("U1", name="alice", email="alice@example.com")
        sim.add_user("U2", name="bob", email="bob@example.com")
        sim.add_user("U3", name="gone", email="gone@example.com", deleted=True)
        yield sim


@pytest.fixture
def client(sim: SlackSim) -> WebClient:
    return WebClient(token=sim.bot_token, base_url=sim.api_url)


def api_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(text: str, action_id: str, value: str = "v") -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }


def modal(title: str = "Request", **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "req",
        "title": {"type": "plain_text", "text": title},
        "blocks": [section("hello")],
        **extra,
    }


# -- auth and transport --


def test_auth_test_reports_identity_and_scopes(sim: SlackSim, client: WebClient) -> None:
    response = client.auth_test()
    assert response["user_id"] == "UBOT"
    assert response["team_id"] == "T0001"
    assert response["bot_id"] == "B0001"
    assert "chat:write" in response.headers["x-oauth-scopes"].split(",")
    assert sim.calls[-1].method == "auth.test"


def test_bad_or_missing_token(sim: SlackSim) -> None:
    wrong = WebClient(token="xoxb-wrong", base_url=sim.api_url)
    assert api_error(wrong.auth_test).response["error"] == "invalid_auth"
    anonymous = WebClient(base_url=sim.api_url)
    assert api_error(anonymous.auth_test).response["error"] == "not_authed"


def test_token_param_get_and_form_bodies(sim: SlackSim) -> None:
    got = httpx.get(f"{sim.api_url}users.info", params={"token": sim.bot_token, "user": "U1"})
    assert got.status_code == 200 and got.json()["user"]["name"] == "alice"
    blocks = json.dumps([section("form")])
    posted = httpx.post(
        f"{sim.api_url}chat.postMessage",
        data={"token": sim.bot_token, "channel": "C1", "blocks": blocks},
    )
    assert posted.json()["ok"], posted.json()
    assert sim.messages_in("C1")[0].blocks[0]["text"]["text"] == "form"
    assert "token" not in sim.calls[-1].args


def test_unknown_method_and_missing_scope(clock: Clock) -> None:
    with SlackSim(now=clock, scopes=["commands"]) as sim:
        client = WebClient(token=sim.bot_token, base_url=sim.api_url)
        assert api_error(lambda: client.api_call("nope.nothing")).response["error"] == (
            "unknown_method"
        )
        error = api_error(lambda: client.chat_postMessage(channel="C1", text="x")).response
        assert error["error"] == "missing_scope" and error["needed"] == "chat:write"


# -- messages --


def test_post_message_to_user_lands_in_stable_dm(sim: SlackSim, client: WebClient) -> None:
    opened = client.conversations_open(users="U1")
    assert opened["channel"]["id"] == sim.dm_channel("U1")
    first = client.chat_postMessage(
        channel="U1", text="fallback", blocks=[section("hi"), {"type": "divider"}]
    )
    second = client.chat_postMessage(channel=opened["channel"]["id"], text="again")
    assert first["channel"] == second["channel"] == "DU1"
    assert float(first["ts"]) < float(second["ts"])
    message = first["message"]
    assert message["bot_id"] == "B0001" and message["user"] == "UBOT"
    assert all(block["block_id"] for block in message["blocks"])
    stored = sim.messages_in("DU1")
    assert [m.text for m in stored] == ["fallback", "again"]
    assert "hi" in stored[0].all_text
    assert client.conversations_open(users="U1")["already_open"] is True


def test_post_message_errors(sim: SlackSim, client: WebClient) -> None:
    def post(**kwargs: Any) -> str:
        return str(api_error(lambda: client.chat_postMessage(**kwargs)).response["error"])

    # chat_postMessage() warns without text; api_call sends the bare request as is.
    no_text = api_error(lambda: client.api_call("chat.postMessage", json={"channel": "C1"}))
    assert no_text.response["error"] == "no_text"
    assert post(channel="U404", text="x") == "channel_not_found"
    assert post(channel="", text="x") == "channel_not_found"
    assert post(channel="C1", text="x" * 40_001) == "msg_too_long"
    assert post(channel="U3", text="x") == "is_archived"
    assert api_error(lambda: client.conversations_open(users="U3")).response["error"] == (
        "user_disabled"
    )
    sim.add_channel("C9", name="locked", members=["U1"])
    assert post(channel="C9", text="x") == "not_in_channel"


def test_ephemeral_is_private_and_cannot_be_updated(sim: SlackSim, client: WebClient) -> None:
    sim.add_channel("C1", name="licenses", members=["UBOT", "U1", "U2"])
    eph = client.chat_postEphemeral(channel="C1", user="U1", text="secret")
    assert set(eph.data) == {"ok", "message_ts"}
    public = client.chat_postMessage(channel="C1", text="hello all")
    assert [m.text for m in sim.messages_visible_to("U1", "C1")] == ["secret", "hello all"]
    assert [m.text for m in sim.messages_visible_to("U2", "C1")] == ["hello all"]
    assert sim.find_message("C1", eph["message_ts"]).ephemeral_to == "U1"  # type: ignore[union-attr]

    refused = api_error(lambda: client.chat_update(channel="C1", ts=eph["message_ts"], text="x"))
    assert refused.response["error"] == "message_not_found"
    unknown = api_error(lambda: client.chat_update(channel="C1", ts="1.000001", text="x"))
    assert unknown.response["error"] == "message_not_found"
    outsider = api_error(lambda: client.chat_postEphemeral(channel="C1", user="U3", text="x"))
    assert outsider.response["error"] == "user_not_in_channel"

    updated = client.chat_update(
        channel="C1", ts=public["ts"], text="edited", blocks=[section("b")]
    )
    assert updated["ts"] == public["ts"] and updated["text"] == "edited"
    message = sim.find_message("C1", public["ts"])
    assert message is not None and message.text == "edited"
    assert [h["text"] for h in message.history] == ["hello all"]

    client.chat_delete(channel="C1", ts=public["ts"])
    assert sim.messages_in("C1") == sim.messages_visible_to("U1", "C1")[:1]
    assert sim.messages_in("C1", include_deleted=True)[-1].deleted


@pytest.mark.parametrize(
    ("blocks", "fragment"),
    [
        ([section(str(i)) for i in range(51)], "no more than 50 items"),
        ([section("x" * 3001)], "must be less than 3001 characters"),
        (
            [{"type": "actions", "elements": [button("y" * 76, "a")]}],
            "must be less than 76 characters",
        ),
        ([{"type": "carousel"}], "unsupported block type"),
    ],
)
def test_invalid_blocks_are_refused(client: WebClient, blocks: Any, fragment: str) -> None:
    error = api_error(lambda: client.chat_postMessage(channel="C1", text="t", blocks=blocks))
    assert error.response["error"] == "invalid_blocks"
    assert any(fragment in e for e in error.response["errors"]), error.response["errors"]


def test_blockkit_limits() -> None:
    assert validate_blocks([section("x" * 3000)]) == []
    assert validate_blocks([section("x")] * 100, max_blocks=100) == []
    header = [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]
    assert validate_blocks(header) == [
        "must be one of plain_text [json-pointer:/blocks/0/text/type]"
    ]
    dupes = [
        {"type": "actions", "block_id": "b", "elements": [button("A", "x"), button("B", "x")]},
        {"type": "divider", "block_id": "b"},
    ]
    errors = validate_blocks(dupes)
    assert any("duplicate action_id" in e for e in errors)
    assert any("duplicate block_id" in e for e in errors)
    fields = [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}]
    assert validate_blocks(fields)
    long_value = [{"type": "actions", "elements": [button("ok", "a", value="v" * 2001)]}]
    assert validate_blocks(long_value)
    option = {"text": {"type": "plain_text", "text": "o" * 76}, "value": "v"}
    select = {"type": "static_select", "action_id": "s", "options": [option]}
    assert validate_blocks([{"type": "actions", "elements": [select]}])
    confirm = {
        "title": {"type": "plain_text", "text": "t"},
        "text": {"type": "mrkdwn", "text": "x"},
        "confirm": {"type": "plain_text", "text": "c" * 31},
        "deny": {"type": "plain_text", "text": "no"},
    }
    confirmed = {**button("ok", "a"), "confirm": confirm}
    assert validate_blocks([{"type": "actions", "elements": [confirmed]}])
    assert validate_blocks([{"type": "input", "label": {"type": "plain_text", "text": "l"}}])
    assert validate_blocks(
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}]
    )
    assert validate_blocks([{"type": "actions", "elements": [button("b", "a")] * 26}])
    assert validate_view(modal(title="t" * 25))
    assert validate_view(modal(private_metadata="m" * 3001))
    assert validate_view({**modal(), "blocks": [section("x")] * 101})
    text_input = {
        "type": "input",
        "block_id": "b",
        "label": {"type": "plain_text", "text": "Seats"},
        "element": {"type": "plain_text_input", "action_id": "a"},
    }
    assert validate_view({**modal(), "blocks": [text_input]})  # needs a submit button
    with_submit = {
        **modal(),
        "blocks": [text_input],
        "submit": {"type": "plain_text", "text": "Go"},
    }
    assert validate_view(with_submit) == []


# -- triggers and views --


def test_trigger_expires_after_three_seconds_and_is_single_use(
    sim: SlackSim, client: WebClient, clock: Clock
) -> None:
    stale = sim.new_trigger_id("U1")
    clock.t += 3.5
    assert api_error(lambda: client.views_open(trigger_id=stale, view=modal())).response[
        "error"
    ] == ("expired_trigger_id")
    fresh = sim.new_trigger_id("U1")
    clock.t += 2.9
    assert client.views_open(trigger_id=fresh, view=modal())["ok"]
    reused = api_error(lambda: client.views_open(trigger_id=fresh, view=modal()))
    assert reused.response["error"] == "exchanged_trigger_id"
    bogus = api_error(lambda: client.views_open(trigger_id="1.2.3", view=modal()))
    assert bogus.response["error"] == "invalid_trigger_id"


def test_views_open_push_update_publish(sim: SlackSim, client: WebClient) -> None:
    opened = client.views_open(trigger_id=sim.new_trigger_id("U1"), view=modal())["view"]
    for key in ("id", "team_id", "hash", "root_view_id", "app_id", "bot_id", "state"):
        assert key in opened
    assert opened["previous_view_id"] is None and opened["root_view_id"] == opened["id"]
    assert opened["callback_id"] == "req" and opened["state"] == {"values": {}}

    pushed = []
    for n in range(2):
        view = modal(title=f"Step {n}")
        pushed.append(client.views_push(trigger_id=sim.new_trigger_id("U1"), view=view)["view"])
    assert pushed[0]["previous_view_id"] == opened["id"]
    assert pushed[1]["root_view_id"] == opened["id"]
    limit = api_error(lambda: client.views_push(trigger_id=sim.new_trigger_id("U1"), view=modal()))
    assert limit.response["error"] == "push_limit_reached"
    top = sim.open_modal("U1")
    assert top is not None and top.id == pushed[1]["id"] and top.stack == 2
    assert [v.stack for v in sim.modal_stack("U1")] == [0, 1, 2]

    updated = client.views_update(
        view_id=top.id, hash=top.hash, view=modal(title="Masked", private_metadata="m")
    )["view"]
    assert updated["id"] == top.id and updated["hash"] != top.hash
    stale = api_error(lambda: client.views_update(view_id=top.id, hash=top.hash, view=modal()))
    assert stale.response["error"] == "hash_conflict"
    current = sim.view(top.id)
    assert current is not None and current.title == "Masked" and len(current.history) == 1

    too_big = {**modal(), "private_metadata": "", "blocks": [section("x" * 2900)] * 95}
    oversized = api_error(lambda: client.views_update(view_id=top.id, view=too_big))
    assert oversized.response["error"] == "view_too_large"
    bad_title = api_error(lambda: client.views_update(view_id=top.id, view=modal("t" * 25)))
    assert bad_title.response["error"] == "invalid_arguments"
    assert bad_title.response["errors"]

    home = {"type": "home", "blocks": [section("Your licenses")]}
    published = client.views_publish(user_id="U2", view=home)["view"]
    again = client.views_publish(user_id="U2", view=home, hash=published["hash"])["view"]
    assert again["id"] == published["id"]
    stored = sim.home("U2")
    assert stored is not None and stored.type == "home" and "Your licenses" in stored.all_text
    assert sim.home("U1") is None


def test_views_push_without_open_modal(sim: SlackSim, client: WebClient) -> None:
    error = api_error(lambda: client.views_push(trigger_id=sim.new_trigger_id("U2"), view=modal()))
    assert error.response["error"] == "not_found"


# -- response_url --


def test_response_url_five_uses_then_refused(sim: SlackSim) -> None:
    url = sim.new_response_url(user="U1", channel="C1", kind="commands")
    hook = WebhookClient(url)
    for n in range(5):
        assert hook.send(text=f"reply {n}").status_code == 200
    refused = hook.send(text="sixth")
    assert (refused.status_code, refused.body) == (404, "used_url")
    replies = sim.messages_visible_to("U1", "C1")
    assert [m.text for m in replies] == [f"reply {n}" for n in range(5)]
    assert all(m.ephemeral_to == "U1" and m.via == "response_url" for m in replies)
    assert sim.messages_visible_to("U2", "C1") == []
    assert [c.status for c in sim.calls_to("response_url")] == [200] * 5 + [404]


def test_response_url_expires_after_thirty_minutes(sim: SlackSim, clock: Clock) -> None:
    url = sim.new_response_url(user="U1", channel="C1")
    clock.t += 29 * 60
    assert WebhookClient(url).send(text="in time").status_code == 200
    clock.t += 2 * 60
    late = WebhookClient(url).send(text="late")
    assert (late.status_code, late.body) == (404, "expired_url")


def test_response_url_replace_delete_and_in_channel(sim: SlackSim, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C1", text="approve?", blocks=[section("Approve?")])
    url = sim.new_response_url(user="U1", channel="C1", kind="actions", source_ts=posted["ts"])
    hook = WebhookClient(url)
    assert hook.send(text="done", replace_original=True).status_code == 200
    message = sim.find_message("C1", posted["ts"])
    assert message is not None and message.text == "done" and message.blocks == []
    assert message.history[0]["text"] == "approve?"

    assert hook.send(text="everyone", response_type="in_channel").status_code == 200
    assert sim.messages_visible_to("U2", "C1")[-1].text == "everyone"
    assert hook.send(delete_original=True).status_code == 200
    assert sim.find_message("C1", posted["ts"]).deleted  # type: ignore[union-attr]

    bad = WebhookClient(sim.new_response_url(user="U1", channel="C1")).send(
        text="t", blocks=[section("x" * 3001)]
    )
    assert (bad.status_code, bad.body) == (400, "invalid_blocks")


# -- faults and limits --


def test_fault_injection_429_then_recovers(sim: SlackSim, client: WebClient) -> None:
    sim.fail_next("chat.postMessage", retry_after=7)
    error = api_error(lambda: client.chat_postMessage(channel="C1", text="x"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel="C1", text="x")["ok"]

    sim.fail_next("users.info", status=503, times=2)
    for _ in range(2):
        failed = api_error(lambda: client.users_info(user="U1"))
        assert failed.response.status_code == 503
        assert failed.response["error"] == "internal_error"
    assert client.users_info(user="U1")["ok"]
    assert [c.status for c in sim.calls_to("users.info")] == [503, 503, 200]


def test_per_channel_rate_limit(sim: SlackSim, client: WebClient, clock: Clock) -> None:
    sim.rate_limit_per_channel_per_second = 1
    assert client.chat_postMessage(channel="C1", text="1")["ok"]
    assert client.chat_postMessage(channel="C2", text="other channel")["ok"]
    limited = api_error(lambda: client.chat_postMessage(channel="C1", text="2"))
    assert limited.response.status_code == 429
    assert int(limited.response.headers["Retry-After"]) >= 1
    clock.t += 1.0
    assert client.chat_postMessage(channel="C1", text="3")["ok"]


# -- users --


def test_users_info_and_lookup(sim: SlackSim, client: WebClient) -> None:
    user = client.users_info(user="U1")["user"]
    assert user["id"] == "U1" and user["name"] == "alice" and user["deleted"] is False
    assert user["profile"]["email"] == "alice@example.com"
    assert client.users_info(user="U3")["user"]["deleted"] is True
    assert api_error(lambda: client.users_info(user="U404")).response["error"] == "user_not_found"
    found = client.users_lookupByEmail(email="bob@example.com")["user"]
    assert found["id"] == "U2"
    missing = api_error(lambda: client.users_lookupByEmail(email="nobody@example.com"))
    assert missing.response["error"] == "users_not_found"
    sim.add_usergroup("S1", ["U1", "U2"])
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]


# -- inspection helpers --


def test_wait_for_returns_value_or_times_out_with_context(sim: SlackSim, client: WebClient) -> None:
    timer = threading.Timer(0.05, lambda: client.chat_postMessage(channel="C1", text="late"))
    timer.start()
    found = sim.wait_for(lambda: next(iter(sim.messages_in("C1")), None), timeout=2)
    timer.join()
    assert found.text == "late"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"nothing.*chat.postMessage -> 200 ok"):
        sim.wait_for(lambda: None, timeout=0.05, what="nothing")
    assert time.monotonic() - started < 1


def test_reset_keeps_directory_and_state_endpoint(sim: SlackSim, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="x")
    state = httpx.get(f"{sim.base_url}/_sim/state").json()
    assert state["messages"][0]["text"] == "x"
    sim.reset()
    assert sim.messages == [] and sim.calls == [] and sim.views == []
    assert client.users_info(user="U1")["ok"]


def test_version_grows_with_every_change_and_not_with_reads(
    sim: SlackSim, client: WebClient
) -> None:
    start = sim.version
    posted = client.chat_postMessage(channel="C1", text="x")
    after_post = sim.version
    assert after_post > start
    sim.messages_in("C1"), sim.find_message("C1", posted["ts"]), sim.views, sim.files
    sim.channels_of("U1"), sim.home("U1"), sim.open_modal("U1")
    assert sim.version == after_post  # reading changes nothing
    client.chat_update(channel="C1", ts=posted["ts"], text="y")
    assert sim.version > after_post
    before = sim.version
    sim.add_user("U9", name="new")
    assert sim.version > before
    before = sim.version
    client.views_open(
        trigger_id=sim.new_trigger_id("U1"),
        view={"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": []},
    )
    view = sim.open_modal("U1")
    assert view is not None and sim.version > before
    before = sim.version
    sim.dismiss_view("U1", view.id)
    assert sim.version > before


def test_channels_of_lists_the_channels_a_user_is_in(sim: SlackSim) -> None:
    sim.add_channel("C2", name="zeta", members=["U1", "U2"])
    sim.add_channel("C3", name="alpha", members=["U1"])
    sim.add_channel("C4", name="open-to-all")  # no member list: not "joined" by anyone
    assert sim.channels_of("U1") == [("C3", "alpha"), ("C2", "zeta")]
    assert sim.channels_of("U2") == [("C2", "zeta")]
    assert sim.channels_of("U3") == []
