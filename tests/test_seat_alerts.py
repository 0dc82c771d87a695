"""IT's seat alerts: one message per change of a product's state (ok / low / exhausted)."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from bot import catalog, directory, keys, reclaim, requests
from bot.runtime import Runtime
from bot.seats import import_seats
from storage.models import Assignment, AuditEntry, OutboxMessage, SeatAlert
from tests.company import DIRECTORY, EMPLOYEE, IT1, IT2, MANAGER, NEWHIRE, ORPHAN
from tests.conftest import START

CATALOG = """
products:
  - {id: design, name: Design Pro, delivery: seat, seats: SEATS, approval: [],
     min_free_seats: LOW}
  - {id: editor, name: Editor, delivery: key, seats: 5, approval: [], min_free_seats: 1}
"""


def load(rt: Runtime, seats: int = 2, low: int = 1) -> None:
    text = CATALOG.replace("SEATS", str(seats)).replace("LOW", str(low))
    catalog.load_catalog(rt, text, actor="test")


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    load(runtime)
    directory.import_directory(runtime, DIRECTORY, actor="test")
    return runtime


def alerts(rt: Runtime, product_id: str = "design") -> list[str]:
    """The states IT was told about for ``product_id``, in order."""
    with rt.db.read() as s:
        rows = s.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "it_seat_alert")
            .order_by(col(OutboxMessage.id))
        ).all()
    return [str(r.payload["state"]) for r in rows if r.payload["product_id"] == product_id]


def ask(rt: Runtime, user: str, product_id: str = "design") -> str:
    return requests.submit(rt, asked_by=user, product_id=product_id, justification="").status


def give_back(rt: Runtime, user: str, product_id: str = "design") -> None:
    with rt.db.read() as s:
        seat = s.exec(
            select(Assignment.id).where(
                Assignment.user_id == user,
                Assignment.product_id == product_id,
                col(Assignment.released_at).is_(None),
            )
        ).one()
    reclaim.release(rt, actor=user, assignment_id=seat)


def test_falling_below_min_free_seats_alerts_once(rt: Runtime) -> None:
    load(rt, seats=3)
    assert ask(rt, EMPLOYEE) == "approved"  # 2 free
    assert alerts(rt) == []
    assert ask(rt, MANAGER) == "approved"  # 1 free: at the threshold, not below
    assert alerts(rt) == []
    assert ask(rt, NEWHIRE) == "approved"  # 0 free: below
    assert alerts(rt) == ["low"]
    with rt.db.read() as s:
        (payload,) = [
            m.payload
            for m in s.exec(select(OutboxMessage).where(OutboxMessage.kind == "it_seat_alert"))
            if m.payload["product_id"] == "design"
        ]
        row = s.get(SeatAlert, "design")
        entry = s.exec(
            select(AuditEntry).where(
                AuditEntry.action == "seats.alert", AuditEntry.product_id == "design"
            )
        ).one()
    assert payload == {
        "product_id": "design",
        "product_name": "Design Pro",
        "delivery": "seat",
        "state": "low",
        "previous": "ok",
        "seats": 3,
        "taken": 3,
        "free": 0,
        "waiting": 0,
        "min_free_seats": 1,
    }
    assert row is not None and row.state == "low"
    assert entry.subject == "product:design" and '"state":"low"' in entry.details


def test_a_second_assignment_in_the_same_state_does_not_alert_again(rt: Runtime) -> None:
    load(rt, seats=4, low=2)
    for user in (EMPLOYEE, MANAGER, NEWHIRE):
        ask(rt, user)
    assert alerts(rt) == ["low"]  # 1 free, below 2
    ask(rt, ORPHAN)  # still low (0 free)
    assert alerts(rt) == ["low"]


def test_waiting_with_no_seat_alerts_exhausted_once(rt: Runtime) -> None:
    ask(rt, EMPLOYEE)
    ask(rt, MANAGER)
    assert alerts(rt) == ["low"]
    assert ask(rt, NEWHIRE) == "waitlisted"
    assert ask(rt, ORPHAN) == "waitlisted"
    assert alerts(rt) == ["low", "exhausted"]
    with rt.db.read() as s:
        kinds = [m.kind for m in s.exec(select(OutboxMessage)).all()]
    # The per-request "out of stock" notice is replaced by the one alert per product.
    assert "it_out_of_stock" not in kinds and kinds.count("request_waitlisted") == 2


def test_freeing_seats_resets_the_state_and_a_later_drop_alerts_again(rt: Runtime) -> None:
    for user in (EMPLOYEE, MANAGER, NEWHIRE, ORPHAN):
        ask(rt, user)  # two hold, two wait
    assert alerts(rt) == ["low", "exhausted"]
    give_back(rt, EMPLOYEE)  # the seat goes to NEWHIRE; ORPHAN still waits: no flapping
    assert alerts(rt) == ["low", "exhausted"]
    give_back(rt, MANAGER)  # ORPHAN served: nobody waits, nothing free
    assert alerts(rt) == ["low", "exhausted", "low"]
    give_back(rt, NEWHIRE)  # 1 free: back to normal
    assert alerts(rt) == ["low", "exhausted", "low", "ok"]
    give_back(rt, ORPHAN)  # 2 free: still ok, nothing said
    assert alerts(rt) == ["low", "exhausted", "low", "ok"]
    ask(rt, IT1)
    ask(rt, IT2)  # 0 free again
    assert alerts(rt) == ["low", "exhausted", "low", "ok", "low"]


def test_key_products_count_free_keys_too(rt: Runtime) -> None:
    # Loaded with five seats and no keys: nothing can be handed out.
    assert alerts(rt, "editor") == ["low"]
    keys.import_keys(rt, "editor", ["ED-KEY-0001", "ED-KEY-0002"], actor="test")
    assert alerts(rt, "editor") == ["low", "ok"]
    ask(rt, EMPLOYEE, "editor")
    ask(rt, MANAGER, "editor")  # 3 seats open, but no key: 0 free
    assert alerts(rt, "editor") == ["low", "ok", "low"]
    assert ask(rt, NEWHIRE, "editor") == "waitlisted"
    assert alerts(rt, "editor") == ["low", "ok", "low", "exhausted"]
    keys.import_keys(rt, "editor", ["ED-KEY-0003", "ED-KEY-0004"], actor="test")
    # NEWHIRE got a key and one is left over: back to normal in one step.
    assert alerts(rt, "editor") == ["low", "ok", "low", "exhausted", "ok"]


def test_more_seats_in_the_catalog_serve_the_queue_and_reset_the_state(rt: Runtime) -> None:
    for user in (EMPLOYEE, MANAGER, NEWHIRE):
        ask(rt, user)
    assert alerts(rt) == ["low", "exhausted"]
    load(rt, seats=4)
    with rt.db.read() as s:
        holders = s.exec(
            select(Assignment.user_id).where(
                Assignment.product_id == "design", col(Assignment.released_at).is_(None)
            )
        ).all()
    assert sorted(holders) == sorted([EMPLOYEE, MANAGER, NEWHIRE])  # the one waiting got it
    assert alerts(rt) == ["low", "exhausted", "ok"]
    load(rt, seats=3)  # fewer seats bought: 0 free
    assert alerts(rt) == ["low", "exhausted", "ok", "low"]


def test_imported_seats_count(rt: Runtime) -> None:
    import_seats(
        rt,
        "product_id,slack_user_id,assigned_at\n"
        f"design,{EMPLOYEE},{START.isoformat()}\ndesign,{IT1},{START.isoformat()}\n",
        actor="test",
    )
    assert alerts(rt) == ["low"]
