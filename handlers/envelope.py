"""The shape of a request body, checked before Bolt reads it (Bolt crashes on some shapes)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

# Fields Bolt reads as "an ID, or an object with an id": it runs `"id" in value` on them.
_REFS = ("team", "user", "channel", "enterprise")
_NESTED = ("message", "previous_message", "item", "assistant_thread")


def parse(raw: bytes, content_type: str | None) -> dict[str, Any] | str:
    """The body as Bolt will see it, or a one-line reason it cannot be one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    if not text:
        return {}
    try:
        if (content_type or "").split(";")[0] == "application/json" or text.startswith("{"):
            body: Any = json.loads(text)
        else:
            form = dict(parse_qsl(text, keep_blank_values=True))
            payload = form.get("payload")
            # A slash command that merely says "payload" is still a form (see endpoint.py).
            body = json.loads(payload) if payload is not None else form
    except ValueError:
        return "not JSON"
    return body if isinstance(body, dict) else "not an object"


def _ref_ok(value: Any) -> bool:
    return value is None or isinstance(value, (str, dict))


def _refs_ok(obj: dict[str, Any]) -> bool:
    if not all(_ref_ok(obj.get(k)) for k in _REFS):
        return False
    return all(_refs_ok(obj[k]) for k in _NESTED if isinstance(obj.get(k), dict))


def _list_of_objects(value: Any, *, at_most: int | None = None) -> bool:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return False
    return at_most is None or len(value) <= at_most


def problem(body: dict[str, Any]) -> str | None:
    """Why Bolt could not take this body, or None when it can."""
    if not _refs_ok(body):
        return "team/user/channel/enterprise must be an ID or an object"
    if body.get("authorizations") is not None and not _list_of_objects(body["authorizations"]):
        return "authorizations must be a list of objects"
    if "response_urls" in body and not _list_of_objects(body["response_urls"], at_most=1):
        return "response_urls must be a list of at most one object"
    if "event" in body:
        event = body["event"]
        if not isinstance(event, dict) or not _refs_ok(event):
            return "event must be an object"
    if "view" in body:
        view = body["view"]
        if not isinstance(view, dict) or ("callback_id" in view and "type" not in view):
            return "view must be an object with a type"
    if body.get("type") in ("block_actions", "interactive_message") and "actions" in body:
        actions = body["actions"]
        if not (isinstance(actions, list) and actions and isinstance(actions[0], dict)):
            return "actions must be a non-empty list of objects"
    return None
