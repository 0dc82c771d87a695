"""Events API listeners."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from slack_bolt import App

from bot import home, offboarding
from bot.directory import looks_like_user_id
from bot.runtime import Runtime

# Slack's event IDs look like "Ev0PV52K25"; the processed_event column holds 64 characters.
_EVENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _event_key(event_id: object) -> str | None:
    """The event ID as stored for de-duplication; other text is hashed so it fits the column."""
    if not isinstance(event_id, str) or not event_id:
        return None
    if _EVENT_ID.fullmatch(event_id):
        return event_id
    return hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()


def handle_event_app_home_opened(event: dict[str, Any], body: dict[str, Any], rt: Runtime) -> None:
    user = event.get("user")
    if event.get("tab", "home") == "home" and isinstance(user, str) and looks_like_user_id(user):
        # Retries (X-Slack-Retry-Num) and duplicates carry the same event_id: handled once.
        home.refresh_home(rt, user, event_id=_event_key(body.get("event_id")))


def handle_event_user_change(event: dict[str, Any], rt: Runtime) -> None:
    """A deactivated (or deleted) account gives back its seats; open requests are cancelled."""
    user = event.get("user")
    if not isinstance(user, dict) or user.get("deleted") is not True:
        return
    user_id = user.get("id")
    if isinstance(user_id, str) and looks_like_user_id(user_id):
        # Repeats and retries are harmless: a second offboarding finds nothing left to do.
        offboarding.offboard(rt, user_id)


def register(app: App, rt: Runtime) -> None:
    app.event("app_home_opened")(lambda event, body: handle_event_app_home_opened(event, body, rt))
    app.event("user_change")(lambda event: handle_event_user_change(event, rt))
