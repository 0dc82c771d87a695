"""Asking idle seat holders to give seats back, and taking back the ones nobody answers for.

A seat is idle when its last use (``assignment.last_used_at``, the copy of its holder's
``usage_signal``; else the day it was assigned) is older than its product's
``reclaim_after_days``. The daily scan nudges each idle seat once per window
(``nudged_at``); "Keep" snoozes it for another window and counts as use; "Release" frees it.
A nudge left unanswered for ``reclaim_grace_days`` is reclaimed on ``auto_reclaim`` products
and only listed (``reclaimable``) on the others. The scans are SQL queries: their shape does
not change with the number of assignments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, and_, case, func, literal, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from bot import delivery, notifications, seat_events, usage
from bot.clock import utc
from bot.errors import Conflict, NotAllowed
from bot.runtime import Runtime
from storage import audit, job_runs
from storage.db import in_slices
from storage.models import Assignment, Product

SYSTEM_ACTOR = "licensebot"
JOB_ID = "reclaim"


@dataclass(frozen=True)
class ReclaimResult:
    nudged: int
    reclaimed: int
    served: int  # waitlisted requests given a reclaimed seat


@dataclass(frozen=True)
class SeatView:
    """One seat as the nudge card and the answers to it show it."""

    assignment_id: int
    user_id: str
    product_id: str
    product_name: str
    cost_per_seat: Decimal  # per year
    assigned_at: datetime
    last_used_at: datetime | None  # None: never seen in use
    reclaim_after_days: int
    reclaim_grace_days: int
    auto_reclaim: bool
    snoozed_until: datetime | None
    released_at: datetime | None
    release_reason: str


def days_before(now: datetime, days_column: Any, values: set[int]) -> ColumnElement[Any]:
    """``now`` minus a per-product number of days, as one SQL expression.

    Date arithmetic differs between SQLite and PostgreSQL, so the few distinct day counts are
    turned into bound timestamps in a CASE; the query's shape stays the same for any number of
    assignments.
    """
    stamp = DateTime(timezone=True)
    whens = [(days_column == d, literal(now - timedelta(days=d), stamp)) for d in sorted(values)]
    if not whens:
        return literal(now, stamp)
    return case(*whens, else_=literal(now, stamp))


def day_counts(session: Session, column: Any) -> set[int]:
    return set(session.exec(select(column).distinct()).all())


# A seat and its product (the seat card). The seat carries its own last use
# (``last_used_at``, kept in step with usage_signal by bot/usage.py), so no usage join.
_PRODUCT_OF_SEAT = (Product, col(Product.id) == col(Assignment.product_id))
_LAST_USE = func.coalesce(col(Assignment.last_used_at), col(Assignment.assigned_at))


def older_than(cutoff: Any) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Last use before ``cutoff``, as two conditions that each read a range of the index
    ``ix_assignment_product_last_use`` (``coalesce`` would read every seat): used before it,
    or never used and assigned before it. Run one query per condition and merge."""
    return (
        col(Assignment.last_used_at) < cutoff,
        and_(col(Assignment.last_used_at).is_(None), col(Assignment.assigned_at) < cutoff),
    )


