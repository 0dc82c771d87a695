"""Renewals: 60/30/7-day notices once each, and the seat figures IT renews on."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, col, select

from bot import catalog, jobs, renewals, usage
from bot.clock import ManualClock
from bot.runtime import Runtime
from storage.models import (
    Assignment,
    AuditEntry,
    LicenseRequest,
    OutboxMessage,
    Product,
    RenewalNotice,
    UsageSignal,
)
from tests.conftest import START

TODAY = START.date()


def in_days(days: int) -> str:
    return (TODAY + timedelta(days=days)).isoformat()


CATALOG = f"""
products:
  - {{id: design, name: Design Pro, vendor: Acme, delivery: seat, seats: 10, cost_per_seat: 144,
     approval: [], renewal_date: {in_days(20)}}}
  - {{id: notes, name: Notes, delivery: seat, seats: 5, cost_per_seat: 10, approval: [],
     renewal_date: {in_days(65)}}}
  - {{id: nodate, name: No Date, delivery: seat, seats: 5, cost_per_seat: 10, approval: []}}
  - {{id: retired, name: Retired, delivery: seat, seats: 5, cost_per_seat: 10, approval: [],
     renewal_date: {in_days(10)}}}
  - {{id: lapsed, name: Lapsed, delivery: seat, seats: 5, cost_per_seat: 10, approval: [],
     renewal_date: {in_days(-1)}}}
