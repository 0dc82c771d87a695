"""The weekly IT digest: per-product figures, confidence, once a week, constant SQL shape."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlmodel import Session, select

from bot import catalog, digest, digest_chart, jobs, usage
from bot.clock import ManualClock
from bot.runtime import Policy, Runtime
from storage.models import (
    AccessReview,
    Assignment,
    LicenseRequest,
    OutboxMessage,
    Product,
    UsageSignal,
)
from tests.company import EMPLOYEE, IT1, IT2, MANAGER, NEWHIRE, ORPHAN
from tests.conftest import START

IN_30_DAYS = (START + timedelta(days=30)).date()
IN_90_DAYS = (START + timedelta(days=90)).date()
CATALOG = f"""
products:
  - {{id: design, name: Design Pro, delivery: seat, seats: 2, cost_per_seat: 144, approval: [],
     reclaim_after_days: 30, reclaim_grace_days: 7, renewal_date: {IN_30_DAYS}}}
  - {{id: notes, name: Notes, delivery: seat, seats: 5, cost_per_seat: 10, approval: [],
     reclaim_after_days: 10, renewal_date: {IN_90_DAYS}}}
  - {{id: chat, name: Chat Plus, delivery: seat, seats: 10, cost_per_seat: 50, approval: [],
     reclaim_after_days: 10}}
  - {{id: retired, name: Retired Tool, delivery: seat, seats: 3, cost_per_seat: 1, approval: []}}
