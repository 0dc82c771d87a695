"""What every service needs, built once in the composition root and passed in."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from bot.clock import Clock, SystemClock
from bot.connectors import ConnectorConfig, configured
from bot.errors import ConfigError
from bot.rotation import check_stored_keys
from bot.settings import Settings
from storage.audit import AuditSigner
from storage.db import Database
from storage.vault import Vault


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Policy:
    """The tunable rules of the scheduled side (settings; tests set them directly)."""

    timezone: str = "UTC"
    digest_cron: str = "0 9 * * mon"
    reminder_after: timedelta = timedelta(hours=24)
    escalate_after: timedelta = timedelta(hours=72)
    webhook_secret: str | None = None
    # Pull connectors the `usage-pull` job runs (LICENSEBOT_OKTA_*); empty: the job does nothing.
    connectors: tuple[ConnectorConfig, ...] = ()


@dataclass
class Runtime:
    db: Database
    vault: Vault
    clock: Clock
    audit_keys: AuditSigner  # signs every audit entry (LICENSEBOT_AUDIT_KEYS)
    admins: frozenset[str] = frozenset()
    it_channel: str | None = None
    reveal_seconds: int = 300
    # Called after a transaction that queued notifications, so the dispatcher sends them now.
    wake_dispatcher: Callable[[], None] = field(default=_nothing)
    # How services wait (a connector's backoff, a rate limit's reset): tests move their clock.
    sleep: Callable[[float], None] = field(default=time.sleep)
    policy: Policy = field(default_factory=Policy)


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    """Open the database (migrating it to the newest schema) and the key vault.

    Refuses (ConfigError) when the encryption keys cannot decrypt a sample of the stored
    license keys: better not to start than to fail at every reveal.
    """
    # Keys first: a bad key must not leave a database connection behind.
    vault = Vault(settings.encryption_keys())
    audit_keys = AuditSigner(settings.audit_keys())
    db = open_database(settings)
    try:
        check_stored_keys(db, vault, source=_keys_source(settings))
    except BaseException:
        db.dispose()
        raise
    return Runtime(
        db=db,
        vault=vault,
        clock=clock or SystemClock(),
        audit_keys=audit_keys,
        admins=settings.admins,
        it_channel=settings.licensebot_it_channel,
        reveal_seconds=settings.licensebot_reveal_seconds,
        policy=Policy(
            timezone=settings.licensebot_timezone,
            digest_cron=settings.licensebot_digest_cron,
            reminder_after=timedelta(hours=settings.licensebot_reminder_hours),
            escalate_after=timedelta(hours=settings.licensebot_escalation_hours),
            webhook_secret=settings.webhook_secret,
            connectors=configured(settings),
        ),
    )


def _keys_source(settings: Settings) -> str:
    if settings.licensebot_encryption_keys is not None:
        return "LICENSEBOT_ENCRYPTION_KEYS"
    return (
        f"The encryption key file {settings.key_file()} (used because "
        "LICENSEBOT_ENCRYPTION_KEYS is not set)"
    )


def open_database(settings: Settings) -> Database:
    """The database at DATABASE_URL, migrated to the newest schema; no key vault needed."""
    db = Database(settings.database_url)
    try:
        db.upgrade()
    except Exception as exc:  # any driver error: the message must say which setting to check
        db.dispose()
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(
            f"Cannot open the database at DATABASE_URL ({type(exc).__name__}: {cause})."
        ) from None
    return db
