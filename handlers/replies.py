"""The single place where typed errors become what a person reads in Slack."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import BoltResponse

from bot.errors import LicenseBotError, VaultError

log = logging.getLogger("licensebot.handlers")

UNEXPECTED = (
    "Something went wrong on our side and nothing was changed. Please try again; if it keeps "
    "happening, tell IT."
)


def message_for(error: LicenseBotError) -> str:
    if isinstance(error, VaultError):
        log.error("event=vault_error message=%r", error.message)
    return error.message


def handle_unexpected_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
    """A bug must not become a 500 that Slack retries: log it whole, tell the person plainly."""
    log.error(
        "event=listener_failed type=%s", body.get("type") or body.get("command"), exc_info=error
    )
    if body.get("command"):
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": UNEXPECTED})
    return BoltResponse(status=200, body="")
