"""The weekly IT digest: what every product's seats cost, who uses them, and what needs IT.

Figures per product, as of ``now``:

- **bought**: ``product.seats`` (the catalog's count of seats or keys paid for).
- **assigned**: seats held now (assignments not released).
- **active**: held seats whose last use (a usage signal for that holder and product; a "Keep"
  answer records one) is within the product's ``reclaim_after_days``.
- **idle**: held seats whose last use is older than that window, or never used since an
  assignment older than that window: exactly the seats the reclaim job nudges about.
- **new**: held seats assigned within the window and not seen in use yet (not idle *yet*).
- **no usage data**: every held seat of a product for which no usage signal exists at all, for
  anyone. Nothing feeds that product's use (no CSV, API, connector, reveal or Keep), so its
  seats are reported as *unknown*, with a confidence line, never as idle. Their active, idle and
  new counts are 0.
- **idle cost**: idle x ``cost_per_seat`` (a yearly price).
- **waitlist**: requests waiting for a seat (status ``waitlisted``).
- **reclaimable**: nudges left unanswered past their grace on products not reclaimed
  automatically (``reclaim.reclaimable_counts``): IT decides.
- **reclaimed this week**: seats given back in the 7 days up to ``now`` (reclaimed, released,
  offboarded, expired or revoked); **saved** is their yearly cost.
- **over-assigned**: assigned > bought, a compliance risk.

Plus: requests pending approval for more than 48 hours, renewals in the next 60 days (with
``renewals.upcoming``'s right-sizing figures) and access reviews not finished. Every figure is
an SQL aggregate (``GROUP BY``): ``build`` issues the same handful of statements for 5 products
or 500, for 100 assignments or 1,000,000.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from bot import notifications, reclaim, renewals
from bot.clock import utc
from bot.runtime import Runtime
from storage import job_runs
from storage.db import in_slices
from storage.models import AccessReview, Assignment, LicenseRequest, Product, UsageSignal

JOB_ID = "digest"
WEEK = timedelta(days=7)
PENDING_AFTER = timedelta(hours=48)
RENEWAL_HORIZON_DAYS = 60
OLDEST_PENDING_SHOWN = 5
# The ways a seat comes back that count as "reclaimed this week" (money no longer spent).
GIVEN_BACK = ("reclaimed", "released", "offboarded", "expired", "revoked")


@dataclass(frozen=True)
class ProductFigures:
    product_id: str
    name: str
    vendor: str
    bought: int
    assigned: int
    active: int
    idle: int
    new: int
    no_data: int
    has_usage_data: bool
    cost_per_seat: Decimal  # per year
    waitlist: int
    reclaimable: int
    reclaimed_this_week: int
    renewal_date: date | None
    open_reviews: int

    @property
    def idle_cost(self) -> Decimal:
        return self.cost_per_seat * self.idle

    @property
    def saved_this_week(self) -> Decimal:
        return self.cost_per_seat * self.reclaimed_this_week

    @property
    def over_assigned(self) -> int:
        return max(self.assigned - self.bought, 0)


@dataclass(frozen=True)
class Totals:
    products: int
    bought: int
    assigned: int
    active: int
    idle: int
    new: int
    no_data: int
    no_data_products: int
    idle_cost: Decimal
    waitlist: int
    reclaimable: int
    reclaimed_this_week: int
    saved_this_week: Decimal


@dataclass(frozen=True)
class PendingApproval:
    request_id: int
    product_id: str
    product_name: str
    requester_id: str
    created_at: datetime


@dataclass(frozen=True)
class OpenReview:
    product_id: str
    product_name: str
    open_reviews: int
    oldest_started_at: datetime


@dataclass(frozen=True)
class Digest:
    as_of: datetime
    products: list[ProductFigures]  # highest idle cost first
    totals: Totals
    pending_count: int  # pending approval for more than 48 hours
    pending_oldest: list[PendingApproval]  # the oldest few of those
    renewals: list[renewals.RenewalFigures]  # soonest first, with right-sizing figures
    reviews: list[OpenReview]  # oldest first

    @property
    def over_assigned(self) -> list[ProductFigures]:
        return sorted(
            (p for p in self.products if p.over_assigned),
            key=lambda p: (-p.over_assigned, p.product_id),
        )

    @property
    def no_data_products(self) -> list[ProductFigures]:
        return [p for p in self.products if p.no_data]

    @property
    def with_reclaimable(self) -> list[ProductFigures]:
        return sorted(
            (p for p in self.products if p.reclaimable),
            key=lambda p: (-p.reclaimable, p.product_id),
        )


def build(
    session: Session,
    now: datetime,
    *,
    timezone: str = "UTC",
) -> Digest:
    """Every figure of the digest as of ``now``, in a fixed number of SQL statements."""
    has_signal = exists().where(col(UsageSignal.product_id) == col(Product.id))
    products = session.execute(
        sa_select(
            col(Product.id),
            col(Product.name),
            col(Product.vendor),
            col(Product.seats),
            col(Product.cost_per_seat),
            col(Product.renewal_date),
            col(Product.active),
            has_signal.label("has_signal"),
            col(Product.reclaim_after_days),
        ).order_by(col(Product.id))
    ).all()
    held = _held_by_window(session, now, {row[0]: row[-1] for row in products})
    waitlist = _counts(
        session,
        sa_select(col(LicenseRequest.product_id), func.count())
        .where(col(LicenseRequest.status) == "waitlisted")
        .group_by(col(LicenseRequest.product_id)),
    )
    given_back = _counts(
        session,
        sa_select(col(Assignment.product_id), func.count())
        .where(
            col(Assignment.released_at).is_not(None),
            col(Assignment.released_at) > now - WEEK,
            col(Assignment.released_at) <= now,
            col(Assignment.release_reason).in_(GIVEN_BACK),
        )
        .group_by(col(Assignment.product_id)),
    )
    review_rows = session.execute(
        sa_select(
            col(AccessReview.product_id), func.count(), func.min(col(AccessReview.started_at))
        )
        .where(col(AccessReview.closed_at).is_(None))
        .group_by(col(AccessReview.product_id))
    ).all()
    reviews_by_product = {row[0]: (int(row[1]), utc(row[2])) for row in review_rows}
    unanswered = reclaim.reclaimable_counts(session, now)

    figures: list[ProductFigures] = []
    names: dict[str, str] = {}
    for pid, name, vendor, seats, cost, renewal, active, signal, _window in products:
        names[pid] = name
        assigned, active_n, idle_n, new_n = held.get(pid, (0, 0, 0, 0))
        if not active and not assigned:
            continue  # retired and empty: nothing to report
        known = bool(signal)
        figures.append(
            ProductFigures(
                product_id=pid,
                name=name,
                vendor=vendor,
                bought=int(seats),
                assigned=assigned,
                active=active_n if known else 0,
                idle=idle_n if known else 0,
                new=new_n if known else 0,
                no_data=0 if known else assigned,
                has_usage_data=known,
                cost_per_seat=Decimal(cost),
                waitlist=waitlist.get(pid, 0),
                reclaimable=unanswered.get(pid, 0),
                reclaimed_this_week=given_back.get(pid, 0),
                renewal_date=renewal,
                open_reviews=reviews_by_product.get(pid, (0, now))[0],
            )
        )
    figures.sort(key=lambda p: (-p.idle_cost, -p.idle, -p.assigned, p.product_id))

    pending_cutoff = now - PENDING_AFTER
    pending_filter = (
        col(LicenseRequest.status) == "pending",
        col(LicenseRequest.created_at) < pending_cutoff,
    )
    pending_count = int(
        session.execute(sa_select(func.count()).where(*pending_filter)).scalar_one()
    )
    pending_oldest = [
        PendingApproval(int(rid), pid, names.get(pid, pid), requester, utc(created))
        for rid, pid, requester, created in session.execute(
            sa_select(
                col(LicenseRequest.id),
                col(LicenseRequest.product_id),
                col(LicenseRequest.requester_id),
                col(LicenseRequest.created_at),
            )
            .where(*pending_filter)
            .order_by(col(LicenseRequest.created_at), col(LicenseRequest.id))
            .limit(OLDEST_PENDING_SHOWN)
        ).all()
    ]

    return Digest(
        as_of=now,
        products=figures,
        totals=_totals(figures),
        pending_count=pending_count,
        pending_oldest=pending_oldest,
        renewals=renewals.upcoming(session, now, RENEWAL_HORIZON_DAYS, timezone=timezone),
        reviews=sorted(
            (
                OpenReview(pid, names.get(pid, pid), count, oldest)
                for pid, (count, oldest) in reviews_by_product.items()
            ),
            key=lambda r: (r.oldest_started_at, r.product_id),
        ),
    )


def _held_by_window(
    session: Session, now: datetime, window_of: dict[str, int]
) -> dict[str, tuple[int, int, int, int]]:
    """Per product: seats held, and of those active, idle and new within the product's own
    reclaim window (the one reclaim nudges with, so "idle" means the same in both).

    Counted over the held seats with no join (each seat carries its last use); every column
    read is in ix_assignment_product_last_use. PostgreSQL: one parallel scan counting every
    distinct window (a few), each product then reading its own. SQLite counts a row's
    conditions one by one on one core: there one query per window, over its products' index
    ranges only, is twice as fast (1,000,000 seats, three windows: 0.17 s against 0.33 s)."""
    last_used = col(Assignment.last_used_at)
    last_use = func.coalesce(last_used, col(Assignment.assigned_at))

    def counts(days: int) -> list[Any]:
        start = now - timedelta(days=days)
        # COUNT(*) FILTER (WHERE …): a quarter cheaper than SUM(CASE …) on both databases.
        return [
            func.count().filter(and_(last_used.is_not(None), last_used >= start)),
            func.count().filter(last_use < start),
            func.count().filter(and_(last_used.is_(None), col(Assignment.assigned_at) >= start)),
        ]

    def query(*columns: Any) -> Any:
        return (
            sa_select(col(Assignment.product_id), func.count(), *columns)
            .where(col(Assignment.released_at).is_(None))
            .group_by(col(Assignment.product_id))
        )

    windows = sorted(set(window_of.values()))
    held: dict[str, tuple[int, int, int, int]] = {}
    if session.get_bind().dialect.name == "sqlite":
        for days in windows:
            ids = sorted(pid for pid, d in window_of.items() if d == days)
            for part in in_slices(ids):
                statement = query(*counts(days)).where(col(Assignment.product_id).in_(part))
                for pid, n, active, idle, new in session.execute(statement).all():
                    held[pid] = (int(n), int(active), int(idle), int(new))
        return held
    every = [c for days in windows for c in counts(days)]
    for pid, n, *found in session.execute(query(*every)).all():
        at = 3 * windows.index(window_of[pid])
        active, idle, new = (int(v) for v in found[at : at + 3])
        held[pid] = (int(n), active, idle, new)
    return held


def _counts(session: Session, statement: Any) -> dict[str, int]:
    return {pid: int(n) for pid, n in session.execute(statement).all()}


def _totals(figures: Sequence[ProductFigures]) -> Totals:
    return Totals(
        products=len(figures),
        bought=sum(p.bought for p in figures),
        assigned=sum(p.assigned for p in figures),
        active=sum(p.active for p in figures),
        idle=sum(p.idle for p in figures),
        new=sum(p.new for p in figures),
        no_data=sum(p.no_data for p in figures),
        no_data_products=sum(1 for p in figures if p.no_data),
        idle_cost=sum((p.idle_cost for p in figures), Decimal(0)),
        waitlist=sum(p.waitlist for p in figures),
        reclaimable=sum(p.reclaimable for p in figures),
        reclaimed_this_week=sum(p.reclaimed_this_week for p in figures),
        saved_this_week=sum((p.saved_this_week for p in figures), Decimal(0)),
    )


def report(rt: Runtime, as_of: datetime) -> Digest:
    """The digest as of ``as_of``, read in one transaction (what the notifier renders)."""
    with rt.db.read() as session:
        return build(session, as_of, timezone=rt.policy.timezone)


# -- the full table, for the attached CSV ---------------------------------------------------

CSV_COLUMNS = (
    "product_id",
    "name",
    "vendor",
    "seats_bought",
    "assigned",
    "active",
    "idle",
    "new_not_used_yet",
    "no_usage_data",
    "usage_data",
    "cost_per_seat_yearly",
    "idle_cost_yearly",
    "waitlist",
    "reclaimable",
    "reclaimed_this_week",
    "saved_yearly",
    "over_assigned",
    "renewal_date",
    "open_access_reviews",
)


def _cell(text: str) -> str:
    # A catalog name starting with = + - @ would run as a formula in a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(digest: Digest) -> bytes:
    """Every product's figures, one row each, highest idle cost first (UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in digest.products:
        writer.writerow(
            [
                _cell(p.product_id),
                _cell(p.name),
                _cell(p.vendor),
                p.bought,
                p.assigned,
                p.active,
                p.idle,
                p.new,
                p.no_data,
                "yes" if p.has_usage_data else "no",
                f"{p.cost_per_seat:.2f}",
                f"{p.idle_cost:.2f}",
                p.waitlist,
                p.reclaimable,
                p.reclaimed_this_week,
                f"{p.saved_this_week:.2f}",
                p.over_assigned,
                p.renewal_date.isoformat() if p.renewal_date else "",
                p.open_reviews,
            ]
        )
    return out.getvalue().encode("utf-8")


def week_of(now: datetime, timezone: str) -> str:
    """The ISO week ``now`` falls in, where IT lives (``2026-W45``): the digest's period."""
    year, week, _ = now.astimezone(ZoneInfo(timezone)).isocalendar()
    return f"{year}-W{week:02d}"


def run_weekly(rt: Runtime, now: datetime) -> bool:
    """The scheduled job: one digest per ISO week, claimed in the same transaction that queues
    it. The message and its files (CSV table, PNG chart) are two notifications, so a failed
    upload is retried without posting the message twice; both render as of ``now``."""
    with rt.db.transaction() as session:
        if not job_runs.claim(session, JOB_ID, week_of(now, rt.policy.timezone), now=now):
            return False
        as_of = now.isoformat()
        notifications.queue(session, notifications.IT_DIGEST, now=now, as_of=as_of)
        notifications.queue(session, notifications.IT_DIGEST_FILES, now=now, as_of=as_of)
    rt.wake_dispatcher()
    return True