def _products(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """The seat's product meets ``conditions``: an ``IN`` over the few products, so each
    query reads index ranges of the products' seats rather than joining every seat."""
    return col(Assignment.product_id).in_(sa_select(col(Product.id)).where(*conditions))


def _not_snoozed(now: datetime) -> ColumnElement[bool]:
    return or_(col(Assignment.snoozed_until).is_(None), col(Assignment.snoozed_until) <= now)


def _unanswered(
    session: Session, now: datetime, *products: ColumnElement[bool]
) -> list[ColumnElement[bool]]:
    """Held seats nudged at least the grace period ago, not used (nor kept) since, not
    snoozed, on products meeting ``products``: one condition per distinct grace period (a
    fixed cutoff each, a range of ``ix_assignment_live_nudged``), to query one by one."""
    return [
        and_(
            _products(col(Product.reclaim_grace_days) == days, *products),
            col(Assignment.released_at).is_(None),
            col(Assignment.nudged_at) <= now - timedelta(days=days),  # so never NULL
            col(Assignment.nudged_at) > _LAST_USE,  # "Keep" records use, so it counts as an answer
            _not_snoozed(now),
        )
        for days in sorted(day_counts(session, Product.reclaim_grace_days))
    ]


def scan(session: Session, rt: Runtime, *, now: datetime) -> ReclaimResult:
    """Reclaim unanswered nudges on auto_reclaim products, then nudge newly idle seats."""
    reclaimed, served = _reclaim_unanswered(session, rt, now=now)
    nudged = _nudge_idle(session, rt, now=now)
    return ReclaimResult(nudged=nudged, reclaimed=reclaimed, served=served)


def _to_nudge(now: datetime, window_start: Any, last_use_before: Any) -> list[Any]:
    """A held seat of an active product (a product IT retired is not nudged about), last
    used before its window, not snoozed, not nudged within the window: the idle-seat rule
    both ways of marking share. ``window_start``: a time, or a per-product expression."""
    return [
        col(Product.active).is_(True),
        col(Assignment.released_at).is_(None),
        last_use_before,
        _not_snoozed(now),
        or_(col(Assignment.nudged_at).is_(None), col(Assignment.nudged_at) < window_start),
    ]


def _mark_idle_by_ranges(session: Session, now: datetime) -> list[Any]:
    """SQLite: per distinct window (a fixed cutoff each) and per half of "last use before
    it", one index range query picks the idle seats; then they are marked nudged. A handful
    of statements whatever the number of seats; the write lock (BEGIN IMMEDIATE) keeps a
    concurrent scan out."""
    idle: list[Any] = []
    for days in sorted(day_counts(session, Product.reclaim_after_days)):
        window_start = now - timedelta(days=days)
        for last_use_before in older_than(window_start):
            product_rule, *seat_rules = _to_nudge(now, window_start, last_use_before)
            idle += session.exec(
                select(Assignment.id, Assignment.user_id, Assignment.product_id, _LAST_USE).where(
                    _products(col(Product.reclaim_after_days) == days, product_rule), *seat_rules
                )
            ).all()
    for chunk in in_slices([row[0] for row in idle]):
        session.execute(
            update(Assignment).where(col(Assignment.id).in_(chunk)).values(nudged_at=now)
        )
    return idle


def _mark_idle_in_one_pass(session: Session, now: datetime) -> list[Any]:
    """PostgreSQL: one UPDATE … FROM product … RETURNING, each seat against its product's
    window. Range queries per window made PostgreSQL read the whole table once per window
    and half (six scans for three windows), then lock and update the seats in two more
    passes; this is one scan, and the update is the lock. A concurrent scan waits for the
    rows, then finds them nudged now and passes them by."""
    windows = sorted(day_counts(session, Product.reclaim_after_days))
    if not windows:
        return []
    window_start = case(
        {days: literal(now - timedelta(days=days), DateTime(timezone=True)) for days in windows},
        value=col(Product.reclaim_after_days),
    )
    last_use = _LAST_USE
    returned = session.execute(
        update(Assignment)
        .where(
            col(Assignment.product_id) == col(Product.id),
            *_to_nudge(now, window_start, last_use < window_start),
        )
        .values(nudged_at=now)
        .returning(
            col(Assignment.id), col(Assignment.user_id), col(Assignment.product_id), last_use
        )
        .execution_options(synchronize_session=False)
    )
    return list(returned.all())


def _nudge_idle(session: Session, rt: Runtime, *, now: datetime) -> int:
    if session.get_bind().dialect.name == "postgresql":
        idle = _mark_idle_in_one_pass(session, now)
    else:
        idle = _mark_idle_by_ranges(session, now)
    idle.sort(key=lambda row: row[0] or 0)
    ids = [row[0] for row in idle]
    if not ids:
        return 0
    # Thousands of seats at once: one batch of audit entries and one of outbox rows.
    audit.append_many(
        session,
        rt.audit_keys,
        [
            audit.Event(
                at=now,
                actor=SYSTEM_ACTOR,
                action="seat.nudged",
                subject=f"user:{user_id}",
                details={
                    "product": product_id,
                    "assignment": assignment_id,
                    "last_use": utc(last_use).isoformat()
                    if isinstance(last_use, datetime)
                    else None,
                },
            )
            for assignment_id, user_id, product_id, last_use in idle
        ],
    )
    notifications.queue_many(
        session, notifications.RECLAIM_NUDGE, [{"assignment_id": i} for i in ids], now=now
    )
    return len(ids)


def _reclaim_unanswered(session: Session, rt: Runtime, *, now: datetime) -> tuple[int, int]:
    due = sorted(
        (
            row
            for unanswered in _unanswered(session, now, col(Product.auto_reclaim).is_(True))
            for row in session.exec(
                select(Assignment.id, Assignment.user_id, Assignment.product_id)
                .where(unanswered)
                .with_for_update()
            ).all()
        ),
        key=lambda row: row[0] or 0,
    )
    if not due:
        return 0, 0
    served = delivery.release_seats(
        session,
        rt,
        due,
        reason="reclaimed",
        action="seat.reclaimed",
        notify=notifications.SEAT_RECLAIMED,
        now=now,
    )
    return len(due), served


def run_daily(rt: Runtime, now: datetime) -> bool:
    """The scheduled job: one scan per day, claimed in the same transaction as its work."""
    with rt.db.transaction() as session:
        if not job_runs.claim(session, JOB_ID, now.date().isoformat(), now=now):
            return False
        scan(session, rt, now=now)
    rt.wake_dispatcher()
    return True


def reclaimable_counts(session: Session, now: datetime) -> dict[str, int]:
    """Per product, the nudges unanswered past their grace on products that are not
    reclaimed automatically: IT decides (the digest lists them). Counted in SQL: a
    million-seat company can have thousands."""
    return {
        str(pid): int(n)
        for unanswered in _unanswered(session, now, col(Product.auto_reclaim).is_(False))
        for pid, n in session.execute(
            sa_select(col(Assignment.product_id), func.count())
            .where(unanswered)
            .group_by(col(Assignment.product_id))
        ).all()
    }


def seat_view(rt: Runtime, assignment_id: int) -> SeatView | None:
    """The seat, released or not: the card of an answered nudge shows the outcome."""
    with rt.db.read() as session:
        found = session.exec(
            select(Assignment, Product)
            .join(*_PRODUCT_OF_SEAT)
            .where(col(Assignment.id) == assignment_id)
        ).first()
    if found is None:
        return None
    assignment, product = found
    assert assignment.id is not None
    return SeatView(
        assignment_id=assignment.id,
        user_id=assignment.user_id,
        product_id=product.id,
        product_name=product.name,
        cost_per_seat=product.cost_per_seat,
        assigned_at=utc(assignment.assigned_at),
        last_used_at=utc(assignment.last_used_at) if assignment.last_used_at else None,
        reclaim_after_days=product.reclaim_after_days,
        reclaim_grace_days=product.reclaim_grace_days,
        auto_reclaim=product.auto_reclaim,
        snoozed_until=utc(assignment.snoozed_until) if assignment.snoozed_until else None,
        released_at=utc(assignment.released_at) if assignment.released_at else None,
        release_reason=assignment.release_reason,
    )


def _holders_seat(session: Session, actor: str, assignment_id: int, verb: str) -> Assignment:
    assignment = session.exec(
        select(Assignment).where(Assignment.id == assignment_id).with_for_update()
    ).first()
    if assignment is None or assignment.user_id != actor:
        raise NotAllowed(f"You can't {verb} this seat: it is not assigned to you.")
    if assignment.released_at is not None:
        raise Conflict("This seat was already given back; nothing was changed.")
    return assignment


def _card(
    session: Session, kind: str, assignment: Assignment, card: tuple[str, str] | None, now: datetime
) -> None:
    # With the nudge's channel and ts the card itself changes; without them (a click from
    # somewhere else) the holder gets a DM saying what happened.
    if card is not None:
        notifications.queue(
            session,
            notifications.RECLAIM_ANSWERED,
            now=now,
            assignment_id=assignment.id,
            channel=card[0],
            ts=card[1],
        )
    else:
        notifications.queue(session, kind, now=now, assignment_id=assignment.id)


def keep(
    rt: Runtime, *, actor: str, assignment_id: int, card: tuple[str, str] | None = None
) -> datetime:
    """The holder still needs the seat: no nudge until the snooze ends. Returns that time."""
    now = rt.clock.now()
    with rt.db.transaction() as session:
        assignment = _holders_seat(session, actor, assignment_id, "keep")
        product = session.get(Product, assignment.product_id)
        assert product is not None
        until = now + timedelta(days=product.reclaim_after_days)
        assignment.snoozed_until = until
        session.add(assignment)
        # "Keep" is a use: the same upsert as every other usage signal (never moves back).
        usage.upsert_signals(
            session, {(assignment.product_id, assignment.user_id): now}, source="keep", now=now
        )
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="seat.kept",
            subject=f"user:{actor}",
            details={
                "product": product.id,
                "assignment": assignment_id,
                "snoozed_until": until.isoformat(),
            },
        )
        _card(session, notifications.SEAT_KEPT, assignment, card, now)
    rt.wake_dispatcher()
    return until


def release(
    rt: Runtime, *, actor: str, assignment_id: int, card: tuple[str, str] | None = None
) -> int:
    """The holder gives the seat back now; the first person waiting gets it. Returns how many
    waitlisted requests were served."""
    now = rt.clock.now()
    with rt.db.transaction() as session:
        assignment = _holders_seat(session, actor, assignment_id, "release")
        assignment.released_at = now
        assignment.release_reason = "released"
        session.add(assignment)
        session.flush()
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="seat.released",
            subject=f"user:{actor}",
            details={"product": assignment.product_id, "assignment": assignment_id},
        )
        seat_events.released(session, rt, assignment, now=now)
        _card(session, notifications.SEAT_RELEASED, assignment, card, now)
        served = delivery.assign_waitlisted(session, rt, assignment.product_id, now=now)
    rt.wake_dispatcher()
    return served
