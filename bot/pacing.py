"""Slack's pace: one message per second per channel, and Retry-After pauses after a 429.

Slack allows about one ``chat.postMessage`` per second to the same channel (bursts are
tolerated briefly, then answered with 429) and asks, with ``Retry-After``, to be left alone
after a 429. The outbox dispatcher delivers rows one after another, so without a pace a burst
to one channel (IT's) would run straight into the limit and burn the rows' attempts.

The pacer says "not now, at T" (``DeliveryDeferred``) instead of failing: the dispatcher moves
the row's next attempt to T without counting an attempt, and other channels keep flowing. It is
in-memory and per process; with several processes, Slack's own 429s (which pause every process
that receives one) cover what one process cannot see of the others.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.notifications import DeliveryDeferred

PER_CHANNEL = timedelta(seconds=1)
# Forgetting channels whose slot has passed keeps the map small after a large fan-out.
_PRUNE_ABOVE = 1024


class Pacer:
    def __init__(self, clock: Clock, *, interval: timedelta | None = PER_CHANNEL) -> None:
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._next_free: dict[str, datetime] = {}
        self._paused_until: datetime | None = None

    def check(self) -> None:
        """Raise DeliveryDeferred while a Retry-After pause lasts."""
        now = self._clock.now()
        with self._lock:
            self._check_paused(now)

    def reserve(self, *channels: str) -> None:
        """Take a slot now in every channel (all or none), or raise DeliveryDeferred with the
        time the busiest of them is free. A user ID stands for that user's DM channel."""
        now = self._clock.now()
        with self._lock:
            self._check_paused(now)
            if not self._interval:
                return  # pacing off (tests whose frozen clock would hold a second message)
            busy = [self._next_free[c] for c in channels if self._next_free.get(c, now) > now]
            if busy:
                raise DeliveryDeferred(max(busy))
            if len(self._next_free) > _PRUNE_ABOVE:
                self._next_free = {c: t for c, t in self._next_free.items() if t > now}
            for channel in channels:
                self._next_free[channel] = now + self._interval

    def pause(self, seconds: float) -> datetime:
        """Slack answered 429 with ``Retry-After: seconds``: no Slack call until then.
        Returns when the pause ends (a longer pause already running is kept)."""
        until = self._clock.now() + timedelta(seconds=max(seconds, 1.0))
        with self._lock:
            if self._paused_until is None or until > self._paused_until:
                self._paused_until = until
            return self._paused_until

    def _check_paused(self, now: datetime) -> None:
        if self._paused_until is not None:
            if now < self._paused_until:
                raise DeliveryDeferred(self._paused_until, reason="ratelimited")
            self._paused_until = None