"""


def ago(days: float) -> datetime:
    return START - timedelta(days=days)


def seat(
    product: str,
    user: str,
    assigned_days_ago: float,
    *,
    released_days_ago: float | None = None,
    reason: str = "",
    nudged_days_ago: float | None = None,
) -> Assignment:
    return Assignment(
        product_id=product,
        user_id=user,
        assigned_at=ago(assigned_days_ago),
        released_at=ago(released_days_ago) if released_days_ago is not None else None,
        release_reason=reason,
        nudged_at=ago(nudged_days_ago) if nudged_days_ago is not None else None,
    )


def signal(product: str, user: str, days_ago: float) -> UsageSignal:
    return UsageSignal(
        product_id=product, user_id=user, last_used_at=ago(days_ago), source="csv", updated_at=START
    )


def record(session: Session, *signals: UsageSignal) -> None:
    """Signals through the bot's own upsert, which also moves the held seats' last use."""
    session.flush()
    usage.upsert_signals(
        session,
        {(u.product_id, u.user_id): u.last_used_at for u in signals},
        source="csv",
        now=START,
    )


def request(product: str, user: str, status: str, created_days_ago: float) -> LicenseRequest:
    return LicenseRequest(
        product_id=product,
        requester_id=user,
        requested_by=user,
        status=status,
        route=[],
        created_at=ago(created_days_ago),
        updated_at=ago(created_days_ago),
        waitlisted_at=ago(created_days_ago) if status == "waitlisted" else None,
    )


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    catalog.load_catalog(runtime, CATALOG, actor="test")
    with runtime.db.transaction() as s:
        retired = s.get(Product, "retired")
        assert retired is not None
        retired.active = False  # IT retired it; nobody holds it
        s.add(retired)
        s.add_all(
            [
                # design (30-day window, 2 bought, 4 held: over-assigned by 2)
                seat("design", EMPLOYEE, 40, nudged_days_ago=10),  # never used: idle, nudged
                seat("design", MANAGER, 40),  # used 5 days ago: active
                seat("design", NEWHIRE, 5),  # new, not seen in use yet: not idle yet
                seat("design", IT1, 40),  # last used 35 days ago: idle
                seat("design", IT2, 60, released_days_ago=3, reason="reclaimed"),  # this week
                seat("design", ORPHAN, 60, released_days_ago=10, reason="released"),  # last week
                # notes: nobody's use is known at all: unknown, never idle
                seat("notes", EMPLOYEE, 40),
                seat("notes", MANAGER, 2),
                seat("notes", IT2, 50, released_days_ago=1, reason="offboarded"),
                # chat: one active seat
                seat("chat", EMPLOYEE, 100),
            ]
        )
        record(
            s,
            signal("design", MANAGER, 5),
            signal("design", IT1, 35),
            signal("chat", EMPLOYEE, 1),
            signal("chat", ORPHAN, 1),  # a signal without a seat still says data flows
        )
        s.add_all(
            [
                request("design", ORPHAN, "waitlisted", 4),
                request("design", IT2, "waitlisted", 2),
                request("chat", ORPHAN, "pending", 3),  # pending for 72 h
                request("notes", ORPHAN, "pending", 1),  # only 24 h
                request("design", NEWHIRE, "approved", 20),
            ]
        )
        s.add(AccessReview(product_id="design", started_by="licensebot", started_at=ago(10)))
        s.add(
            AccessReview(
                product_id="chat", started_by="licensebot", started_at=ago(40), closed_at=ago(30)
            )
        )
    return runtime


def figures(d: digest.Digest) -> dict[str, digest.ProductFigures]:
    return {p.product_id: p for p in d.products}


def test_per_product_figures(rt: Runtime) -> None:
    d = digest.report(rt, START)
    by_id = figures(d)
    assert set(by_id) == {"design", "notes", "chat"}  # retired and empty: left out

    design = by_id["design"]
    assert (design.bought, design.assigned, design.active, design.idle, design.new) == (
        2,
        4,
        1,
        2,
        1,
    )
    assert design.no_data == 0 and design.has_usage_data
    assert design.idle_cost == Decimal("288.00")
    assert design.waitlist == 2
    assert design.over_assigned == 2
    assert design.reclaimed_this_week == 1 and design.saved_this_week == Decimal("144.00")
    assert design.reclaimable == 1  # nudged 10 days ago, grace 7, no answer
    assert design.open_reviews == 1

    # No usage signal at all for notes: its seats are unknown, not idle, whatever their age.
    notes = by_id["notes"]
    assert (notes.assigned, notes.active, notes.idle, notes.new, notes.no_data) == (2, 0, 0, 0, 2)
    assert not notes.has_usage_data and notes.idle_cost == 0
    assert notes.reclaimed_this_week == 1 and notes.saved_this_week == Decimal("10.00")

    chat = by_id["chat"]
    assert (chat.assigned, chat.active, chat.idle, chat.no_data, chat.over_assigned) == (
        1,
        1,
        0,
        0,
        0,
    )

    t = d.totals
    assert (t.products, t.bought, t.assigned, t.active, t.idle, t.new, t.no_data) == (
        3,
        17,
        7,
        2,
        2,
        1,
        2,
    )
    assert t.no_data_products == 1
    assert t.idle_cost == Decimal("288.00") and t.saved_this_week == Decimal("154.00")
    assert t.reclaimed_this_week == 2 and t.waitlist == 2 and t.reclaimable == 1

    assert d.products[0].product_id == "design"  # highest idle cost first
    assert [p.product_id for p in d.over_assigned] == ["design"]
    assert d.pending_count == 1
    assert [(r.product_id, r.requester_id) for r in d.pending_oldest] == [("chat", ORPHAN)]
    assert [(r.product_id, r.days_left) for r in d.renewals] == [("design", 30)]
    assert [(r.product_id, r.open_reviews) for r in d.reviews] == [("design", 1)]


def test_a_keep_answer_is_usage(rt: Runtime) -> None:
    # notes had no signal at all; one Keep (a usage signal from source keep) makes its data
    # known, so the other, older seat becomes idle instead of unknown.
    with rt.db.transaction() as s:
        usage.upsert_signals(s, {("notes", MANAGER): ago(1)}, source="keep", now=START)
    notes = figures(digest.report(rt, START))["notes"]
    assert (notes.active, notes.idle, notes.no_data) == (1, 1, 0)


def test_csv_has_every_product_and_its_figures(rt: Runtime) -> None:
    d = digest.report(rt, START)
    rows = list(csv.DictReader(io.StringIO(digest.to_csv(d).decode())))
    assert [r["product_id"] for r in rows] == [p.product_id for p in d.products]
    assert tuple(rows[0]) == digest.CSV_COLUMNS
    design = next(r for r in rows if r["product_id"] == "design")
    assert design["idle"] == "2" and design["idle_cost_yearly"] == "288.00"
    assert design["over_assigned"] == "2" and design["renewal_date"] == "2026-12-02"
    notes = next(r for r in rows if r["product_id"] == "notes")
    assert notes["usage_data"] == "no" and notes["no_usage_data"] == "2"


def test_a_formula_in_a_product_name_stays_text_in_the_csv(rt: Runtime) -> None:
    catalog.load_catalog(
        rt,
        "products:\n  - {id: evil, name: '=HYPERLINK(\"x\")', delivery: seat, seats: 1,"
        " approval: []}\n",
        actor="test",
    )
    text = digest.to_csv(digest.report(rt, START)).decode()
    assert "'=HYPERLINK" in text


def test_the_job_queues_one_digest_per_week(rt: Runtime, clock: ManualClock) -> None:
    rt.policy = Policy(timezone="Europe/Paris", digest_cron="30 8 * * mon")
    assert jobs.JOBS["digest"].schedule(rt.policy) == "30 8 * * mon"

    def queued() -> list[tuple[str, Any]]:
        with rt.db.read() as s:
            rows = s.exec(
                select(OutboxMessage).where(
                    OutboxMessage.kind.in_(["it_digest", "it_digest_files"])  # type: ignore[attr-defined]
                )
            ).all()
        return [(r.kind, r.payload["as_of"]) for r in rows]

    assert jobs.JOBS["digest"].run(rt, clock.now()) is True
    assert jobs.JOBS["digest"].run(rt, clock.now()) is False  # same week: nothing new
    clock.advance(timedelta(days=3))
    assert jobs.JOBS["digest"].run(rt, clock.now()) is False  # still the same ISO week
    assert queued() == [("it_digest", START.isoformat()), ("it_digest_files", START.isoformat())]
    clock.advance(timedelta(days=4))
    assert jobs.JOBS["digest"].run(rt, clock.now()) is True
    assert len(queued()) == 4


def test_the_week_is_the_one_where_it_lives() -> None:
    # Sunday 23:30 UTC is already Monday in Paris: the next ISO week there.
    sunday_night = datetime.fromisoformat("2026-11-08T23:30:00+00:00")
    assert digest.week_of(sunday_night, "UTC") == "2026-W45"
    assert digest.week_of(sunday_night, "Europe/Paris") == "2026-W46"


def test_the_chart_shows_the_top_products_and_sums_the_rest(rt: Runtime) -> None:
    d = digest.report(rt, START)
    drawn = digest_chart.bars(d.products, top=2)
    assert [b.label for b in drawn] == ["Design Pro", "Notes", "others (1 products)"]
    assert (drawn[0].active, drawn[0].new, drawn[0].idle, drawn[0].no_data) == (1, 1, 2, 0)
    assert drawn[1].no_data == 2
    assert drawn[2].active == 1
    png = digest_chart.chart_png(d)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # A name the font cannot draw still gives a chart (warnings are errors in the tests).
    emoji = replace(d, products=[replace(d.products[0], name="Design 🧾 デザイン")])
    assert digest_chart.chart_png(emoji).startswith(b"\x89PNG")


# -- scale: the same statements for 5 products or 500 ----------------------------------------


def add_products(rt: Runtime, count: int, *, first: int = 0, seats_each: int = 4) -> None:
    """``count`` products, each with held seats (used, idle, never) and a waiting request,
    written with core inserts (fast for hundreds of rows)."""
    products = [
        {
            "id": f"p{n:04d}",
            "name": f"Product {n}",
            "vendor": "Vendor",
            "delivery": "seat",
            "seats": seats_each - 1 if n % 7 == 0 else seats_each,
            "cost_per_seat": Decimal(10 + n % 90),
            "renewal_date": date(2026, 12, 1) if n % 50 == 0 else None,
            "approval": [],
            "reclaim_after_days": 30 if n % 2 else 10,
            "updated_at": START,
        }
        for n in range(first, first + count)
    ]
    seats = [
        {
            "product_id": f"p{n:04d}",
            "user_id": f"U{n:04d}{k:03d}",
            "assigned_at": ago(40 - k),
            "release_reason": "",
        }
        for n in range(first, first + count)
        for k in range(seats_each)
    ]
    signals = [
        {
            "product_id": f"p{n:04d}",
            "user_id": f"U{n:04d}{k:03d}",
            "last_used_at": ago(k * 12),
            "source": "csv",
            "updated_at": START,
        }
        for n in range(first, first + count)
        if n % 5  # every fifth product has no usage source at all
        for k in range(seats_each - 1)
    ]
    with rt.db.transaction() as s:
        s.execute(insert(Product), products)
        s.execute(insert(Assignment), seats)
        s.execute(insert(UsageSignal), signals)
        s.add_all(
            request(f"p{n:04d}", "UWAIT0001", "waitlisted", 1)
            for n in range(first, first + count, 3)
        )
        s.add_all(
            request(f"p{n:04d}", "UWAIT0002", "pending", 5) for n in range(first, first + count, 4)
        )


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


def test_the_digest_issues_the_same_statements_for_5_or_500_products(runtime: Runtime) -> None:
    add_products(runtime, 5)
    with counted_statements(runtime) as small:
        assert digest.report(runtime, START).totals.products == 5
    add_products(runtime, 495, first=5)
    with counted_statements(runtime) as large:
        d = digest.report(runtime, START)
    assert d.totals.products == 500 and d.totals.assigned == 2000
    assert d.totals.no_data_products == 100  # every fifth product: unknown, not idle
    assert len(small) == len(large), (small, large)
    # Every statement is an aggregate or a bounded read, never one per product or seat.
    assert len(large) <= 20
