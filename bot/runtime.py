"""What every service needs, built once in the composition root and passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.clock import Clock, SystemClock
from bot.errors import ConfigError
from bot.settings import Settings
from storage.db import Database
from storage.vault import Vault


def _nothing() -> None:
    return None


@dataclass
class Runtime:
    db: Database
    vault: Vault
    clock: Clock
    admins: frozenset[str] = frozenset()
    it_channel: str | None = None
    reveal_seconds: int = 300
    # Called after a transaction that queued notifications, so the dispatcher sends them now.
    wake_dispatcher: Callable[[], None] = field(default=_nothing)


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    """Open the database (migrating it to the newest schema) and the key vault."""
    # Keys first: a bad key must not leave a database connection behind.
    vault = Vault(settings.encryption_keys())
    db = Database(settings.database_url)
    try:
        db.upgrade()
    except Exception as exc:  # any driver error: the message must say which setting to check
        db.dispose()
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(
            f"Cannot open the database at DATABASE_URL ({type(exc).__name__}: {cause})."
        ) from None
    return Runtime(
        db=db,
        vault=vault,
        clock=clock or SystemClock(),
        admins=settings.admins,
        it_channel=settings.licensebot_it_channel,
        reveal_seconds=settings.licensebot_reveal_seconds,
    )
