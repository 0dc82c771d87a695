"""One settings object, read once at start-up from the environment and ``.env``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError
from storage import audit
from storage.db import sqlite_path
from storage.vault import VaultKeyError, load_or_create_key_file, parse_keys

# A bearer token guards writes from the network: shorter ones are guessable.
API_TOKEN_MIN_LENGTH = 24


# ``licensebot serve --role``: "all" answers Slack, delivers the outbox and runs the scheduled
# jobs; "web" only answers Slack, leaving delivery and jobs to the "all" processes, so that a
# Monday rush of clicks does not share its processes' CPU with sending the notifications.
Role = Literal["all", "web"]
ROLES: tuple[Role, ...] = get_args(Role)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: str = "sqlite:///licensebot.db"
    licensebot_encryption_keys: SecretStr | None = None
    licensebot_audit_keys: SecretStr | None = None
    licensebot_it_channel: str | None = None
    licensebot_admins: str = ""
    licensebot_reveal_seconds: int = 300
    # Threads delivering the outbox to Slack (and webhooks) at once; 1 sends one at a time.
    licensebot_dispatch_workers: int = Field(default=4, ge=1, le=32)
    # `serve`'s role (``Role`` above); `serve --role` overrides it.
    licensebot_role: Role = "all"
    # Bearer token for POST /api/usage; unset means the API is off (it answers 404).
    licensebot_api_token: SecretStr | None = None
    # Schedules: crontab fields (minute hour day month day_of_week) in LICENSEBOT_TIMEZONE.
    licensebot_timezone: str = "UTC"
    licensebot_digest_cron: str = "0 9 * * mon"
    # Approval reminders: one reminder after this many hours, escalation to it_admin after that.
    licensebot_reminder_hours: float = 24
    licensebot_escalation_hours: float = 72
    # HMAC-SHA256 secret for provisioning webhooks (X-Licensebot-Signature).
    licensebot_webhook_secret: SecretStr | None = None
    # Okta System Log usage connector: on when both the org URL and an API token are set.
    licensebot_okta_url: str | None = None
    licensebot_okta_token: SecretStr | None = None
    # How far back the first pull reads (Okta keeps the System Log for 90 days).
    licensebot_okta_lookback_days: int = 30

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("licensebot_reveal_seconds")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1 second")
        return value

    @field_validator("licensebot_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone name (for example UTC or Europe/Berlin)"
            ) from None
        return value.strip()

    @field_validator("licensebot_digest_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value.strip())
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a crontab schedule ({exc}); write five fields: "
                "minute hour day month day_of_week, for example '0 9 * * mon'"
            ) from None
        return value.strip()

    @field_validator("licensebot_reminder_hours", "licensebot_escalation_hours")
    @classmethod
    def _hours(cls, value: float) -> float:
        if not 0 < value <= 24 * 365:
            raise ValueError("must be more than 0 and at most a year (8760 hours)")
        return value

    @field_validator("licensebot_api_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # set but empty: the API stays off
        if len(value.get_secret_value().strip()) < API_TOKEN_MIN_LENGTH:
            raise ValueError(
                f"must be at least {API_TOKEN_MIN_LENGTH} characters (make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return SecretStr(value.get_secret_value().strip())

    @field_validator("licensebot_okta_url")
    @classmethod
    def _okta_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        # The API token travels with every request: plain http only to this machine (tests).
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if (
            not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username
            or not (parts.scheme == "https" or (parts.scheme == "http" and local))
        ):
            raise ValueError(
                f"{value!r} is not an Okta org URL; write https://your-org.okta.com "
                "(no path, https only)"
            )
        return value

    @field_validator("licensebot_okta_lookback_days")
    @classmethod
    def _lookback(cls, value: int) -> int:
        if not 1 <= value <= 90:
            raise ValueError("must be 1 to 90 days (Okta keeps the System Log for 90 days)")
        return value

    @property
    def okta(self) -> tuple[str, str] | None:
        """The Okta org URL and API token, or None unless both are set."""
        token = self.licensebot_okta_token
        secret = token.get_secret_value().strip() if token is not None else ""
        return (self.licensebot_okta_url, secret) if self.licensebot_okta_url and secret else None

    @property
    def api_token(self) -> str | None:
        """The bearer token of POST /api/usage, or None when the API is off."""
        return self.licensebot_api_token.get_secret_value() if self.licensebot_api_token else None

    @property
    def webhook_secret(self) -> str | None:
        secret = self.licensebot_webhook_secret
        return secret.get_secret_value() if secret and secret.get_secret_value() else None

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.licensebot_admins.split(",") if u.strip())

    def require_slack(self) -> tuple[str, str]:
        """Token and signing secret, which ``serve`` cannot run without."""
        missing = [
            name
            for name, value in (
                ("SLACK_BOT_TOKEN", self.slack_bot_token),
                ("SLACK_SIGNING_SECRET", self.slack_signing_secret),
            )
            if value is None or not value.get_secret_value().strip()
        ]
        if missing:
            raise ConfigError(
                f"Set {' and '.join(missing)} (from your Slack app's settings) "
                "before `licensebot serve`."
            )
        assert self.slack_bot_token and self.slack_signing_secret
        return self.slack_bot_token.get_secret_value(), self.slack_signing_secret.get_secret_value()

    def key_file(self) -> Path:
        db_file = sqlite_path(self.database_url)
        base = db_file.resolve().parent if db_file else Path.cwd()
        return base / "licensebot.key"

    def audit_key_file(self) -> Path:
        return self.key_file().with_name("licensebot-audit.key")

    def audit_keys(self) -> list[str]:
        """The audit HMAC keys; without the setting, a key file beside the database (made once)."""
        if self.licensebot_audit_keys is not None:
            try:
                return audit.parse_keys(self.licensebot_audit_keys.get_secret_value())
            except audit.AuditKeyError as exc:
                raise ConfigError(f"LICENSEBOT_AUDIT_KEYS: {exc}.") from None
        path = self.audit_key_file()
        try:
            keys, created = audit.load_or_create_key_file(path)
        except audit.AuditKeyError as exc:
            raise ConfigError(
                f"{path}: {exc}; fix the file or set LICENSEBOT_AUDIT_KEYS."
            ) from None
        if created:
            print(
                f"licensebot: created audit key file {path} (mode 0600). Back it up: "
                "`licensebot audit verify` needs it to check the audit log.",
                file=sys.stderr,
            )
        return keys

    def encryption_keys(self) -> list[str]:
        """The Fernet keys; without the setting, a key file beside the database (made once)."""
        if self.licensebot_encryption_keys is not None:
            try:
                return parse_keys(self.licensebot_encryption_keys.get_secret_value())
            except VaultKeyError as exc:
                raise ConfigError(f"LICENSEBOT_ENCRYPTION_KEYS: {exc}.") from None
        path = self.key_file()
        try:
            keys, created = load_or_create_key_file(path)
        except VaultKeyError as exc:
            raise ConfigError(
                f"{path}: {exc}; fix the file or set LICENSEBOT_ENCRYPTION_KEYS."
            ) from None
        if created:
            print(
                f"licensebot: created encryption key file {path} (mode 0600). Back it up: "
                "without it the stored license keys cannot be read.",
                file=sys.stderr,
            )
        return keys


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "a setting"
        raise ConfigError(f"{name}: {first['msg']}.") from None
