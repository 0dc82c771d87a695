"""The dispatcher's workers: what is about different things goes out at once, what is about the
same thing in queue order, and a batch's outcomes are all written back.

The notifier here is a stand-in for Slack (the seam the dispatcher is built on), so the test can
hold a delivery open and see what else runs meanwhile; tests/e2e/ covers the real Slack side.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bench import profile_dispatch
from bot import notifications
from bot.clock import ManualClock
from bot.dispatcher import Dispatcher, partition
from bot.notifications import DeliveryDeferred, DeliveryFailed
from bot.runtime import Runtime
from storage.db import Database
from storage.models import OutboxMessage


def queue(rt: Runtime, clock: ManualClock, *rows: tuple[str, dict[str, Any]]) -> None:
    with rt.db.transaction() as s:
        for kind, payload in rows:
            notifications.queue(s, kind, now=clock.now(), **payload)


def outbox_rows(rt: Runtime) -> list[OutboxMessage]:
    with rt.db.read() as s:
        return list(s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def deliver_once(rt: Runtime, notifier: Any, **options: Any) -> int:
    """One ``run_once`` of a dispatcher built with ``options``, its workers stopped after."""
    dispatcher = Dispatcher(rt, notifier, **options)
    try:
        return dispatcher.run_once()
    finally:
        dispatcher.stop()


class Overlaps:
    """Holds each delivery open for a moment and notes every other delivery started meanwhile
    about the same request (there must be none)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open: dict[int, threading.Event] = {}
        self.order: list[tuple[int, str]] = []
        self.overlapped: list[int] = []

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        request = int(payload["request_id"])
        mine = threading.Event()
        with self._lock:
            if request in self.open:
                self.open[request].set()  # the earlier one is still being delivered
                self.overlapped.append(request)
            self.open[request] = mine
            self.order.append((request, kind))
        mine.wait(0.3)
        with self._lock:
            if self.open.get(request) is mine:
                del self.open[request]


def test_rows_about_one_request_go_in_queue_order_one_at_a_time(
    runtime: Runtime, clock: ManualClock
) -> None:
    # A card's post (which records its ts) and the step_closed that updates it, for three
    # requests: on several workers, each request's pair must still go one after the other.
    queue(
        runtime,
        clock,
        *[
            (kind, {"request_id": r, "step": 0, "approver_id": "UAPPROVER"})
            if kind == notifications.APPROVAL_CARD
            else (kind, {"request_id": r, "step": 0})
            for r in (1, 2, 3)
            for kind in (notifications.APPROVAL_CARD, notifications.STEP_CLOSED)
        ],
    )
    fake = Overlaps()
    assert deliver_once(runtime, fake, workers=4) == 6
    assert fake.overlapped == []
    for r in (1, 2, 3):
        kinds = [kind for request, kind in fake.order if request == r]
        assert kinds == [notifications.APPROVAL_CARD, notifications.STEP_CLOSED]
    assert [(m.status, m.attempts) for m in outbox_rows(runtime)] == [("sent", 1)] * 6


class Together:
    """Every delivery waits until ``parties`` deliveries are under way at once."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=5)

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        self.barrier.wait()


def test_rows_about_different_things_are_delivered_at_once(
    runtime: Runtime, clock: ManualClock
) -> None:
    queue(
        runtime,
        clock,
        (notifications.STEP_CLOSED, {"request_id": 1, "step": 0}),
        (notifications.REQUEST_APPROVED, {"request_id": 2}),
        (notifications.NOTICE, {"user_id": "UEMPLOYEE", "text": "hi"}),
    )
    assert deliver_once(runtime, Together(3), workers=3) == 3
    # One at a time, the first would have waited for the others in vain and failed.
    assert [(m.status, m.last_error) for m in outbox_rows(runtime)] == [("sent", "")] * 3


class Mixed:
    """Sends, defers (until ``until``) or fails, by the notice's text."""

    def __init__(self, until: datetime) -> None:
        self.until = until

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        text = payload["text"]
        if text == "later":
            raise DeliveryDeferred(self.until, reason="ratelimited")
        if text == "broken":
            raise DeliveryFailed("channel_not_found", permanent=True)


