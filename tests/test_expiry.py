"""Time-limited grants: seats of max_days products end, are warned about once, can be extended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from bot import approvals, catalog, directory, expiry, jobs, requests
from bot.clock import ManualClock
from bot.errors import AlreadyHolds, Conflict, DuplicateRequest, NotAllowed
from bot.runtime import Runtime
from bot.seats import import_seats
from storage.models import Assignment, AuditEntry, LicenseRequest, OutboxMessage
from tests.company import DIRECTORY, EMPLOYEE, MANAGER, NEWHIRE
from tests.conftest import START

CATALOG = """
products:
  - {id: trial, name: Analytics Trial, delivery: seat, seats: 1, approval: [manager],
     max_days: 10}
  - {id: sandbox, name: Sandbox, delivery: seat, seats: 5, approval: [], max_days: 30}
  - {id: forever, name: Forever Tool, delivery: seat, seats: 5, approval: []}
"""


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    catalog.load_catalog(runtime, CATALOG, actor="test")
    directory.import_directory(runtime, DIRECTORY, actor="test")
    return runtime


def utc(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def seats_of(rt: Runtime, product_id: str) -> list[Assignment]:
    with rt.db.read() as s:
        return list(
            s.exec(
                select(Assignment)
                .where(Assignment.product_id == product_id)
                .order_by(col(Assignment.id))
            ).all()
        )


def queued(rt: Runtime, kind: str) -> list[dict[str, object]]:
    with rt.db.read() as s:
        rows = s.exec(
            select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(col(OutboxMessage.id))
        ).all()
    return [r.payload for r in rows]


def audited(rt: Runtime, action: str) -> int:
    with rt.db.read() as s:
        return len(s.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def grant_trial(rt: Runtime, user: str = EMPLOYEE) -> int:
    r = requests.submit(rt, asked_by=user, product_id="trial", justification="a project")
    approvals.decide(rt, request_id=r.request_id, step=0, actor=MANAGER, approve=True)
    return r.request_id


def test_every_new_seat_of_a_max_days_product_has_an_end(rt: Runtime, clock: ManualClock) -> None:
    requests.submit(rt, asked_by=EMPLOYEE, product_id="sandbox", justification="")
    requests.submit(rt, asked_by=EMPLOYEE, product_id="forever", justification="")
    import_seats(
        rt,
        "product_id,slack_user_id,assigned_at\n"
        f"sandbox,{NEWHIRE},{(START - timedelta(days=2)).isoformat()}\n",
        actor="test",
    )
    approved, imported = seats_of(rt, "sandbox")
    assert utc(approved.expires_at) == START + timedelta(days=30)
    # An imported seat ends max_days after it was first assigned, not after the import.
    assert utc(imported.expires_at) == START + timedelta(days=28)
    assert [s.expires_at for s in seats_of(rt, "forever")] == [None]


def test_the_holder_is_warned_once_three_days_before(rt: Runtime, clock: ManualClock) -> None:
    grant_trial(rt)
    (seat,) = seats_of(rt, "trial")
    clock.advance(timedelta(days=6, hours=23))  # 3 days and 1 hour before the end: not yet
    assert jobs.JOBS["expiry"].run(rt, clock.now()) is True
    assert queued(rt, "seat_expiring") == []
    clock.advance(timedelta(days=1))
    assert jobs.JOBS["expiry"].run(rt, clock.now()) is True
    assert queued(rt, "seat_expiring") == [{"assignment_id": seat.id}]
    assert audited(rt, "seat.expiry_warned") == 1
    # The same day again is claimed; the scan itself finds nothing new either, nor the next day.
    assert jobs.JOBS["expiry"].run(rt, clock.now()) is False
    with rt.db.transaction() as s:
        assert expiry.scan(s, rt, now=clock.now()).warned == 0
    clock.advance(timedelta(days=1))
    assert jobs.JOBS["expiry"].run(rt, clock.now()) is True
    assert len(queued(rt, "seat_expiring")) == 1 and audited(rt, "seat.expiry_warned") == 1


def test_an_ended_seat_is_released_and_goes_to_the_next_in_line(
    rt: Runtime, clock: ManualClock
) -> None:
    grant_trial(rt, EMPLOYEE)
    waiting = grant_trial(rt, NEWHIRE)  # the only seat is taken: waitlisted
    clock.advance(timedelta(days=9, hours=23))
    assert jobs.JOBS["expiry"].run(rt, clock.now())
    assert seats_of(rt, "trial")[0].released_at is None  # an hour to go
    clock.advance(timedelta(days=1))
    with rt.db.transaction() as s:
        result = expiry.scan(s, rt, now=clock.now())
    assert (result.expired, result.served) == (1, 1)
    ended, given = seats_of(rt, "trial")
    assert ended.user_id == EMPLOYEE and ended.release_reason == "expired"
    assert utc(ended.released_at) == clock.now()
    assert queued(rt, "seat_expired") == [{"assignment_id": ended.id}]
    assert audited(rt, "seat.expired") == 1
    # The next in line gets the seat, with its own full term.
    assert given.user_id == NEWHIRE and given.request_id == waiting
    assert utc(given.expires_at) == clock.now() + timedelta(days=10)
    with rt.db.transaction() as s:
        assert expiry.scan(s, rt, now=clock.now()).expired == 0


def test_an_approved_extension_moves_the_end_of_the_same_seat(
    rt: Runtime, clock: ManualClock
) -> None:
    grant_trial(rt)
    (seat,) = seats_of(rt, "trial")
    assert seat.id is not None
    clock.advance(timedelta(days=8))
    jobs.JOBS["expiry"].run(rt, clock.now())  # warned: two days left
    with pytest.raises(NotAllowed):
        expiry.request_extension(rt, actor=NEWHIRE, assignment_id=seat.id)
    asked = expiry.request_extension(rt, actor=EMPLOYEE, assignment_id=seat.id)
    assert asked.status == "pending" and asked.next_approvers == [MANAGER]
    with rt.db.read() as s:
        req = s.get(LicenseRequest, asked.request_id)
    assert (
        req is not None and req.justification == f"Extension of seat #{seat.id} (ends 2026-11-12)"
    )
    # A second click while it is open creates nothing; an ordinary request is still refused.
    with pytest.raises(DuplicateRequest):
        expiry.request_extension(rt, actor=EMPLOYEE, assignment_id=seat.id)
    with pytest.raises(AlreadyHolds):
        requests.submit(rt, asked_by=EMPLOYEE, product_id="trial", justification="more")

    approvals.decide(rt, request_id=asked.request_id, step=0, actor=MANAGER, approve=True)
    (extended,) = seats_of(rt, "trial")  # no second seat
    assert extended.id == seat.id and extended.released_at is None
    # max_days more from the old end: approving early loses nothing.
    assert utc(extended.expires_at) == START + timedelta(days=20)
    assert extended.expiry_warned_at is None  # warned again before the new end
    assert queued(rt, "seat_extended") == [
        {"assignment_id": seat.id, "request_id": asked.request_id}
    ]
    assert audited(rt, "seat.extended") == 1
    with rt.db.read() as s:
        closed = s.get(LicenseRequest, asked.request_id)
    assert closed is not None and closed.status == "approved"

    clock.advance(timedelta(days=3))  # past the old end: nothing ends
    with rt.db.transaction() as s:
        assert expiry.scan(s, rt, now=clock.now()).expired == 0
    clock.advance(timedelta(days=6))  # 3 days before the new end
    with rt.db.transaction() as s:
        assert expiry.scan(s, rt, now=clock.now()).warned == 1


def test_an_extension_approved_after_the_seat_ended_is_a_new_seat(
    rt: Runtime, clock: ManualClock
) -> None:
    grant_trial(rt)
    (seat,) = seats_of(rt, "trial")
    assert seat.id is not None
    clock.advance(timedelta(days=8))
    asked = expiry.request_extension(rt, actor=EMPLOYEE, assignment_id=seat.id)
    clock.advance(timedelta(days=2))
    jobs.JOBS["expiry"].run(rt, clock.now())
    with pytest.raises(Conflict):  # ended: nothing left to extend
        expiry.request_extension(rt, actor=EMPLOYEE, assignment_id=seat.id)
    approvals.decide(rt, request_id=asked.request_id, step=0, actor=MANAGER, approve=True)
    ended, fresh = seats_of(rt, "trial")
    assert ended.release_reason == "expired" and fresh.released_at is None
    assert utc(fresh.expires_at) == clock.now() + timedelta(days=10)


def test_a_seat_that_does_not_expire_cannot_be_extended(rt: Runtime) -> None:
    requests.submit(rt, asked_by=EMPLOYEE, product_id="forever", justification="")
    (seat,) = seats_of(rt, "forever")
    assert seat.id is not None
    with pytest.raises(Conflict, match="does not expire"):
        expiry.request_extension(rt, actor=EMPLOYEE, assignment_id=seat.id)
    # Nor may an extension be asked for a seat someone does not hold.
    with pytest.raises(Conflict, match="nothing to extend"):
        requests.submit(
            rt, asked_by=NEWHIRE, product_id="forever", justification="", extends_seat=seat.id
        )
