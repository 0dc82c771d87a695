"""Time comes from an injected clock so tests and the demo can move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to (tests, the demo's "advance clock")."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def utc(at: datetime) -> datetime:
    """A stored time as an aware UTC datetime: SQLite hands back naive ones, and every stored
    time is UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)
