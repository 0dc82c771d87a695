"""Renewals: before a product renews, IT learns how many seats it really needs.

The daily ``renewals`` job posts a notice to IT (``LICENSEBOT_IT_CHANNEL``) for every active
product whose ``renewal_date`` is 60, 30 or 7 days away or less (days counted in
``LICENSEBOT_TIMEZONE``). Each threshold is sent once per product and renewal date
(``renewal_notice``), and only the tightest one reached: a product first seen 20 days before its
renewal gets the 30-day notice, not the 60-day one as well; a renewal date in the past gets
nothing. Moving ``renewal_date`` (the next term) starts the thresholds again.

The figures (``RenewalFigures``), all computed as SQL aggregates as of ``now``:

- **seats bought**: the catalog's ``seats``.
- **seats used in the last 30 days**: distinct people holding a seat now whose last usage signal
  (``usage_signal``) is within the last 30 days, or whose seat was assigned within the last 30
  days (a new seat counts as used).
- **peak use**: the most seats held at the same time in the last 90 days, from the assignments'
  ``assigned_at``/``released_at`` (a running count over assignment and release events; a release
  and an assignment at the same instant do not overlap).
- **waitlist**: the product's requests with status ``waitlisted``.
- **recommended seats**: ``peak + waitlist + buffer``, with ``buffer = max(1, ceil(10% of
  peak))``, but never above ``max(seats bought, peak + waitlist)``: the buffer alone never makes IT
  buy more seats than it has, while real demand (peak and people waiting) may.
- **yearly saving**: ``(seats bought - recommended) * cost_per_seat`` when that is positive;
  when more seats are recommended than bought, ``extra_cost`` is what the missing seats cost.

``upcoming`` lists the same figures for every renewal in the next N days (the weekly digest).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, func, literal, or_, union_all
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot import notifications
from bot.runtime import Runtime
from storage import audit, job_runs
from storage.models import Assignment, LicenseRequest, Product, RenewalNotice

SYSTEM_ACTOR = "licensebot"
JOB_ID = "renewals"
THRESHOLDS = (7, 30, 60)  # days before the renewal date, tightest first
USED_WITHIN = timedelta(days=30)
PEAK_WITHIN = timedelta(days=90)


@dataclass(frozen=True)
class RenewalFigures:
    product_id: str
    product_name: str
    vendor: str
    renewal_date: date
    days_left: int  # from today in LICENSEBOT_TIMEZONE; 0 = renews today
    seats_bought: int
    seats_assigned: int  # held now
    used_30_days: int
    peak_90_days: int
    waitlist: int
    buffer: int
    recommended: int
    cost_per_seat: Decimal  # per year
    yearly_saving: Decimal  # >= 0: (bought - recommended) * cost when positive
    extra_cost: Decimal  # >= 0: (recommended - bought) * cost when more seats are needed


def today(now: datetime, timezone: str = "UTC") -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def threshold(days_left: int) -> int | None:
    """The tightest threshold reached ``days_left`` days before a renewal (None: not yet/past)."""
    if days_left < 0:
        return None
    return next((t for t in THRESHOLDS if days_left <= t), None)


def recommend(*, bought: int, peak: int, waitlist: int) -> tuple[int, int]:
    """(recommended seats, buffer): see the module docstring."""
    buffer = max(1, -(-peak // 10))  # ceil(10% of peak) in integers
    demand = peak + waitlist
    return min(demand + buffer, max(bought, demand)), buffer


def _count_by_product(session: Session, query: Select[str, int]) -> dict[str, int]:
    return {str(pid): int(n or 0) for pid, n in session.execute(query).all()}


def _used(session: Session, ids: list[str], now: datetime) -> dict[str, int]:
    cutoff = now - USED_WITHIN
    # The seat's copy of its holder's usage signal (bot/usage.py keeps it in step). The test
    # is in the count, not the WHERE: the held seats of the products are then one range of
    # ix_assignment_product_last_use, which holds every column read (no table lookups).
    used_lately = and_(
        col(Assignment.assigned_at) <= now,
        or_(col(Assignment.last_used_at) >= cutoff, col(Assignment.assigned_at) >= cutoff),
    )
    query = (
        sa_select(
            col(Assignment.product_id),
            func.count(func.distinct(case((used_lately, col(Assignment.user_id))))),
        )
        .where(col(Assignment.product_id).in_(ids), col(Assignment.released_at).is_(None))
        .group_by(col(Assignment.product_id))
    )
    return _count_by_product(session, query)


def _held(session: Session, ids: list[str], at: datetime) -> dict[str, int]:
    """Seats held at the instant ``at``, per product."""
    query = (
        sa_select(col(Assignment.product_id), func.count())
        .where(
            col(Assignment.product_id).in_(ids),
            col(Assignment.assigned_at) <= at,
            or_(col(Assignment.released_at).is_(None), col(Assignment.released_at) > at),
        )
        .group_by(col(Assignment.product_id))
    )
    return _count_by_product(session, query)


def _peak(session: Session, ids: list[str], now: datetime) -> dict[str, int]:
    """Most seats held at once in the last 90 days: the level when the window opened, or the
    level at any assignment or release event inside it.

    The level at an event is the level at the window's start plus the running count (+1 per
    assignment, -1 per release) of the events since then, so only the window's events are
    read (index ranges on (product_id, assigned_at) and (product_id, released_at)), not every
    seat the product ever had."""
    start = now - PEAK_WITHIN
    events = union_all(
        sa_select(
            col(Assignment.product_id).label("product_id"),
            col(Assignment.assigned_at).label("at"),
            literal(1).label("delta"),
        ).where(
            col(Assignment.product_id).in_(ids),
            col(Assignment.assigned_at) > start,
            col(Assignment.assigned_at) <= now,
        ),
        sa_select(
            col(Assignment.product_id).label("product_id"),
            col(Assignment.released_at).label("at"),
            literal(-1).label("delta"),
        ).where(
            col(Assignment.product_id).in_(ids),
            col(Assignment.released_at) > start,
            col(Assignment.released_at) <= now,
        ),
    ).subquery("seat_event")
    change = (
        func.sum(events.c.delta)
        .over(
            partition_by=events.c.product_id,
            # Releases first at the same instant: a seat handed straight on is not two seats.
            order_by=(events.c.at, events.c.delta),
            rows=(None, 0),
        )
        .label("change")
    )
    running = sa_select(events.c.product_id, change).subquery("running")
    rise = _count_by_product(
        session,
        sa_select(running.c.product_id, func.max(running.c.change)).group_by(running.c.product_id),
    )
    at_start = _held(session, ids, start)
    return {pid: at_start.get(pid, 0) + max(rise.get(pid, 0), 0) for pid in ids}


def _waitlist(session: Session, ids: list[str]) -> dict[str, int]:
    query = (
        sa_select(col(LicenseRequest.product_id), func.count())
        .where(col(LicenseRequest.product_id).in_(ids), col(LicenseRequest.status) == "waitlisted")
        .group_by(col(LicenseRequest.product_id))
    )
    return _count_by_product(session, query)


def figures(
    session: Session, products: list[Product], *, now: datetime, day: date
) -> list[RenewalFigures]:
    """The renewal figures of these products (each must have a ``renewal_date``), in order."""
    ids = [p.id for p in products]
    if not ids:
        return []
    used = _used(session, ids, now)
    held_now = _held(session, ids, now)
    peak = _peak(session, ids, now)
    waiting = _waitlist(session, ids)
    result = []
    for p in products:
        assert p.renewal_date is not None
        recommended, buffer = recommend(
            bought=p.seats, peak=peak.get(p.id, 0), waitlist=waiting.get(p.id, 0)
        )
        cost = Decimal(p.cost_per_seat)
        result.append(
            RenewalFigures(
                product_id=p.id,
                product_name=p.name,
                vendor=p.vendor,
                renewal_date=p.renewal_date,
                days_left=(p.renewal_date - day).days,
                seats_bought=p.seats,
                seats_assigned=held_now.get(p.id, 0),
                used_30_days=used.get(p.id, 0),
                peak_90_days=peak.get(p.id, 0),
                waitlist=waiting.get(p.id, 0),
                buffer=buffer,
                recommended=recommended,
                cost_per_seat=cost,
                yearly_saving=max(p.seats - recommended, 0) * cost,
                extra_cost=max(recommended - p.seats, 0) * cost,
            )
        )
    return result


def _renewing(session: Session, first: date, last: date) -> list[Product]:
    return list(
        session.exec(
            select(Product)
            .where(
                col(Product.active).is_(True),
                col(Product.renewal_date).is_not(None),
                col(Product.renewal_date) >= first,
                col(Product.renewal_date) <= last,
            )
            .order_by(col(Product.renewal_date), col(Product.id))
        ).all()
    )


def upcoming(
    session: Session, now: datetime, within_days: int = 60, *, timezone: str = "UTC"
) -> list[RenewalFigures]:
    """Every active product renewing from today to ``within_days`` days ahead, soonest first,
    with its figures (the digest's "renewals in the next 60 days")."""
    day = today(now, timezone)
    products = _renewing(session, day, day + timedelta(days=within_days))
    return figures(session, products, now=now, day=day)


def product_figures(rt: Runtime, product_id: str) -> RenewalFigures | None:
    """One product's figures as of now (the notice is rendered at send time); None without a
    renewal date."""
    now = rt.clock.now()
    with rt.db.read() as session:
        product = session.get(Product, product_id)
        if product is None or product.renewal_date is None:
            return None
        return figures(session, [product], now=now, day=today(now, rt.policy.timezone))[0]


def notify_due(session: Session, rt: Runtime, *, now: datetime) -> int:
    """Queue a notice for every product that reached a threshold not yet noticed; returns how
    many were queued."""
    day = today(now, rt.policy.timezone)
    products = _renewing(session, day, day + timedelta(days=max(THRESHOLDS)))
    if not products:
        return 0
    sent: dict[tuple[str, date], int] = {}
    for product_id, renewal_date, days_before in session.execute(
        sa_select(
            col(RenewalNotice.product_id),
            col(RenewalNotice.renewal_date),
            col(RenewalNotice.days_before),
        ).where(col(RenewalNotice.product_id).in_([p.id for p in products]))
    ).all():
        key = (product_id, renewal_date)
        sent[key] = min(days_before, sent.get(key, days_before))
    due: list[tuple[Product, int]] = []
    for product in products:
        assert product.renewal_date is not None
        reached = threshold((product.renewal_date - day).days)
        tightest_sent = sent.get((product.id, product.renewal_date))
        if reached is not None and (tightest_sent is None or reached < tightest_sent):
            due.append((product, reached))
    if not due:
        return 0
    numbers = {f.product_id: f for f in figures(session, [p for p, _ in due], now=now, day=day)}
    for product, days_before in due:
        assert product.renewal_date is not None
        session.add(
            RenewalNotice(
                product_id=product.id,
                renewal_date=product.renewal_date,
                days_before=days_before,
                sent_at=now,
            )
        )
        f = numbers[product.id]
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=SYSTEM_ACTOR,
            action="renewal.noticed",
            subject=f"product:{product.id}",
            details={
                "product": product.id,
                "renewal_date": product.renewal_date.isoformat(),
                "days_before": days_before,
                "days_left": f.days_left,
                "seats_bought": f.seats_bought,
                "used_30_days": f.used_30_days,
                "peak_90_days": f.peak_90_days,
                "waitlist": f.waitlist,
                "recommended": f.recommended,
                "yearly_saving": str(f.yearly_saving),
            },
        )
        notifications.queue(
            session,
            notifications.RENEWAL_NOTICE,
            now=now,
            product_id=product.id,
            renewal_date=product.renewal_date.isoformat(),
            days_before=days_before,
        )
    session.flush()
    return len(due)


def run_daily(rt: Runtime, now: datetime) -> bool:
    """The scheduled job: once per day (in LICENSEBOT_TIMEZONE), claimed with its work."""
    with rt.db.transaction() as session:
        if not job_runs.claim(session, JOB_ID, today(now, rt.policy.timezone).isoformat(), now=now):
            return False
        queued = notify_due(session, rt, now=now)
    if queued:
        rt.wake_dispatcher()
    return True
