"""Delivers queued notifications after their transaction committed; retries what fails.

A message is leased before delivery (its next attempt pushed past the lease), so a process that
dies mid-delivery leaves it to be retried, and two dispatchers never send the same row at once.

A claimed batch is delivered by a few worker threads, so Slack round trips overlap: rows are
split by what they are about (a request, a review, a seat; see ``partition``) and each part is
delivered in queue order by one worker, so a card's ``chat.update`` never overtakes the post
that recorded its ``ts``. The outcomes are written back in one transaction per batch (failures
that count an attempt, with their ``on_failed`` hook, one each); the next batch is claimed only
when the whole batch is recorded. A crash between delivery and that write leaves the rows
leased, so they are delivered again after the lease: at least once, as before, and cards
redelivered update the posted card instead of posting twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot.notifications import IT_DIGEST, IT_DIGEST_FILES, DeliveryDeferred, DeliveryFailed, Notifier
from bot.runtime import Runtime
from storage import outbox
from storage.models import OutboxMessage

log = logging.getLogger("licensebot.dispatcher")

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 8
# Delivery threads per process; Slack calls are I/O, so a few overlap well even on two cores.
WORKERS = 4
# Payload fields naming what a message is about, most specific first: messages about the same
# thing are delivered in queue order (a step's card is posted, and its ts recorded, before the
# step_closed that updates it; a seat's webhook "assigned" before its "released").
_SUBJECTS = ("request_id", "review_id", "assignment_id", "user_id", "reviewer_id", "view_id")
# Kinds about no one subject that still follow one another: the digest's files come after its
# message in the channel, as its text says.
_FOLLOWS = {IT_DIGEST_FILES: IT_DIGEST}


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2**attempts, 300))


# Called in the transaction that marks a row failed for good (e.g. to tell IT about it).
OnFailed = Callable[[Session, OutboxMessage, datetime], None]
# What delivering one row came to: None (sent), deferred, or failed.
Outcome = DeliveryDeferred | DeliveryFailed | None


def partition(kind: str, payload: dict[str, Any]) -> str:
    """Rows with the same partition are delivered one after another, in queue order."""
    for field in _SUBJECTS:
        if field in payload:
            return f"{field}={payload[field]}"
    # Digests, audit heads...: rare, and kept in order among themselves.
    return f"kind={_FOLLOWS.get(kind, kind)}"


class Dispatcher:
    def __init__(
        self,
        rt: Runtime,
        notifier: Notifier,
        *,
        poll_seconds: float = 1.0,
        on_failed: OnFailed | None = None,
        workers: int = WORKERS,
    ) -> None:
        self._rt = rt
        self._notifier = notifier
        self._poll = poll_seconds
        self._on_failed = on_failed
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers = max(workers, 1)
        # Started with the first batch that has two parts; shut down by ``stop``.
        self._pool: ThreadPoolExecutor | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="outbox-dispatcher", daemon=True)
        self._thread.start()
        # Messages queued by other processes (`serve --role web`) wake this one at once.
        threading.Thread(target=self._listen, name="outbox-listener", daemon=True).start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._rt.db.listen_outbox(self.wake, self._stop)
            except Exception as exc:  # a lost connection: polling still delivers; listen again
                log.warning(
                    "event=outbox_listen_lost error=%s retry_seconds=%s",
                    type(exc).__name__,
                    self._poll,
                )
                self._stop.wait(self._poll)

    def stop(self, *, drain_until: float | None = None) -> None:
        """Stop the thread; with ``drain_until`` (a ``time.monotonic`` deadline) first deliver
        what is due, so work acknowledged just before a shutdown still reaches Slack."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        try:
            while drain_until is not None and time.monotonic() < drain_until:
                try:
                    if not self.run_once():
                        return
                except Exception:  # a database error ends the drain; the rest goes later
                    log.exception("event=drain_failed")
                    return
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

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
        if not rows:
            return 0
        parts: dict[str, list[OutboxMessage]] = {}
        for row in rows:  # due() returns them in queue order; each part keeps it
            parts.setdefault(partition(row.kind, dict(row.payload)), []).append(row)
        if len(parts) == 1 or self._workers == 1:
            outcomes = [(row, self._attempt(row)) for row in rows]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="outbox-send")
            futures = [self._pool.submit(self._attempt_all, part) for part in parts.values()]
            outcomes = [pair for future in futures for pair in future.result()]
        self._record(outcomes)
        return len(rows)

    def _attempt_all(self, rows: list[OutboxMessage]) -> list[tuple[OutboxMessage, Outcome]]:
        return [(row, self._attempt(row)) for row in rows]

    def _attempt(self, row: OutboxMessage) -> Outcome:
        try:
            self._notifier.deliver(row.kind, dict(row.payload))
        except (DeliveryDeferred, DeliveryFailed) as exc:
            return exc
        except Exception as exc:  # a bug with one message must not stall the others
            log.exception("event=notification_crashed id=%s kind=%s", row.id, row.kind)
            return DeliveryFailed(f"{type(exc).__name__}: {exc}"[:200])
        return None

    def _record(self, outcomes: Sequence[tuple[OutboxMessage, Outcome]]) -> None:
        """Write a batch's outcomes: sent and deferred rows in one transaction, then each
        failure in its own (its ``on_failed`` hook may queue and audit)."""
        done = [
            (row, outcome) for row, outcome in outcomes if not isinstance(outcome, DeliveryFailed)
        ]
        now = self._rt.clock.now()
        if done:
            with self._rt.db.transaction() as session:
                ids = [row.id for row, _ in done]
                fresh = {
                    m.id: m
                    for m in session.exec(
                        select(OutboxMessage).where(col(OutboxMessage.id).in_(ids))
                    )
                }
                for row, outcome in done:
                    current = fresh.get(row.id)
                    if current is None:
                        continue
                    if outcome is None:
                        outbox.mark_sent(session, current, now=now)
                    else:
                        self._defer(current, outcome, now)
        for row, outcome in done:
            if outcome is None:
                log.info("event=notification_sent id=%s kind=%s", row.id, row.kind)
            else:
                log.info(
                    "event=notification_deferred id=%s kind=%s until=%s reason=%s",
                    row.id,
                    row.kind,
                    outcome.until.isoformat(),
                    outcome.reason or "paced",
                )
        for row, result in outcomes:
            if isinstance(result, DeliveryFailed):
                self._failed(row, result)

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

    @staticmethod
    def _defer(row: OutboxMessage, exc: DeliveryDeferred, now: datetime) -> None:
        """Slack's pace or a Retry-After pause: try again at ``exc.until``; no attempt counted,
        so a burst or a 429 never uses up a message's attempts."""
        row.next_attempt_at = max(exc.until, now)
        if exc.reason:
            row.last_error = exc.reason
