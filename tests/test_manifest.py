"""manifest.yml is a valid Slack app manifest and agrees with the IDs the handlers listen for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from handlers import ids

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "manifest.yml"
# shared/ sits beside the repository, in the workspace and in CI's fresh clone alike.
SCHEMA = REPO.parent / "shared" / "slack-schemas" / "manifest.schema.1.0.0.json"

REQUIRED_SCOPES = {"commands", "chat:write"}
# Every scope the bot may ask for, with the calls that need it; anything else is a review.
ALLOWED_SCOPES = {
    "commands",  # /license, the global shortcut
    "chat:write",  # chat.postMessage, chat.postEphemeral, chat.update
    "users:read",  # the user_change event
    "files:write",  # files_upload_v2: the weekly digest's CSV and chart
}
# The scope each subscribed event needs (None: none).
EVENT_SCOPES: dict[str, str | None] = {"app_home_opened": None, "user_change": "users:read"}
# The scope each Web API method the code calls needs (None: no scope).
METHOD_SCOPES: dict[str, str | None] = {
    "chat_postMessage": "chat:write",
    "chat_postEphemeral": "chat:write",
    "chat_update": "chat:write",
    "views_open": None,
    "views_push": None,
    "views_update": None,
    "views_publish": None,
    # getUploadURLExternal + completeUploadExternal; since slack_sdk 3.23 no files.info call,
    # so no files:read.
    "files_upload_v2": "files:write",
}
EVENTS_URL = "https://licensebot.example.com/slack/events"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "manifest.yml must be a mapping"
    return loaded


def test_manifest_matches_slacks_schema(manifest: dict[str, Any]) -> None:
    # A missing schema must fail, not skip: a skipped check looks green in CI.
    if not SCHEMA.is_file():
        pytest.fail(
            f"Slack's manifest schema is missing at {SCHEMA}. Check out the shared/ folder "
            "beside the repository (it holds slack-schemas/manifest.schema.1.0.0.json)."
        )
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    errors = sorted(Draft7Validator(schema).iter_errors(manifest), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors
    )


def test_schema_gaps_checked_here(manifest: dict[str, Any]) -> None:
    # The schema spells its colour pattern with a non-standard "regex" keyword, so it is ignored.
    colour = manifest["display_information"]["background_color"]
    assert re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", colour), colour
    assert manifest["_metadata"] == {"major_version": 1, "minor_version": 1}


def test_command_and_shortcut_match_the_handlers(manifest: dict[str, Any]) -> None:
    features = manifest["features"]
    commands = features["slash_commands"]
    assert [c["command"] for c in commands] == [ids.COMMAND]
    command = commands[0]
    # Mentions must arrive as <@U123|name> so "for @user" yields a user ID.
    assert command["should_escape"] is True
    assert command["url"] == EVENTS_URL
    assert command["usage_hint"] == "request PRODUCT [why] | mine | catalog | help"
    shortcuts = features["shortcuts"]
    assert [(s["type"], s["callback_id"]) for s in shortcuts] == [("global", ids.SHORTCUT_REQUEST)]
    assert shortcuts[0]["name"] == "Request a license"


def test_events_and_interactivity_reach_the_app(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == list(ids.EVENTS)
    assert settings["event_subscriptions"]["request_url"] == EVENTS_URL
    assert settings["interactivity"] == {"is_enabled": True, "request_url": EVENTS_URL}
    assert settings["socket_mode_enabled"] is False
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_home_and_bot_user(manifest: dict[str, Any]) -> None:
    features = manifest["features"]
    assert features["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": True,
        "messages_tab_read_only_enabled": True,
    }
    assert features["bot_user"] == {"display_name": "licensebot", "always_online": True}


def test_scopes_are_the_smallest_set(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "the bot must not ask for user scopes"
    bot = scopes["bot"]
    assert len(bot) == len(set(bot)), "a scope is listed twice"
    assert REQUIRED_SCOPES - set(bot) == set(), "a required scope is missing"
    assert set(bot) <= ALLOWED_SCOPES, f"scopes outside the allow-list: {set(bot) - ALLOWED_SCOPES}"


def web_api_calls() -> set[str]:
    """Every slack_sdk WebClient method the product's code calls."""
    pattern = re.compile(r"\.((?:chat|views|conversations|users|usergroups|im|files)_\w+)\(")
    found: set[str] = set()
    for folder in ("bot", "handlers"):
        for path in (REPO / folder).rglob("*.py"):
            if "slacksim" in path.parts:
                continue
            found |= set(pattern.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_scope_is_used_and_every_call_is_covered(manifest: dict[str, Any]) -> None:
    calls = web_api_calls()
    assert "chat_postMessage" in calls, "the scan found no Web API calls"
    unknown = calls - set(METHOD_SCOPES)
    assert not unknown, f"add these methods and their scopes to METHOD_SCOPES: {unknown}"
    needed = {"commands"} | {METHOD_SCOPES[c] for c in calls if METHOD_SCOPES[c]}
    needed |= {
        EVENT_SCOPES[e]
        for e in manifest["settings"]["event_subscriptions"]["bot_events"]
        if EVENT_SCOPES[e]
    }
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed


def test_every_subscribed_event_has_a_listener(manifest: dict[str, Any]) -> None:
    # Slack retries events that get 404 (SLACK.md §11.2): each subscription needs a listener.
    source = (REPO / "handlers" / "events.py").read_text(encoding="utf-8")
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        assert f'app.event("{event}")' in source, event
