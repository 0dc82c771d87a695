"""Reclaim: idle seats nudged once per window, Keep snoozes, Release and the grace period free."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import col, select

from bot import catalog, directory, jobs, reclaim, requests, usage
from bot.clock import ManualClock
from bot.errors import Conflict, NotAllowed
from bot.runtime import Runtime
from bot.seats import import_seats
from storage.models import Assignment, AuditEntry, LicenseRequest, OutboxMessage, UsageSignal
from tests.company import DIRECTORY, EMPLOYEE, IT1, MANAGER, NEWHIRE, ORPHAN
from tests.conftest import START

CATALOG = """
products:
  - {id: design, name: Design Pro, delivery: seat, seats: 2, cost_per_seat: 144, approval: [],
     reclaim_after_days: 30, reclaim_grace_days: 7, auto_reclaim: true}
  - {id: notes, name: Notes, delivery: seat, seats: 5, cost_per_seat: 10, approval: [],
     reclaim_after_days: 10, reclaim_grace_days: 3}
"""


def day(days: int) -> str:
    return (START - timedelta(days=days)).isoformat()


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    catalog.load_catalog(runtime, CATALOG, actor="test")
    directory.import_directory(runtime, DIRECTORY, actor="test")
    import_seats(
        runtime,
        "product_id,slack_user_id,assigned_at\n"
        f"design,{EMPLOYEE},{day(40)}\n"  # never used since: idle
        f"design,{MANAGER},{day(40)}\n"  # used 5 days ago: active
        f"notes,{NEWHIRE},{day(5)}\n"  # new: not idle yet
        f"notes,{IT1},{day(11)}\n",  # idle for notes' 10-day window
        actor="test",
    )
    with runtime.db.transaction() as s:
        usage.upsert_signals(
            s, {("design", MANAGER): START - timedelta(days=5)}, source="csv", now=START
        )
    return runtime


def listed_for_it(rt: Runtime, clock: ManualClock) -> dict[str, int]:
    with rt.db.read() as s:
        return reclaim.reclaimable_counts(s, clock.now())


def seat_id(rt: Runtime, product_id: str, user_id: str) -> int:
    with rt.db.read() as s:
        found = s.exec(
            select(Assignment.id)
            .where(Assignment.product_id == product_id, Assignment.user_id == user_id)
            .order_by(col(Assignment.id).desc())
        ).first()
    assert found is not None
    return found


def queued(rt: Runtime, kind: str) -> list[int]:
    with rt.db.read() as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.kind == kind)).all()
    return sorted(int(r.payload["assignment_id"]) for r in rows)


def audited(rt: Runtime, action: str) -> int:
    with rt.db.read() as s:
        return len(s.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def released(rt: Runtime, assignment_id: int) -> str | None:
    with rt.db.read() as s:
        a = s.get(Assignment, assignment_id)
    assert a is not None
    return a.release_reason if a.released_at is not None else None


def test_scan_nudges_exactly_the_idle_seats_once(rt: Runtime, clock: ManualClock) -> None:
    idle = sorted([seat_id(rt, "design", EMPLOYEE), seat_id(rt, "notes", IT1)])
    assert jobs.JOBS["reclaim"].run(rt, clock.now()) is True
    assert queued(rt, "reclaim_nudge") == idle
    assert audited(rt, "seat.nudged") == 2
    # The same day again: the job's claim stops it; the scan itself also finds nothing new.
    assert jobs.JOBS["reclaim"].run(rt, clock.now()) is False
    with rt.db.transaction() as s:
        assert reclaim.scan(s, rt, now=clock.now()).nudged == 0
    clock.advance(timedelta(days=1))
    assert jobs.JOBS["reclaim"].run(rt, clock.now()) is True
    assert queued(rt, "reclaim_nudge") == idle and audited(rt, "seat.nudged") == 2


def test_keep_snoozes_for_a_window_and_only_the_holder_may(rt: Runtime, clock: ManualClock) -> None:
    mine = seat_id(rt, "design", EMPLOYEE)
    with rt.db.transaction() as s:
        reclaim.scan(s, rt, now=clock.now())
    with pytest.raises(NotAllowed):
        reclaim.keep(rt, actor=MANAGER, assignment_id=mine)
    clock.advance(timedelta(hours=1))
    until = reclaim.keep(rt, actor=EMPLOYEE, assignment_id=mine)
    assert until == clock.now() + timedelta(days=30)
    with rt.db.read() as s:
        signal = s.get(UsageSignal, ("design", EMPLOYEE))
    assert signal is not None and signal.source == "keep"
    assert audited(rt, "seat.kept") == 1 and queued(rt, "seat_kept") == [mine]

    # Not reclaimed after the grace period, not nudged again inside the window...
    clock.advance(timedelta(days=29))
    with rt.db.transaction() as s:
        result = reclaim.scan(s, rt, now=clock.now())
    assert result.reclaimed == 0 and released(rt, mine) is None
    assert queued(rt, "reclaim_nudge").count(mine) == 1
    # ...and nudged once more when the window has passed without use.
    clock.advance(timedelta(days=2))
    with rt.db.transaction() as s:
        reclaim.scan(s, rt, now=clock.now())
    assert queued(rt, "reclaim_nudge").count(mine) == 2


def test_unanswered_nudges_are_reclaimed_or_listed_after_grace(
    rt: Runtime, clock: ManualClock
) -> None:
    auto, listed = seat_id(rt, "design", EMPLOYEE), seat_id(rt, "notes", IT1)
    waiting = requests.submit(rt, asked_by=NEWHIRE, product_id="design", justification="")
    assert waiting.status == "waitlisted"
    with rt.db.transaction() as s:
        reclaim.scan(s, rt, now=clock.now())
    assert listed_for_it(rt, clock) == {}  # just nudged: its grace period has not passed
    clock.advance(timedelta(days=6))
    with rt.db.transaction() as s:
        assert reclaim.scan(s, rt, now=clock.now()).reclaimed == 0
    assert listed_for_it(rt, clock) == {"notes": 1}  # grace 3 days; only IT1's seat was idle

    clock.advance(timedelta(days=2))
    with rt.db.transaction() as s:
        result = reclaim.scan(s, rt, now=clock.now())
    assert (result.reclaimed, result.served) == (1, 1)
    assert released(rt, auto) == "reclaimed" and released(rt, listed) is None
    assert queued(rt, "seat_reclaimed") == [auto] and audited(rt, "seat.reclaimed") == 1
    assert listed_for_it(rt, clock) == {"notes": 1}
    with rt.db.read() as s:
        req = s.get(LicenseRequest, waiting.request_id)
    assert req is not None and req.status == "approved"


def test_use_after_the_nudge_is_an_answer(rt: Runtime, clock: ManualClock) -> None:
    mine = seat_id(rt, "design", EMPLOYEE)
    with rt.db.transaction() as s:
        reclaim.scan(s, rt, now=clock.now())
        usage.upsert_signals(
            s,
            {("design", EMPLOYEE): clock.now() + timedelta(days=1)},
            source="api",
            now=clock.now(),
        )
    clock.advance(timedelta(days=8))
    with rt.db.transaction() as s:
        assert reclaim.scan(s, rt, now=clock.now()).reclaimed == 0
    assert released(rt, mine) is None


def test_release_frees_the_seat_and_serves_the_waitlist_in_order(
    rt: Runtime, clock: ManualClock
) -> None:
    mine = seat_id(rt, "design", EMPLOYEE)
    first = requests.submit(rt, asked_by=NEWHIRE, product_id="design", justification="")
    clock.advance(timedelta(minutes=1))
    second = requests.submit(rt, asked_by=ORPHAN, product_id="design", justification="")
    assert (first.status, second.status) == ("waitlisted", "waitlisted")
    with pytest.raises(NotAllowed):
        reclaim.release(rt, actor=NEWHIRE, assignment_id=mine)
    assert reclaim.release(rt, actor=EMPLOYEE, assignment_id=mine) == 1
    assert released(rt, mine) == "released"
    assert audited(rt, "seat.released") == 1 and queued(rt, "seat_released") == [mine]
    with rt.db.read() as s:
        statuses = {
            r.requester_id: r.status
            for r in s.exec(select(LicenseRequest).where(LicenseRequest.product_id == "design"))
        }
    assert statuses == {NEWHIRE: "approved", ORPHAN: "waitlisted"}
    with pytest.raises(Conflict):
        reclaim.release(rt, actor=EMPLOYEE, assignment_id=mine)
    with pytest.raises(Conflict):
        reclaim.keep(rt, actor=EMPLOYEE, assignment_id=mine)


def test_jobs_run_reclaim_from_the_cli(rt: Runtime, database_url: str, encryption_key: str) -> None:
    from click.testing import CliRunner

    from bot.cli import cli

    env = {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key}
    first = CliRunner().invoke(cli, ["jobs", "run", "reclaim"], env=env)
    again = CliRunner().invoke(cli, ["jobs", "run", "reclaim"], env=env)
    assert (first.output, again.output) == (
        "reclaim: done.\n",
        "reclaim: already done for this period.\n",
    )
    # The CLI runs on the wall clock, so which seats are idle depends on today: only check that
    # each nudge queued is audited.
    assert len(queued(rt, "reclaim_nudge")) == audited(rt, "seat.nudged")


def test_a_scan_audits_each_nudge_in_one_verifiable_chain(rt: Runtime, clock: ManualClock) -> None:
    # The scan writes its entries and outbox rows in batches: each seat still gets its own
    # entry, in seat order, and the chain (hashes and signatures) verifies after it.
    from storage import audit

    idle = sorted([seat_id(rt, "design", EMPLOYEE), seat_id(rt, "notes", IT1)])
    assert jobs.JOBS["reclaim"].run(rt, clock.now()) is True
    with rt.db.read() as s:
        entries = s.exec(
            select(AuditEntry)
            .where(AuditEntry.action == "seat.nudged")
            .order_by(col(AuditEntry.id))
        ).all()
        report = audit.verify(s, rt.audit_keys)
        outbox = s.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "reclaim_nudge")
            .order_by(col(OutboxMessage.id))
        ).all()
    assert report.intact, report.problem
    assert [e.subject for e in entries] == [f"user:{EMPLOYEE}", f"user:{IT1}"]
    assert [e.product_id for e in entries] == ["design", "notes"]
    assert [json.loads(e.details)["assignment"] for e in entries] == idle
    assert json.loads(entries[0].details)["last_use"] == day(40)
    assert [m.payload for m in outbox] == [{"assignment_id": i} for i in idle]
    assert all(m.status == "pending" and m.attempts == 0 for m in outbox)


# -- scale: the scans' statements do not grow with the number of seats ------------------------


@contextmanager
def counted_statements(rt: Runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", count)


def scans_of(runtime: Runtime, clock: ManualClock, holders: int, name: str) -> tuple[int, int]:
    """Statements of the scan that nudges ``holders`` idle seats, and of the one that reclaims
    them after the grace period."""
    catalog.load_catalog(
        runtime,
        f"products:\n  - {{id: {name}, name: Bulk, delivery: seat, seats: 100, approval: [],"
        " reclaim_after_days: 30, reclaim_grace_days: 7, auto_reclaim: true}\n",
        actor="test",
    )
    people = [f"U{name.upper()}{n:04d}" for n in range(holders)]
    directory.import_directory(
        runtime,
        "slack_user_id,email,name,manager_slack_user_id,department\n"
        + "".join(f"{u},{u.lower()}@example.com,Bulk {n},,Ops\n" for n, u in enumerate(people)),
        actor="test",
    )
    import_seats(
        runtime,
        "product_id,slack_user_id,assigned_at\n"
        + "".join(f"{name},{u},{clock.now() - timedelta(days=40)}\n" for u in people),
        actor="test",
    )
    with counted_statements(runtime) as nudging, runtime.db.transaction() as s:
        assert reclaim.scan(s, runtime, now=clock.now()).nudged == holders
    clock.advance(timedelta(days=8))
    with counted_statements(runtime) as reclaiming, runtime.db.transaction() as s:
        assert reclaim.scan(s, runtime, now=clock.now()).reclaimed == holders
    return len(nudging), len(reclaiming)


def test_the_scans_issue_the_same_statements_for_3_or_40_seats(
    runtime: Runtime, clock: ManualClock
) -> None:
    few = scans_of(runtime, clock, 3, "few")
    more = scans_of(runtime, clock, 40, "more")
    assert few == more, (few, more)
