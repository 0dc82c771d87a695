"""Time comes from an injected clock so tests and the demo can move it."""

from __future__ import annotations

import threading
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


class OffsetClock:
    """Real time plus an offset that only grows (``licensebot demo``'s "advance clock").

    Time keeps running, so pacing, retries and the reveal timer behave as in production,
    while ``advance`` moves the bot's notion of now forward for reclaim, expiry and digests.
    Thread-safe: request threads read it while the demo's controls advance it.
    """

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        if offset < timedelta(0):
            raise ValueError("the offset cannot be negative")
        self._offset = offset
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta:
        with self._lock:
            return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        # Backwards would reorder stored times (a seat "used" after now); never allowed.
        if delta <= timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += delta


def utc(at: datetime) -> datetime:
    """A stored time as an aware UTC datetime: SQLite hands back naive ones, and every stored
    time is UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)
