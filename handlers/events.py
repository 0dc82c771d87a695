"""Events API listeners."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot import home
from bot.runtime import Runtime


def handle_event_app_home_opened(event: dict[str, Any], body: dict[str, Any], rt: Runtime) -> None:
    if event.get("tab", "home") == "home" and isinstance(event.get("user"), str):
        # Retries (X-Slack-Retry-Num) and duplicates carry the same event_id: handled once.
        home.refresh_home(rt, event["user"], event_id=str(body.get("event_id") or "") or None)


def register(app: App, rt: Runtime) -> None:
    app.event("app_home_opened")(lambda event, body: handle_event_app_home_opened(event, body, rt))