"""


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    catalog.load_catalog(runtime, CATALOG, actor="test")
    with runtime.db.transaction() as s:
        retired = s.get(Product, "retired")
        assert retired is not None
        retired.active = False
        s.add(retired)
    return runtime


def seat(
    user: str, assigned: int, released: int | None = None, product: str = "design"
) -> Assignment:
    return Assignment(
        product_id=product,
        user_id=user,
        assigned_at=START - timedelta(days=assigned),
        released_at=None if released is None else START - timedelta(days=released),
    )


def used(user: str, days: int, product: str = "design") -> UsageSignal:
    return UsageSignal(
        product_id=product,
        user_id=user,
        last_used_at=START - timedelta(days=days),
        source="csv",
        updated_at=START,
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


def waiting(user: str, status: str = "waitlisted") -> LicenseRequest:
    return LicenseRequest(
        product_id="design",
        requester_id=user,
        requested_by=user,
        status=status,
        created_at=START,
        updated_at=START,
    )


def notices(rt: Runtime) -> list[tuple[str, int]]:
    with rt.db.read() as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "renewal_notice")).all()
    return [(str(r.payload["product_id"]), int(r.payload["days_before"])) for r in rows]


def run(rt: Runtime, clock: ManualClock) -> bool:
    return jobs.JOBS["renewals"].run(rt, clock.now())


def test_each_threshold_is_sent_once_and_only_the_tightest_reached(
    rt: Runtime, clock: ManualClock
) -> None:
    assert run(rt, clock)
    assert not run(rt, clock)  # the same day again: claimed already
    # design is first seen 20 days ahead: the 30-day notice only, not 60 as well.
    assert notices(rt) == [("design", 30)]

    sent_on: list[tuple[str, int, int]] = []
    for day in range(1, 70):
        clock.advance(timedelta(days=1))
        before = len(notices(rt))
        assert run(rt, clock)
        assert not run(rt, clock)
        sent_on += [(p, d, day) for p, d in notices(rt)[before:]]
    # notes renews on day 65: noticed on days 5 (60 left), 35 (30 left) and 58 (7 left).
    assert sent_on == [("notes", 60, 5), ("design", 7, 13), ("notes", 30, 35), ("notes", 7, 58)]
    with rt.db.read() as s:
        stored = s.exec(
            select(RenewalNotice.product_id, RenewalNotice.days_before).order_by(
                col(RenewalNotice.sent_at)
            )
        ).all()
    assert [tuple(r) for r in stored] == [
        ("design", 30),
        ("notes", 60),
        ("design", 7),
        ("notes", 30),
        ("notes", 7),
    ]
    with rt.db.read() as s:
        audited = s.exec(
            select(AuditEntry.details).where(AuditEntry.action == "renewal.noticed")
        ).all()
    assert len(audited) == 5
    assert json.loads(audited[0])["renewal_date"] == in_days(20)


def test_a_new_renewal_date_starts_the_thresholds_again(rt: Runtime, clock: ManualClock) -> None:
    run(rt, clock)
    clock.advance(timedelta(days=1))
    with rt.db.transaction() as s:
        design = s.get(Product, "design")
        assert design is not None
        design.renewal_date = date.fromisoformat(in_days(45))  # renewed: the next term
        s.add(design)
    run(rt, clock)
    assert notices(rt) == [("design", 30), ("design", 60)]


def test_the_figures_on_a_crafted_history(rt: Runtime) -> None:
    with rt.db.transaction() as s:
        s.add_all(
            [
                seat("UA", 200),  # held throughout, used 10 days ago
                seat("UB", 200, released=50),  # released inside the window
                seat("UC", 80, released=40),  # overlaps with the others: the peak
                seat("UD", 60),  # held, last used 45 days ago: not used lately
                seat("UE", 10),  # new: counts as used
                seat("UF", 100, released=95),  # gone before the 90-day window
                seat("UG", 50),  # took UB's seat the instant it was released: no overlap
                waiting("UW1"),
                waiting("UW2"),
                waiting("UP", status="pending"),  # not waiting for a seat yet
            ]
        )
        record(
            s,
            used("UA", 10),
            used("UD", 45),
            used("UB", 5),  # used lately, but their seat is released: not counted
        )
    with rt.db.read() as s:
        figures = renewals.upcoming(s, START)
    assert [f.product_id for f in figures] == ["design"]  # notes is 65 days away
    [f] = figures
    # Held over the window: 2 at its start (UA, UB); +UC at -80 → 3; +UD at -60 → 4;
    # UB→UG at -50 → 4; -UC at -40 → 3; +UE at -10 → 4.
    assert (f.seats_bought, f.seats_assigned, f.used_30_days, f.peak_90_days, f.waitlist) == (
        10,
        4,
        2,
        4,
        2,
    )
    assert (f.buffer, f.recommended) == (1, 7)  # 4 + 2 + max(1, ceil(0.4))
    assert f.yearly_saving == Decimal(3 * 144) and f.extra_cost == 0
    assert f.days_left == 20 and f.renewal_date == TODAY + timedelta(days=20)


def test_the_peak_counts_seats_held_when_the_window_opened(rt: Runtime) -> None:
    with rt.db.transaction() as s:
        s.add_all([seat("UA", 300, released=10), seat("UB", 300, released=20), seat("UC", 5)])
    with rt.db.read() as s:
        [f] = renewals.upcoming(s, START)
    assert f.peak_90_days == 2 and f.seats_assigned == 1 and f.used_30_days == 1


@pytest.mark.parametrize(
    ("bought", "peak", "waitlist", "expected"),
    [
        (10, 4, 2, (7, 1)),  # peak + waitlist + 1
        (50, 25, 0, (28, 3)),  # buffer: ceil(10% of 25) = 3
        (10, 0, 0, (1, 1)),  # nobody uses it: one seat left
        (2, 2, 0, (2, 1)),  # the buffer alone never buys more than bought
        (2, 2, 1, (3, 1)),  # real demand may
        (2, 5, 0, (5, 1)),  # over-assigned: the peak is real demand
        (0, 0, 0, (0, 1)),
    ],
)
def test_recommendation(bought: int, peak: int, waitlist: int, expected: tuple[int, int]) -> None:
    assert renewals.recommend(bought=bought, peak=peak, waitlist=waitlist) == expected


def test_thresholds() -> None:
    assert [renewals.threshold(d) for d in (-1, 0, 7, 8, 30, 31, 60, 61)] == [
        None,
        7,
        7,
        30,
        30,
        60,
        60,
        None,
    ]


def test_days_are_counted_in_the_configured_time_zone(rt: Runtime, clock: ManualClock) -> None:
    # 09:00 UTC on START is already the next day in Auckland: 19 days left, not 20.
    rt.policy = dataclasses.replace(rt.policy, timezone="Pacific/Auckland")
    clock.advance(timedelta(hours=6))
    with rt.db.read() as s:
        [f] = renewals.upcoming(s, clock.now(), timezone=rt.policy.timezone)
    assert f.days_left == 19


def test_jobs_run_from_the_cli(rt: Runtime, database_url: str, encryption_key: str) -> None:
    from click.testing import CliRunner

    from bot.cli import cli

    env = {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key}
    outputs = [
        CliRunner().invoke(cli, ["jobs", "run", job], env=env).output
        for job in ("renewals", "renewals", "reminders", "reminders")
    ]
    assert outputs == [
        "renewals: done.\n",
        "renewals: already done for this period.\n",
        "reminders: done.\n",  # no period: every run does what is due by then
        "reminders: done.\n",
    ]
