"""A held seat's last use (assignment.last_used_at) stays a copy of its holder's usage signal.

The reclaim scans, the digest and the renewal figures read the seat's column instead of joining
usage_signal, so every way a signal moves must move the seat too, and nothing may move it back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlmodel import select

from bot import catalog, delivery, directory, reclaim, requests, usage
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.seats import import_seats
from bot.usage import UsageRow, record_usage
from storage.models import Assignment, UsageSignal
from tests import company
from tests.company import DIRECTORY, EMPLOYEE, IT1, MANAGER, NEWHIRE, ORPHAN
from tests.conftest import START

CATALOG = """
products:
  - {id: design, name: Design Pro, delivery: seat, seats: 5, cost_per_seat: 144, approval: [],
     reclaim_after_days: 30, reclaim_grace_days: 7}
"""


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(tzinfo=UTC) if at.tzinfo is None else at


def seat_use(rt: Runtime, user: str, product: str = "design") -> dict[int, datetime | None]:
    """Every seat (held or not) of ``user`` on ``product``: id -> last_used_at."""
    with rt.db.read() as s:
        seats = s.exec(
            select(Assignment).where(Assignment.product_id == product, Assignment.user_id == user)
        ).all()
    return {a.id or 0: _utc(a.last_used_at) for a in seats}


def signal_of(rt: Runtime, user: str, product: str = "design") -> datetime | None:
    with rt.db.read() as s:
        found = s.get(UsageSignal, (product, user))
    return _utc(found.last_used_at) if found else None


def row(user: str, at: datetime) -> UsageRow:
    return UsageRow("item 0", "design", user, at.isoformat())


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    catalog.load_catalog(runtime, CATALOG, actor="test")
    directory.import_directory(runtime, DIRECTORY, actor="test")
    return runtime


def test_an_import_or_api_signal_moves_the_held_seat_and_an_older_one_never_back(
    rt: Runtime,
) -> None:
    import_seats(
        rt,
        f"product_id,slack_user_id,assigned_at\ndesign,{EMPLOYEE},"
        f"{(START - timedelta(days=40)).isoformat()}\n",
        actor="test",
    )
    assert list(seat_use(rt, EMPLOYEE).values()) == [None]  # never seen in use
    recent = START - timedelta(days=2)
    record_usage(rt, [row(EMPLOYEE, recent)], source="csv", actor="test")
    assert list(seat_use(rt, EMPLOYEE).values()) == [recent]
    record_usage(rt, [row(EMPLOYEE, START - timedelta(days=20))], source="api", actor="test")
    assert list(seat_use(rt, EMPLOYEE).values()) == [recent] == [signal_of(rt, EMPLOYEE)]
    newest = START - timedelta(hours=1)
    record_usage(rt, [row(EMPLOYEE, newest)], source="api", actor="test")
    assert list(seat_use(rt, EMPLOYEE).values()) == [newest] == [signal_of(rt, EMPLOYEE)]


def test_keep_moves_the_seat_and_the_scan_then_sees_it_in_use(
    rt: Runtime, clock: ManualClock
) -> None:
    import_seats(
        rt,
        f"product_id,slack_user_id,assigned_at\ndesign,{EMPLOYEE},"
        f"{(START - timedelta(days=40)).isoformat()}\n",
        actor="test",
    )
    [mine] = seat_use(rt, EMPLOYEE)
    with rt.db.transaction() as s:
        assert reclaim.scan(s, rt, now=clock.now()).nudged == 1
    clock.advance(timedelta(hours=1))
    reclaim.keep(rt, actor=EMPLOYEE, assignment_id=mine)
    assert seat_use(rt, EMPLOYEE) == {mine: clock.now()}
    view = reclaim.seat_view(rt, mine)
    assert view is not None and view.last_used_at == clock.now()


def test_a_reveal_moves_the_key_seat(runtime: Runtime, clock: ManualClock) -> None:
    company.seed(runtime)
    with runtime.db.transaction() as s:
        key_id = delivery.free_key_id(s, "sublime")
        held = Assignment(
            product_id="sublime", user_id=EMPLOYEE, key_id=key_id, assigned_at=clock.now()
        )
        s.add(held)
        s.flush()
        assignment_id = held.id
    assert assignment_id is not None
    clock.advance(timedelta(days=3))
    delivery.reveal_key(runtime, actor=EMPLOYEE, assignment_id=assignment_id)
    assert seat_use(runtime, EMPLOYEE, "sublime") == {assignment_id: clock.now()}
    later = clock.now()
    clock.advance(timedelta(days=-1))  # another process with an older clock reading
    delivery.reveal_key(runtime, actor=EMPLOYEE, assignment_id=assignment_id)
    assert seat_use(runtime, EMPLOYEE, "sublime") == {assignment_id: later}


def test_new_seats_start_with_the_known_use_and_released_seats_keep_theirs(
    rt: Runtime, clock: ManualClock
) -> None:
    used = START - timedelta(days=50)
    record_usage(
        rt, [row(NEWHIRE, used), row(MANAGER, used), row(IT1, used)], source="csv", actor="t"
    )
    # Imported seat: starts with the holder's signal (older than the seat: the seat is idle,
    # exactly as the join with usage_signal said before).
    import_seats(
        rt,
        f"product_id,slack_user_id,assigned_at\ndesign,{NEWHIRE},"
        f"{(START - timedelta(days=1)).isoformat()}\n"
        f"design,{IT1},{(START - timedelta(days=60)).isoformat()}\n",
        actor="test",
    )
    assert list(seat_use(rt, NEWHIRE).values()) == [used]
    # A seat handed out on request starts with it too.
    requests.submit(rt, asked_by=MANAGER, product_id="design", justification="")
    assert list(seat_use(rt, MANAGER).values()) == [used]
    # Somebody without a signal starts with none.
    requests.submit(rt, asked_by=ORPHAN, product_id="design", justification="")
    assert list(seat_use(rt, ORPHAN).values()) == [None]
    # A released seat no longer follows its former holder's use.
    [it_seat] = seat_use(rt, IT1)
    reclaim.release(rt, actor=IT1, assignment_id=it_seat)
    record_usage(rt, [row(IT1, START - timedelta(days=1))], source="api", actor="t")
    assert seat_use(rt, IT1) == {it_seat: used}


def test_copy_to_seats_is_one_statement_per_batch(rt: Runtime) -> None:
    # Set-based: the seats of many signals move in one UPDATE, not one per seat.
    people = [EMPLOYEE, MANAGER, NEWHIRE, IT1]
    at = (START - timedelta(days=40)).isoformat()
    import_seats(
        rt,
        "product_id,slack_user_id,assigned_at\n"
        + "".join(f"design,{p},{at}\n" for p in people[:3]),
        actor="test",
    )
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", seen)
    try:
        with rt.db.transaction() as s:
            usage.upsert_signals(
                s,
                {("design", p): START - timedelta(days=1) for p in people},
                source="api",
                now=START,
            )
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", seen)
    assert sum(st.lstrip().upper().startswith("UPDATE ASSIGNMENT") for st in statements) == 1
    for p in people[:3]:
        assert list(seat_use(rt, p).values()) == [START - timedelta(days=1)]
