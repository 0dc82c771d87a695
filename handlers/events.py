"""Events API listeners."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot import home
from bot.runtime import Runtime


def handle_event_app_home_opened(event: dict[str, Any], rt: Runtime) -> None:
    if event.get("tab", "home") == "home":
        home.refresh_home(rt, event["user"])


def register(app: App, rt: Runtime) -> None:
    app.event("app_home_opened")(lambda event: handle_event_app_home_opened(event, rt))