def test_a_batch_writes_back_sent_deferred_and_failed_rows(
    runtime: Runtime, clock: ManualClock
) -> None:
    queue(
        runtime,
        clock,
        *[
            (notifications.NOTICE, {"user_id": f"U{n}", "text": text})
            for n, text in enumerate(["ok", "later", "broken", "ok"])
        ],
    )
    failed: list[int] = []
    until = clock.now() + timedelta(minutes=1)
    told = deliver_once(
        runtime, Mixed(until), workers=2, on_failed=lambda _s, row, _now: failed.append(row.id or 0)
    )
    assert told == 4
    rows = outbox_rows(runtime)
    assert [(m.status, m.attempts, m.last_error) for m in rows] == [
        ("sent", 1, ""),
        ("pending", 0, "ratelimited"),
        ("failed", 1, "channel_not_found"),
        ("sent", 1, ""),
    ]
    assert rows[1].next_attempt_at.replace(tzinfo=until.tzinfo) == until
    assert failed == [rows[2].id]


def test_partition_follows_what_a_message_is_about() -> None:
    assert partition("approval_card", {"request_id": 7, "step": 0, "approver_id": "U1"}) == (
        partition("step_closed", {"request_id": 7, "step": 0})
    )
    # A webhook's "assigned" and "released" for one seat stay in order.
    assert partition("provision_webhook", {"assignment_id": 3, "event": "assigned"}) == (
        partition("provision_webhook", {"assignment_id": 3, "event": "released"})
    )
    assert partition("step_closed", {"request_id": 7}) != partition(
        "step_closed", {"request_id": 8}
    )
    assert partition("it_digest", {"as_of": "x"}) == partition("it_digest", {"as_of": "y"})
    assert partition("it_digest_files", {"as_of": "x"}) == partition("it_digest", {"as_of": "x"})


class SlowDigest:
    """Takes a moment to post the digest's message; notes when each delivery starts and ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[str] = []

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(f"{kind} start")
        if kind == notifications.IT_DIGEST:
            time.sleep(0.3)
        with self._lock:
            self.events.append(f"{kind} end")


def test_the_digests_files_go_out_after_its_message(runtime: Runtime, clock: ManualClock) -> None:
    as_of = clock.now().isoformat()
    queue(
        runtime,
        clock,
        (notifications.IT_DIGEST, {"as_of": as_of}),
        (notifications.IT_DIGEST_FILES, {"as_of": as_of}),
    )
    fake = SlowDigest()
    assert deliver_once(runtime, fake, workers=4) == 2
    # Posted side by side, the files would land in the channel above the text announcing them.
    assert fake.events == [
        "it_digest start",
        "it_digest end",
        "it_digest_files start",
        "it_digest_files end",
    ]


def test_the_dispatch_profiler_still_runs(capsys: pytest.CaptureFixture[str]) -> None:
    # bench/profile_dispatch.py is a tool, not a benchmark: this only keeps it from rotting.
    assert profile_dispatch.main(["--teams", "3", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "approval cards" in out and "step_closed + request_approved" in out


def test_a_commit_that_queues_wakes_the_listening_dispatchers(runtime: Runtime) -> None:
    """Web processes do not deliver: the `all` processes' dispatchers are woken the moment a
    transaction that queued messages commits (PostgreSQL: NOTIFY; SQLite: the file's
    data_version, watched from a connection of their own)."""
    heard = threading.Event()
    stop = threading.Event()
    listening = threading.Thread(target=runtime.db.listen_outbox, args=(heard.set, stop))
    listening.start()
    try:
        # The listener starts listening (LISTEN, or its first data_version) on its own thread:
        # queue until a commit is heard.
        for _ in range(50):
            with runtime.db.transaction() as session:
                notifications.queue(
                    session,
                    notifications.AUDIT_HEAD,
                    now=runtime.clock.now(),
                    entries=0,
                    head="x",
                    day="2026-12-05",
                )
            if heard.wait(0.2):
                break
        assert heard.is_set()
    finally:
        stop.set()
        listening.join(timeout=5)
    assert not listening.is_alive()


class Delivered:
    """Notes that something was delivered."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        self.event.set()


def test_a_started_dispatcher_delivers_what_another_process_commits_without_waiting_to_poll(
    runtime: Runtime, clock: ManualClock
) -> None:
    # `serve --role web` processes queue and wake no one here: a started dispatcher hears
    # their commits (its listener thread) long before its next poll, a minute away.
    delivered = Delivered()
    dispatcher = Dispatcher(runtime, delivered, poll_seconds=60)
    other = Database(runtime.db.url)  # another process's connections to the same database
    dispatcher.start()
    try:
        # Its listener begins on its own thread: queue until it has heard a commit.
        for _ in range(50):
            with other.transaction() as session:
                notifications.queue(
                    session, notifications.NOTICE, now=clock.now(), user_id="U1", text="hi"
                )
            if delivered.event.wait(0.2):
                break
        assert delivered.event.is_set()
    finally:
        dispatcher.stop()
        other.dispose()
