"""The demo's JSON API over real HTTP: a running demo (real bot, local Slack), driven as the
page drives it, with buttons found in the blocks the bot actually posted."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import catalog
from bot.demo import seed
from bot.demo.runner import DemoRunner
from bot.demo.web import MAX_BODY
from bot.slacksim.blockkit import iter_elements

EMMA, MARCUS, INES, AIKO = seed.EMPLOYEE, seed.MANAGER, seed.IT_ADMIN, seed.AUDITOR
DM = {user: f"D{user}" for user in (EMMA, MARCUS, INES, AIKO)}
JSONDict = dict[str, Any]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRunner]:
    with DemoRunner(tmp_path / "demo", port=0) as runner:
        yield runner


@pytest.fixture
def api(demo: DemoRunner) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        yield client


def state(api: httpx.Client, user: str) -> JSONDict:
    response = api.get("/demo/api/state", params={"user": user})
    assert response.status_code == 200, response.text
    body: JSONDict = response.json()
    assert body["ok"] is True
    return body


def wait_for(
    api: httpx.Client, user: str, find: Callable[[JSONDict], Any], what: str, timeout: float = 5
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        seen = state(api, user)
        found = find(seen)
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}; {user} sees {seen}")
        time.sleep(0.05)


def button_in(
    seen: JSONDict, label: str, conversation: str | None = None
) -> tuple[JSONDict, str, JSONDict] | None:
    """The newest message showing a button ``label``: (message, block_id, button)."""
    found = None
    for channel, messages in seen["messages"].items():
        if conversation and channel != conversation:
            continue
        for message in messages:
            for block_id, element in iter_elements(message["blocks"]):
                if element.get("type") == "button" and element["text"]["text"] == label:
                    found = (message, str(block_id), element)
    return found


def click(api: httpx.Client, user: str, found: tuple[JSONDict, str, JSONDict]) -> httpx.Response:
    message, block_id, button = found
    return api.post(
        "/demo/api/action",
        json={
            "user": user,
            "source": {"type": "message", "channel": message["channel"], "ts": message["ts"]},
            "block_id": block_id,
            "action_id": button["action_id"],
            "value": button.get("value"),
        },
    )


def texts(seen: JSONDict, conversation: str) -> str:
    return json.dumps(seen["messages"].get(conversation, []))


def refused(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


def test_personas_and_what_a_new_persona_sees(api: httpx.Client) -> None:
    body = api.get("/demo/api/personas").json()
    assert [(p["key"], p["user_id"], p["name"]) for p in body["personas"]] == [
        ("employee", EMMA, "Emma Novak"),
        ("manager", MARCUS, "Marcus Lee"),
        ("it", INES, "Ines Ortiz"),
        ("auditor", AIKO, "Aiko Tanaka"),
    ]
    assert "local simulation of Slack" in body["notice"]
    assert body["users"]["U0DEMOIT2"] == "Ivan Petrov"

    emma = state(api, EMMA)
    assert [(c["id"], c["kind"]) for c in emma["conversations"]] == [
        (DM[EMMA], "dm"),
        ("home", "home"),
    ]
    ines = state(api, INES)
    assert [c["id"] for c in ines["conversations"]] == [DM[INES], seed.IT_CHANNEL, "home"]
    assert [c["id"] for c in state(api, AIKO)["conversations"]] == [
        DM[AIKO],
        seed.IT_CHANNEL,
        "home",
    ]
    assert emma["home"] is None and emma["modal"] is None
    assert datetime.fromisoformat(emma["now"]).tzinfo is not None

    # Opening App Home is an app_home_opened event; the bot publishes the Home view.
    assert api.post("/demo/api/home", json={"user": EMMA}).json() == {"ok": True}
    home = wait_for(api, EMMA, lambda s: s["home"], "Emma's App Home")
    assert home["type"] == "home" and home["blocks"]


def test_request_approve_approve_reveal_key_only_to_the_employee(api: httpx.Client) -> None:
    sent = api.post(
        "/demo/api/command",
        json={"user": EMMA, "channel": DM[EMMA], "text": "/license request intellij for Kotlin"},
    )
    assert sent.json() == {"ok": True}
    reply = wait_for(api, EMMA, lambda s: s["messages"][DM[EMMA]], "the bot's reply")
    assert "Request #1" in reply[-1]["text"] and reply[-1]["ephemeral"] is True
    assert reply[-1]["bot"] is True and reply[-1]["user"] is None

    # The manager's approval card, clicked through the buttons the bot rendered.
    card = wait_for(api, MARCUS, lambda s: button_in(s, "Approve", DM[MARCUS]), "Marcus's card")
    assert card[2]["style"] == "primary" and card[2]["value"] == "1:0"
    assert click(api, MARCUS, card).json() == {"ok": True}
    # Step 2 goes to the IT team; Ines approves.
    it_card = wait_for(api, INES, lambda s: button_in(s, "Approve", DM[INES]), "Ines's card")
    assert "Step 2 of 2" in json.dumps(it_card[0]["blocks"])
    # Marcus's card was updated in place: decided, no buttons left.
    decided = wait_for(
        api,
        MARCUS,
        lambda s: [m for m in s["messages"][DM[MARCUS]] if m["edited"]],
        "Marcus's card updated",
    )
    assert button_in({"messages": {DM[MARCUS]: decided}}, "Approve") is None
    assert click(api, INES, it_card).json() == {"ok": True}

    reveal = wait_for(api, EMMA, lambda s: button_in(s, "Reveal key", DM[EMMA]), "Reveal key")
    before = json.dumps(state(api, EMMA))
    assert not any(key in before for key in seed.INTELLIJ_KEYS)  # not in the DM itself
    assert click(api, EMMA, reveal).json() == {"ok": True}
    modal = wait_for(api, EMMA, lambda s: s["modal"], "the reveal modal")
    shown = [key for key in seed.INTELLIJ_KEYS if key in json.dumps(modal)]
    assert len(shown) == 1, modal
    key = shown[0]
    assert modal["type"] == "modal" and modal["title"]

    # Nobody else's whole state holds the key: not the manager, not IT, not the auditor.
    for other in (MARCUS, INES, AIKO):
        assert key not in json.dumps(state(api, other)), other

    # Closing the modal: it is gone from Emma's state too.
    assert api.post("/demo/api/close", json={"user": EMMA, "view_id": modal["id"]}).json() == {
        "ok": True
    }
    assert state(api, EMMA)["modal"] is None


def test_a_modal_submission_with_a_validation_error_returns_the_errors(
    api: httpx.Client,
) -> None:
    api.post("/demo/api/command", json={"user": EMMA, "text": "/license request figma"})
    card = wait_for(api, MARCUS, lambda s: button_in(s, "Deny", DM[MARCUS]), "Marcus's card")
    assert click(api, MARCUS, card).json() == {"ok": True}
    modal = wait_for(api, MARCUS, lambda s: s["modal"], "the deny modal")
    assert modal["submit"] and modal["errors"] == {}
    reason = next(b for b in modal["blocks"] if b["type"] == "input")
    block_id, action_id = reason["block_id"], reason["element"]["action_id"]

    # Blank to the bot (only spaces): it answers response_action=errors; the modal stays.
    answer = api.post(
        "/demo/api/submit",
        json={"user": MARCUS, "view_id": modal["id"], "values": {block_id: {action_id: "  "}}},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ok": True, "errors": {block_id: "Say why, for the requester."}}
    still = state(api, MARCUS)["modal"]
    assert still["id"] == modal["id"] and still["errors"] == {
        block_id: "Say why, for the requester."
    }

    # Empty is refused before Slack would send it (a required input), with a sentence.
    assert "required" in refused(
        api.post(
            "/demo/api/submit",
            json={"user": MARCUS, "view_id": modal["id"], "values": {block_id: {action_id: ""}}},
        ),
        400,
    )
    done = api.post(
        "/demo/api/submit",
        json={
            "user": MARCUS,
            "view_id": modal["id"],
            "values": {block_id: {action_id: "Figma seats are for the design team."}},
        },
    )
    assert done.json() == {"ok": True, "errors": {}}
    assert state(api, MARCUS)["modal"] is None
    wait_for(
        api,
        EMMA,
        lambda s: "Figma seats are for the design team." in texts(s, DM[EMMA]),
        "Emma told why",
    )


def test_controls_reclaim_digest_and_advance(api: httpx.Client, demo: DemoRunner) -> None:
    done = api.post("/demo/api/control", json={"action": "reclaim"}).json()
    assert done["ok"] is True and "Reclaim ran" in done["message"]
    # Emma's Zoom seat is idle: the nudge arrives in her DM with Keep / Release.
    nudge = wait_for(api, EMMA, lambda s: button_in(s, "Release", DM[EMMA]), "Emma's nudge")
    assert "Zoom" in json.dumps(nudge[0]["blocks"])
    again = api.post("/demo/api/control", json={"action": "reclaim"}).json()
    assert "already ran" in again["message"]

    done = api.post("/demo/api/control", json={"action": "digest"}).json()
    assert done["ok"] is True and "Digest" in done["message"]

    def digest_files(s: JSONDict) -> list[JSONDict]:
        return [f for m in s["messages"][seed.IT_CHANNEL] for f in m["files"]]

    files = wait_for(api, INES, digest_files, "the digest's files in the IT channel")
    channel = texts(state(api, INES), seed.IT_CHANNEL)
    assert "idle" in channel.lower()
    png = next(f for f in files if f["mimetype"] == "image/png")
    got = api.get(png["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content.startswith(b"\x89PNG")
    assert got.headers["content-disposition"].startswith("inline;")  # shown in the page
    csv_file = next(f for f in files if f["name"].endswith(".csv"))
    csv_got = api.get(csv_file["url"])
    assert csv_got.text.startswith("product_id,")
    assert csv_got.headers["content-disposition"].startswith("attachment;")  # downloaded
    # The channel is for its members: Emma does not see it.
    assert seed.IT_CHANNEL not in state(api, EMMA)["messages"]

    seen = state(api, EMMA)
    before = datetime.fromisoformat(seen["now"])
    moved = api.post("/demo/api/control", json={"action": "advance", "days": 3}).json()
    assert moved["ok"] is True and "3 days" in moved["message"]
    seen_after = state(api, EMMA)
    after = datetime.fromisoformat(seen_after["now"])
    # The page re-reads what changed by the version: moving the clock is a change.
    assert seen_after["version"] > seen["version"]
    assert timedelta(days=3) <= after - before < timedelta(days=3, seconds=30)
    assert demo.runtime.clock.now() - after < timedelta(seconds=30)


def test_bad_input_is_refused_with_a_sentence_and_changes_nothing(
    api: httpx.Client, demo: DemoRunner
) -> None:
    api.post("/demo/api/command", json={"user": EMMA, "text": "/license request figma"})
    wait_for(api, MARCUS, lambda s: button_in(s, "Approve", DM[MARCUS]), "Marcus's card")
    time.sleep(0.3)  # let the outbox settle: nothing else is on its way
    before = {user: state(api, user) for user in (EMMA, MARCUS)}
    offset = demo.runtime.clock.now() - datetime.fromisoformat(before[EMMA]["now"])

    refused(api.get("/demo/api/state", params={"user": "U0NOBODY1"}), 404)
    refused(api.get("/demo/api/state"), 400)
    refused(api.post("/demo/api/command", json={"user": "U0NOBODY1", "text": "/license"}), 404)
    refused(api.post("/demo/api/command", json={"user": EMMA}), 400)
    assert "/license" in refused(
        api.post("/demo/api/command", json={"user": EMMA, "text": "hello there"}), 400
    )
    refused(api.post("/demo/api/command", json={"user": EMMA, "text": "/licenses help"}), 400)
    refused(
        api.post(
            "/demo/api/command",
            json={"user": EMMA, "channel": seed.IT_CHANNEL, "text": "/license help"},
        ),
        404,
    )
    refused(api.post("/demo/api/command", content=b"user=U0DEMOEMP&text=/license"), 400)
    refused(
        api.post(
            "/demo/api/command", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
    )
    refused(api.post("/demo/api/command", json=["not", "an", "object"]), 400)
    nested = b"[" * 30_000 + b"]" * 30_000  # under the size limit, too deep for the parser
    assert len(nested) < MAX_BODY
    refused(
        api.post("/demo/api/command", content=nested, headers={"content-type": "application/json"}),
        400,
    )
    for days in (0, 10000, -1, "3", 2.5, True, None):
        refused(api.post("/demo/api/control", json={"action": "advance", "days": days}), 400)
    refused(api.post("/demo/api/control", json={"action": "shutdown"}), 400)
    refused(api.post("/demo/api/submit", json={"user": MARCUS, "view_id": "V99999999"}), 404)
    refused(api.post("/demo/api/close", json={"user": MARCUS, "view_id": "V99999999"}), 404)
    refused(api.post("/demo/api/submit", json={"user": MARCUS}), 400)

    card = button_in(before[MARCUS], "Approve", DM[MARCUS])
    assert card is not None
    message, block_id, button = card
    source = {"type": "message", "channel": message["channel"], "ts": message["ts"]}
    base = {"user": MARCUS, "source": source, "block_id": block_id}
    refused(api.post("/demo/api/action", json={**base, "action_id": "no_such_button"}), 404)
    refused(api.post("/demo/api/action", json={**base, "source": {"type": "nope"}}), 400)
    refused(api.post("/demo/api/action", json={**base, "action_id": button["action_id"],
                                                "value": "999:0"}), 400)  # fmt: skip
    # Someone else cannot press the manager's card: they cannot see his DM.
    refused(
        api.post("/demo/api/action", json={**base, "user": EMMA, "action_id": button["action_id"]}),
        404,
    )
    refused(api.get("/demo/api/nothing-here"), 404)
    assert api.post("/demo/api/state", json={}).status_code == 405

    after = {user: state(api, user) for user in (EMMA, MARCUS)}
    for user in (EMMA, MARCUS):
        assert after[user]["version"] == before[user]["version"]
        assert after[user]["messages"] == before[user]["messages"]
        assert after[user]["modal"] is None
    moved = demo.runtime.clock.now() - datetime.fromisoformat(after[EMMA]["now"])
    assert abs(moved - offset) < timedelta(seconds=5)  # the clock did not jump


def raw_get(url: str, target: str, host: str | None = None) -> tuple[int, bytes]:
    """A GET with the target sent exactly as written (HTTP clients would tidy the ``..``)."""
    address = httpx.URL(url)
    with socket.create_connection((address.host, address.port), timeout=5) as conn:
        host_header = host or f"{address.host}:{address.port}"
        conn.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_pages_static_files_and_paths_that_climb_out(api: httpx.Client, demo: DemoRunner) -> None:
    root = api.get("/")
    assert root.status_code == 302 and root.headers["location"] == "/demo"
    page = api.get("/demo")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert api.get("/healthz").json() == {"ok": True}  # the bot's own routes, unchanged

    for target in (
        "/demo/static/../../settings.py",
        "/demo/static/..%2f..%2fsettings.py",
        "/demo/static/%2e%2e/%2e%2e/runner.py",
        "/demo/static/../runner.py",
        "/demo/static/.hidden",
        "/demo/static/",
        "/demo/files/../../licensebot.db",
        "/demo/files/F0000000001",
    ):
        status, body = raw_get(demo.url, target)
        assert status == 404, (target, status, body[:200])
        assert b"import" not in body and b"SQLite" not in body
    assert api.get("/demo/static/index.html").status_code == 200
    # Another site's name for this address (DNS rebinding) is refused.
    status, _ = raw_get(demo.url, "/demo/api/personas", host="attacker.example:80")
    assert status == 400


def test_the_sample_company_and_a_restart_that_keeps_data_and_clock(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    with DemoRunner(data, port=0) as first:
        assert first.seeded is True
        products = {p.id: p for p in catalog.list_products(first.runtime)}
        assert sorted(products) == ["adobe-cc", "figma", "intellij", "sublime", "zoom"]
        assert products["figma"].seats_left == 1
        assert products["adobe-cc"].approval == ("manager", "it-team", AIKO)
        assert products["zoom"].approval == () and products["intellij"].delivery == "key"
        with httpx.Client(base_url=first.url) as api:
            api.post("/demo/api/control", json={"action": "advance", "days": 10})
            advanced = datetime.fromisoformat(state(api, EMMA)["now"])
    with DemoRunner(data, port=0) as second:
        assert second.seeded is False
        assert len(catalog.list_products(second.runtime)) == 5
        assert second.runtime.clock.now() >= advanced  # the clock goes on from where it was
