"""Delivers queued notifications after their transaction committed; retries what fails.

A message is leased before delivery (its next attempt pushed past the lease), so a process that
dies mid-delivery leaves it to be retried, and two dispatchers never send the same row at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.notifications import DeliveryDeferred, DeliveryFailed, Notifier
from bot.runtime import Runtime
from storage import outbox
from storage.models import OutboxMessage

log = logging.getLogger("licensebot.dispatcher")

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 8


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2**attempts, 300))


# Called in the transaction that marks a row failed for good (e.g. to tell IT about it).
OnFailed = Callable[[Session, OutboxMessage, datetime], None]


class Dispatcher:
    def __init__(
        self,
        rt: Runtime,
        notifier: Notifier,
        *,
        poll_seconds: float = 1.0,
        on_failed: OnFailed | None = None,
    ) -> None:
        self._rt = rt
        self._notifier = notifier
        self._poll = poll_seconds
        self._on_failed = on_failed
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="outbox-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, *, drain_until: float | None = None) -> None:
        """Stop the thread; with ``drain_until`` (a ``time.monotonic`` deadline) first deliver
        what is due, so work acknowledged just before a shutdown still reaches Slack."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        while drain_until is not None and time.monotonic() < drain_until:
            try:
                if not self.run_once():
                    return
            except Exception:  # a database error ends the drain; what is left is delivered later
                log.exception("event=drain_failed")
                return

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            try:
                while self.run_once() and not self._stop.is_set():
                    pass
            except Exception:  # the loop must survive a database hiccup; it is logged with a trace
                log.exception("event=dispatch_failed")

    def _claim(self) -> list[OutboxMessage]:
        now = self._rt.clock.now()
        with self._rt.db.transaction() as session:
            rows = outbox.due(session, now=now)
            for row in rows:
                row.next_attempt_at = now + LEASE
                session.add(row)
            return rows

    def run_once(self) -> int:
        """Deliver what is due now; returns how many messages were handled."""
        rows = self._claim()
        for row in rows:
            self._deliver(row)
        return len(rows)

    def _deliver(self, row: OutboxMessage) -> None:
        try:
            self._notifier.deliver(row.kind, dict(row.payload))
        except DeliveryDeferred as exc:
            self._deferred(row, exc)
            return
        except DeliveryFailed as exc:
            self._failed(row, exc)
            return
        except Exception as exc:  # a bug with one message must not stall the others
            log.exception("event=notification_crashed id=%s kind=%s", row.id, row.kind)
            self._failed(row, DeliveryFailed(f"{type(exc).__name__}: {exc}"[:200]))
            return
        with self._rt.db.transaction() as session:
            fresh = session.get(OutboxMessage, row.id)
            if fresh is not None:
                outbox.mark_sent(session, fresh, now=self._rt.clock.now())
        log.info("event=notification_sent id=%s kind=%s", row.id, row.kind)

    def _failed(self, row: OutboxMessage, exc: DeliveryFailed) -> None:
        now = self._rt.clock.now()
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else backoff(row.attempts)
        with self._rt.db.transaction() as session:
            fresh = session.get(OutboxMessage, row.id)
            if fresh is None:
                return
            outbox.mark_retry(
                session,
                fresh,
                now=now,
                delay=delay,
                error=exc.reason,
                max_attempts=1 if exc.permanent else MAX_ATTEMPTS,
            )
            status = fresh.status
            if status == "failed" and self._on_failed is not None:
                self._on_failed(session, fresh, now)
        log.warning(
            "event=notification_failed id=%s kind=%s attempts=%s status=%s reason=%r",
            row.id,
            row.kind,
            row.attempts + 1,
            status,
            exc.reason,
        )

    def _deferred(self, row: OutboxMessage, exc: DeliveryDeferred) -> None:
        """Slack's pace or a Retry-After pause: try again at ``exc.until``; no attempt counted,
        so a burst or a 429 never uses up a message's attempts."""
        with self._rt.db.transaction() as session:
            fresh = session.get(OutboxMessage, row.id)
            if fresh is None:
                return
            fresh.next_attempt_at = max(exc.until, self._rt.clock.now())
            if exc.reason:
                fresh.last_error = exc.reason
            session.add(fresh)
        log.info(
            "event=notification_deferred id=%s kind=%s until=%s reason=%s",
            row.id,
            row.kind,
            exc.until.isoformat(),
            exc.reason or "paced",
        )
