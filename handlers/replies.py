"""The single place where typed errors become what a person reads in Slack."""

from __future__ import annotations

import logging

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
