"""The demo's controls: run a scheduled job now, or move the demo clock forward.

The jobs are the ones ``licensebot jobs run`` runs (``bot.jobs.JOBS``), on the demo clock: the
demo starts no scheduler, because its timers run on wall time and would not follow the clock.
The clock's offset is kept in the data folder, so a restarted demo goes on at the same date.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

from bot import digest, jobs, reclaim
from bot.clock import OffsetClock
from bot.errors import ConfigError, InputError
from bot.runtime import Runtime

MAX_DAYS = 365
CLOCK_FILE = "demo-clock.json"


def load_clock(data_dir: Path) -> OffsetClock:
    """The demo clock, as far ahead of real time as it was when the demo last stopped."""
    path = data_dir / CLOCK_FILE
    if not path.exists():
        return OffsetClock()
    try:
        seconds = json.loads(path.read_text(encoding="utf-8"))["offset_seconds"]
        offset = timedelta(seconds=float(seconds))
        return OffsetClock(offset)
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        raise ConfigError(
            f"{path} is not a demo clock file; delete it to start the clock at today's date."
        ) from None


def save_clock(data_dir: Path, clock: OffsetClock) -> None:
    path = data_dir / CLOCK_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"offset_seconds": clock.offset.total_seconds()}), encoding="utf-8")
    tmp.replace(path)  # atomic: a crash never leaves half a file


class Controls:
    """Runs one control at a time (a second click waits for the first)."""

    def __init__(self, rt: Runtime, clock: OffsetClock, data_dir: Path) -> None:
        self._rt = rt
        self._clock = clock
        self._data_dir = data_dir
        self._lock = threading.Lock()

    def reclaim(self) -> str:
        with self._lock:
            now = self._clock.now()
            day = now.date().isoformat()
            if not jobs.JOBS[reclaim.JOB_ID].run(self._rt, now):
                return (
                    f"Reclaim already ran for {day} (it runs once a day); advance the clock a "
                    "day to run it again."
                )
            return (
                f"Reclaim ran for {day}: holders of idle seats get a nudge by DM, and seats "
                "whose nudge went unanswered past the grace period are reclaimed."
            )

    def digest(self) -> str:
        with self._lock:
            now = self._clock.now()
            week = digest.week_of(now, self._rt.policy.timezone)
            if not jobs.JOBS[digest.JOB_ID].run(self._rt, now):
                return (
                    f"The digest for week {week} was already posted (one a week); advance the "
                    "clock 7 days for the next one."
                )
            return f"Digest for week {week} posted to the IT channel, with its CSV and chart."

    def advance(self, days: int) -> str:
        if not 1 <= days <= MAX_DAYS:
            raise InputError(f"Advance the clock by 1 to {MAX_DAYS} days, not {days}.")
        with self._lock:
            self._clock.advance(timedelta(days=days))
            save_clock(self._data_dir, self._clock)
            now = self._clock.now()
        # Notifications waiting for a time now passed (a key to hide again) go out at once.
        self._rt.wake_dispatcher()
        plural = "s" if days != 1 else ""
        return (
            f"The demo clock moved {days} day{plural} forward; it is now "
            f"{now:%A %Y-%m-%d %H:%M} UTC."
        )
