"""Access reviews: the regular permission audit of who holds each product.

A review lists a product's current holders (one ``access_review_item`` per unreleased seat) and
asks the product's reviewers to answer "keep" or "revoke" for each. Revoke releases the seat at
once (``release_reason = "revoked"``), tells the holder and serves the waitlist. When nothing is
left to answer the review closes, audited with its tally.

Who reviews: the approvers of the product's *last* approval step, resolved like an approval step
(``bot.routing``): a group's members, a role's holders, a named user. Three cases go to IT
(``it_admin``) instead, and the card says why:

- the product has no approval step (``approval: []`` or ``auto_approve``): nobody approves it;
- the last step is ``manager``: every holder has their own manager, so no one person approves the
  product as a whole (a review split by manager would need a reviewer per holder, and then a
  manager would vouch for reports only, not for who else holds the seat);
- the step resolves to no one.

A holder never answers for their own seat; when the only reviewer is also a holder, IT joins.
The reviewers are recorded as the review's cards (``access_review_card``, one row per reviewer
and per card part), and an answer is authorised from those rows at the moment of the click.

Schedules (``bot.jobs``): ``access-review`` starts every product's review once a quarter
(claimed per quarter in ``job_run``); a review still open from the previous quarter is closed
as superseded, its unanswered holders audited as "no answer". ``access-review-reminders`` runs
daily: a review open for ``REMIND_AFTER`` gets one reminder to its reviewers (audited with the
holders still unanswered), and a review whose remaining holders all gave their seats back some
other way is closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, insert, literal, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot import catalog, delivery, notifications, roles, routing, seat_events
from bot.clock import utc
from bot.errors import AlreadyDecided, Conflict, NotAllowed, UnknownProduct
from bot.runtime import Runtime
from storage import audit, job_runs
from storage.models import (
    AccessReview,
    AccessReviewCard,
    AccessReviewItem,
    Assignment,
    Person,
    Product,
)

SYSTEM_ACTOR = "licensebot"
JOB_ID = "access-review"
REMINDER_JOB_ID = "access-review-reminders"
# 09:00 on the first day of each quarter, in LICENSEBOT_TIMEZONE.
QUARTERLY_CRON = "0 9 1 1,4,7,10 *"
REMINDER_CRON = "30 9 * * *"
REMIND_AFTER = timedelta(days=7)
# Holders per card: two blocks each (the holder, their buttons) plus the card's own few blocks
# stays under Slack's 50 blocks per message.
HOLDERS_PER_CARD = 20
DECISIONS = ("keep", "revoke")


@dataclass(frozen=True)
class Started:
    review_id: int
    product_id: str
    holders: int
    reviewers: list[str]
    superseded: int | None  # the still-open review this one replaced (quarterly schedule)


@dataclass(frozen=True)
class Skipped:
    product_id: str
    reason: str


@dataclass(frozen=True)
class StartResult:
    started: list[Started]
    skipped: list[Skipped]


@dataclass(frozen=True)
class HolderLine:
    """One holder as a review card shows them."""

    assignment_id: int
    user_id: str
    name: str | None  # from the directory, when known
    assigned_at: datetime
    last_used_at: datetime | None  # None: no usage signal
    decision: str  # "" | keep | revoke
    decided_by: str | None
    decided_at: datetime | None
    released: bool  # the seat was given back (by any path)
    release_reason: str


@dataclass(frozen=True)
class ReviewCard:
    """One part of a review card: the review and a slice of its holders."""

    review_id: int
    product_id: str
    product_name: str
    started_by: str
    started_at: datetime
    closed_at: datetime | None
    why: str  # why IT reviews (empty when the last approval step's approvers do)
    part: int
    parts: int
    first: int  # 1-based position of the first holder on this part
    total: int
    holders: list[HolderLine]
    kept: int
    revoked: int


@dataclass(frozen=True)
class ReviewSummary:
    """An open (or closed) review's progress: for the CLI, reminders and the digest."""

    review_id: int
    product_id: str
    product_name: str
    started_by: str
    started_at: datetime
    closed_at: datetime | None
    total: int  # holders under review
    answered: int  # kept or revoked, or the seat was given back some other way
    overdue: bool  # open for REMIND_AFTER or longer

    @property
    def pending(self) -> int:
        return self.total - self.answered


@dataclass(frozen=True)
class PostedCard:
    reviewer_id: str
    part: int
    channel: str | None
    ts: str | None


@dataclass(frozen=True)
class DecideResult:
    review_id: int
    holder_id: str
    decision: str
    closed: bool
    served: int  # waitlisted requests given the revoked seat


def _parts(total: int) -> int:
    return max(1, -(-total // HOLDERS_PER_CARD))


# ---------------------------------------------------------------------------------------------
# Who reviews


def reviewers_for(
    session: Session, rt: Runtime, product: Product, holders: set[str]
) -> tuple[list[str], str]:
    """The product's reviewers and, when IT stands in, why (shown on the card)."""
    it_admins = roles.holders(session, "it_admin", rt.admins)
    if product.auto_approve or not product.approval:
        return (
            it_admins,
            "Nobody approves this product (it is approved automatically), so IT reviews it.",
        )
    spec = product.approval[-1]
    if spec == "manager":
        return it_admins, (
            "Its last approval step is each requester's manager, so no one person approves the "
            "product as a whole: IT reviews it."
        )
    route = routing.resolve(session, spec, requester="", excluded=set(), admins=rt.admins)
    approvers, why = route.approvers, route.why
    if len(approvers) == 1 and approvers[0] in holders:
        # A holder never answers for their own seat: someone must be able to answer for them.
        approvers = list(dict.fromkeys([*approvers, *it_admins]))
        why = (
            f"{routing.describe(spec)} also holds a seat and cannot review their own, so IT "
            "reviews too."
        )
    return approvers, why


# ---------------------------------------------------------------------------------------------
# Starting


def start(rt: Runtime, *, actor: str, product_id: str | None = None) -> StartResult:
    """Open a review for ``product_id`` (or every active product with holders).

    A product whose previous review is still open is skipped and reported. UnknownProduct (and
    nothing written) for an unknown or deactivated product.
    """
    now = rt.clock.now()
    with rt.db.transaction() as session:
        result = _start(session, rt, actor=actor, product_id=product_id, now=now, supersede=False)
    rt.wake_dispatcher()
    return result


def _products(session: Session, product_id: str | None) -> list[Product]:
    if product_id is None:
        return list(
            session.exec(
                select(Product).where(col(Product.active).is_(True)).order_by(col(Product.id))
            ).all()
        )
    wanted = product_id.strip()
    product = session.get(Product, wanted)
    if product is None or not product.active:
        raise UnknownProduct(wanted, catalog.suggest_in(session, wanted, active_only=True))
    return [product]


def _start(
    session: Session,
    rt: Runtime,
    *,
    actor: str,
    product_id: str | None,
    now: datetime,
    supersede: bool,
) -> StartResult:
    started: list[Started] = []
    skipped: list[Skipped] = []
    for product in _products(session, product_id):
        # Serializes starts per product on PostgreSQL, so two starts cannot open two reviews.
        session.exec(select(Product).where(Product.id == product.id).with_for_update()).one()
        open_review = session.exec(
            select(AccessReview)
            .where(AccessReview.product_id == product.id, col(AccessReview.closed_at).is_(None))
            .with_for_update()
        ).first()
        replaced: int | None = None
        if open_review is not None:
            assert open_review.id is not None
            if not supersede:
                when = utc(open_review.started_at).strftime("%Y-%m-%d")
                skipped.append(
                    Skipped(product.id, f"review #{open_review.id} (started {when}) is still open")
                )
                continue
            _close(session, rt, open_review, actor=actor, now=now, outcome="superseded")
            replaced = open_review.id
        holders = set(
            session.exec(
                select(Assignment.user_id).where(
                    Assignment.product_id == product.id, col(Assignment.released_at).is_(None)
                )
            ).all()
        )
        if not holders:
            skipped.append(Skipped(product.id, "nobody holds a seat"))
            continue
        reviewers, why = reviewers_for(session, rt, product, holders)
        if not reviewers:
            skipped.append(
                Skipped(
                    product.id,
                    "nobody can review it (no approver and no it_admin: grant one with "
                    "`licensebot roles grant USER_ID it_admin`)",
                )
            )
            continue
        started.append(
            _open(session, rt, product, reviewers, why, actor=actor, now=now, replaced=replaced)
        )
    return StartResult(started=started, skipped=skipped)


def _open(
    session: Session,
    rt: Runtime,
    product: Product,
    reviewers: list[str],
    why: str,
    *,
    actor: str,
    now: datetime,
    replaced: int | None,
) -> Started:
    review = AccessReview(product_id=product.id, started_by=actor[:64], started_at=now)
    session.add(review)
    session.flush()
    assert review.id is not None
    # Every current seat, in one INSERT ... SELECT whatever the number of holders.
    session.execute(
        insert(AccessReviewItem).from_select(
            ["review_id", "assignment_id", "user_id", "decision"],
            sa_select(
                literal(review.id), col(Assignment.id), col(Assignment.user_id), literal("")
            ).where(
                col(Assignment.product_id) == product.id, col(Assignment.released_at).is_(None)
            ),
        )
    )
    total = _count_items(session, review.id)
    parts = _parts(total)
    session.execute(
        insert(AccessReviewCard),
        [
            {"review_id": review.id, "reviewer_id": r, "part": p}
            for r in reviewers
            for p in range(parts)
        ],
    )
    audit.append(
        session,
        rt.audit_keys,
        at=now,
        actor=actor,
        action="review.started",
        subject=f"review:{review.id}",
        details={
            "product": product.id,
            "holders": total,
            "reviewers": reviewers,
            "rule": product.approval[-1] if product.approval and not product.auto_approve else "",
            "why": why,
            "supersedes": replaced,
        },
    )
    for reviewer in reviewers:
        for part in range(parts):
            notifications.queue(
                session,
                notifications.REVIEW_CARD,
                now=now,
                review_id=review.id,
                reviewer_id=reviewer,
                part=part,
            )
    return Started(review.id, product.id, total, reviewers, replaced)


def _count_items(session: Session, review_id: int) -> int:
    return session.exec(
        select(func.count())
        .select_from(AccessReviewItem)
        .where(AccessReviewItem.review_id == review_id)
    ).one()


# ---------------------------------------------------------------------------------------------
# Answering


def decide(
    rt: Runtime, *, actor: str, review_id: int, assignment_id: int, decision: str
) -> DecideResult:
    """One reviewer's answer for one holder; refused unless the database says they review it."""
    if decision not in DECISIONS:
        raise Conflict(f"An access review answer is keep or revoke, not {decision!r}.")
    now = rt.clock.now()
    served = 0
    with rt.db.transaction() as session:
        # Locking the review serializes answers, so exactly one of them closes it.
        review = session.exec(
            select(AccessReview).where(AccessReview.id == review_id).with_for_update()
        ).one_or_none()
        if review is None:
            raise Conflict(f"Access review #{review_id} does not exist; nothing was changed.")
        is_reviewer = session.exec(
            select(AccessReviewCard.reviewer_id).where(
                AccessReviewCard.review_id == review_id, AccessReviewCard.reviewer_id == actor
            )
        ).first()
        if is_reviewer is None:
            raise NotAllowed(
                f"You can't answer access review #{review_id} ({review.product_id}): you are "
                "not one of its reviewers."
            )
        item = session.exec(
            select(AccessReviewItem)
            .where(
                AccessReviewItem.review_id == review_id,
                AccessReviewItem.assignment_id == assignment_id,
            )
            .with_for_update()
        ).one_or_none()
        if item is None:
            raise Conflict(f"That seat is not part of access review #{review_id}.")
        if item.decision:
            assert item.decided_at is not None
            verb = "kept" if item.decision == "keep" else "revoked"
            raise AlreadyDecided(
                f"<@{item.user_id}>'s seat was already {verb} by <@{item.decided_by}> on "
                f"{utc(item.decided_at).strftime('%Y-%m-%d %H:%M UTC')}; nothing was changed."
            )
        if review.closed_at is not None:
            raise AlreadyDecided(
                f"Access review #{review_id} was closed on "
                f"{utc(review.closed_at).strftime('%Y-%m-%d')}; nothing was changed."
            )
        if item.user_id == actor:
            raise NotAllowed("You can't review your own seat; another reviewer must answer for it.")
        seat = session.exec(
            select(Assignment).where(Assignment.id == assignment_id).with_for_update()
        ).one()
        if seat.released_at is not None:
            raise Conflict(
                f"<@{seat.user_id}> no longer holds this seat ({seat.release_reason}); "
                "nothing to review."
            )
        item.decision, item.decided_by, item.decided_at = decision, actor, now
        session.add(item)
        details = {"product": review.product_id, "review": review_id, "assignment": assignment_id}
        if decision == "keep":
            audit.append(
                session,
                rt.audit_keys,
                at=now,
                actor=actor,
                action="review.kept",
                subject=f"user:{seat.user_id}",
                details=details,
            )
        else:
            seat.released_at = now
            seat.release_reason = "revoked"
            session.add(seat)
            session.flush()
            audit.append(
                session,
                rt.audit_keys,
                at=now,
                actor=actor,
                action="seat.revoked",
                subject=f"user:{seat.user_id}",
                details=details,
            )
            seat_events.released(session, rt, seat, now=now)
            notifications.queue(
                session,
                notifications.SEAT_REVOKED,
                now=now,
                assignment_id=assignment_id,
                reviewer_id=actor,
            )
            served = delivery.assign_waitlisted(session, rt, review.product_id, now=now)
        session.flush()
        closed = _pending(session, review_id) == 0
        if closed:
            _close(session, rt, review, actor=actor, now=now, outcome="completed")
        else:
            notifications.queue(
                session,
                notifications.REVIEW_UPDATED,
                now=now,
                review_id=review_id,
                part=_part_of(session, review_id, assignment_id),
            )
        holder = seat.user_id
    rt.wake_dispatcher()
    return DecideResult(review_id, holder, decision, closed, served)


def _part_of(session: Session, review_id: int, assignment_id: int) -> int:
    before = session.exec(
        select(func.count())
        .select_from(AccessReviewItem)
        .where(
            AccessReviewItem.review_id == review_id,
            col(AccessReviewItem.assignment_id) < assignment_id,
        )
    ).one()
    return before // HOLDERS_PER_CARD


_SEAT_OF_ITEM = (Assignment, col(Assignment.id) == col(AccessReviewItem.assignment_id))
_UNANSWERED = and_(col(AccessReviewItem.decision) == "", col(Assignment.released_at).is_(None))


def _pending(session: Session, review_id: int) -> int:
    """Holders still to answer for: unanswered, and still holding the seat."""
    return session.exec(
        select(func.count())
        .select_from(AccessReviewItem)
        .join(*_SEAT_OF_ITEM)
        .where(AccessReviewItem.review_id == review_id, _UNANSWERED)
    ).one()


def _close(
    session: Session, rt: Runtime, review: AccessReview, *, actor: str, now: datetime, outcome: str
) -> None:
    """Close ``review`` and audit its tally; unanswered holders are recorded as "no answer"."""
    assert review.id is not None
    tally = session.exec(
        select(AccessReviewItem.decision, func.count())
        .where(AccessReviewItem.review_id == review.id)
        .group_by(col(AccessReviewItem.decision))
    ).all()
    counts = dict(tally)
    no_answer = list(
        session.exec(
            select(AccessReviewItem.user_id)
            .join(*_SEAT_OF_ITEM)
            .where(AccessReviewItem.review_id == review.id, _UNANSWERED)
            .order_by(col(AccessReviewItem.user_id))
        ).all()
    )
    gave_back = counts.get("", 0) - len(no_answer)
    review.closed_at = now
    session.add(review)
    audit.append(
        session,
        rt.audit_keys,
        at=now,
        actor=actor,
        action="review.closed",
        subject=f"review:{review.id}",
        details={
            "product": review.product_id,
            "outcome": outcome,  # completed | superseded
            "holders": sum(counts.values()),
            "kept": counts.get("keep", 0),
            "revoked": counts.get("revoke", 0),
            "released_otherwise": gave_back,
            "no_answer": len(no_answer),
            "no_answer_holders": no_answer,
        },
    )
    notifications.queue(
        session, notifications.REVIEW_UPDATED, now=now, review_id=review.id, part=None
    )


# ---------------------------------------------------------------------------------------------
# Scheduled jobs


def quarter(now: datetime, timezone: str) -> str:
    """The quarter ``now`` falls in, in the company's time zone: ``2027-Q1``."""
    local = now.astimezone(ZoneInfo(timezone))
    return f"{local.year}-Q{(local.month - 1) // 3 + 1}"


def run_quarterly(rt: Runtime, now: datetime) -> bool:
    """Start every active product's review once per quarter; an unfinished one is superseded."""
    with rt.db.transaction() as session:
        if not job_runs.claim(session, JOB_ID, quarter(now, rt.policy.timezone), now=now):
            return False
        _start(session, rt, actor=SYSTEM_ACTOR, product_id=None, now=now, supersede=True)
    rt.wake_dispatcher()
    return True


def run_reminders(rt: Runtime, now: datetime) -> bool:
    """Daily: remind reviews open for REMIND_AFTER (once each); close reviews with nothing left."""
    with rt.db.transaction() as session:
        if not job_runs.claim(session, REMINDER_JOB_ID, now.date().isoformat(), now=now):
            return False
        remind_overdue(session, rt, now=now)
    rt.wake_dispatcher()
    return True


def remind_overdue(session: Session, rt: Runtime, *, now: datetime) -> int:
    """Remind the reviewers of every review open since REMIND_AFTER and not yet reminded.

    Returns how many reviews were reminded. The reminder's audit entry names the holders nobody
    has answered for yet (the non-answers so far).
    """
    open_reviews = session.exec(
        select(AccessReview)
        .where(col(AccessReview.closed_at).is_(None))
        .order_by(col(AccessReview.id))
        .with_for_update()
    ).all()
    pending = _pending_by_review(session, [r.id for r in open_reviews if r.id is not None])
    reminded = 0
    for review in open_reviews:
        assert review.id is not None
        if pending.get(review.id, 0) == 0:
            # Every remaining holder gave the seat back some other way: nothing left to ask.
            _close(session, rt, review, actor=SYSTEM_ACTOR, now=now, outcome="completed")
            continue
        if review.reminded_at is not None or utc(review.started_at) > now - REMIND_AFTER:
            continue
        review.reminded_at = now
        session.add(review)
        unanswered = list(
            session.exec(
                select(AccessReviewItem.user_id)
                .join(*_SEAT_OF_ITEM)
                .where(AccessReviewItem.review_id == review.id, _UNANSWERED)
                .order_by(col(AccessReviewItem.user_id))
            ).all()
        )
        reviewers = _reviewers(session, review.id)
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=SYSTEM_ACTOR,
            action="review.reminded",
            subject=f"review:{review.id}",
            details={
                "product": review.product_id,
                "reviewers": reviewers,
                "no_answer": len(unanswered),
                "no_answer_holders": unanswered,
            },
        )
        for reviewer in reviewers:
            notifications.queue(
                session,
                notifications.REVIEW_REMINDER,
                now=now,
                review_id=review.id,
                reviewer_id=reviewer,
            )
        reminded += 1
    return reminded


def _pending_by_review(session: Session, review_ids: Sequence[int]) -> dict[int, int]:
    if not review_ids:
        return {}
    rows = session.exec(
        select(AccessReviewItem.review_id, func.count())
        .join(*_SEAT_OF_ITEM)
        .where(col(AccessReviewItem.review_id).in_(review_ids), _UNANSWERED)
        .group_by(col(AccessReviewItem.review_id))
    ).all()
    return dict(rows)


def _reviewers(session: Session, review_id: int) -> list[str]:
    return list(
        session.exec(
            select(AccessReviewCard.reviewer_id)
            .where(AccessReviewCard.review_id == review_id)
            .distinct()
            .order_by(col(AccessReviewCard.reviewer_id))
        ).all()
    )


# ---------------------------------------------------------------------------------------------
# Reading


def _summaries(
    session: Session, now: datetime, *, review_id: int | None = None, open_only: bool = True
) -> list[ReviewSummary]:
    """Progress per review, as one aggregate query."""
    answered = func.sum(
        case(
            (
                or_(col(AccessReviewItem.decision) != "", col(Assignment.released_at).is_not(None)),
                1,
            ),
            else_=0,
        )
    )
    stmt = (
        sa_select(
            col(AccessReview.id),
            col(AccessReview.product_id),
            col(Product.name),
            col(AccessReview.started_by),
            col(AccessReview.started_at),
            col(AccessReview.closed_at),
            func.count(col(AccessReviewItem.assignment_id)),
            answered,
        )
        .join(Product, col(Product.id) == col(AccessReview.product_id))
        .join(AccessReviewItem, col(AccessReviewItem.review_id) == col(AccessReview.id))
        .join(*_SEAT_OF_ITEM)
        .group_by(
            col(AccessReview.id),
            col(AccessReview.product_id),
            col(Product.name),
            col(AccessReview.started_by),
            col(AccessReview.started_at),
            col(AccessReview.closed_at),
        )
        .order_by(col(AccessReview.started_at), col(AccessReview.id))
    )
    if open_only:
        stmt = stmt.where(col(AccessReview.closed_at).is_(None))
    if review_id is not None:
        stmt = stmt.where(col(AccessReview.id) == review_id)
    out = []
    for rid, pid, name, by, started_at, closed_at, total, done in session.execute(stmt).all():
        started = utc(started_at)
        out.append(
            ReviewSummary(
                review_id=rid,
                product_id=pid,
                product_name=name,
                started_by=by,
                started_at=started,
                closed_at=utc(closed_at) if closed_at else None,
                total=int(total),
                answered=int(done or 0),
                overdue=closed_at is None and started <= now - REMIND_AFTER,
            )
        )
    return out


def unfinished(session: Session, now: datetime) -> list[ReviewSummary]:
    """Every open review with its progress (``overdue`` once open for REMIND_AFTER), oldest
    first: what the weekly digest reports."""
    return _summaries(session, now)


def list_open(rt: Runtime) -> list[ReviewSummary]:
    with rt.db.read() as session:
        return unfinished(session, rt.clock.now())


def summary(rt: Runtime, review_id: int) -> ReviewSummary | None:
    with rt.db.read() as session:
        found = _summaries(session, rt.clock.now(), review_id=review_id, open_only=False)
    return found[0] if found else None


def card(rt: Runtime, review_id: int, part: int) -> ReviewCard | None:
    """One part of the review's card, as it is now (answers, closure)."""
    with rt.db.read() as session:
        found = session.exec(
            select(AccessReview, Product)
            .join(Product, col(Product.id) == col(AccessReview.product_id))
            .where(AccessReview.id == review_id)
        ).first()
        if found is None:
            return None
        review, product = found
        total = _count_items(session, review_id)
        tally = dict(
            session.exec(
                select(AccessReviewItem.decision, func.count())
                .where(AccessReviewItem.review_id == review_id)
                .group_by(col(AccessReviewItem.decision))
            ).all()
        )
        rows = session.execute(
            sa_select(
                col(AccessReviewItem.assignment_id),
                col(AccessReviewItem.user_id),
                col(Person.name),
                col(Assignment.assigned_at),
                col(Assignment.last_used_at),
                col(AccessReviewItem.decision),
                col(AccessReviewItem.decided_by),
                col(AccessReviewItem.decided_at),
                col(Assignment.released_at),
                col(Assignment.release_reason),
            )
            .join(*_SEAT_OF_ITEM)
            .outerjoin(Person, col(Person.slack_user_id) == col(AccessReviewItem.user_id))
            .where(col(AccessReviewItem.review_id) == review_id)
            .order_by(col(AccessReviewItem.assignment_id))
            .offset(part * HOLDERS_PER_CARD)
            .limit(HOLDERS_PER_CARD)
        ).all()
        why = ""
        if review.closed_at is None:
            everyone = set(
                session.exec(
                    select(AccessReviewItem.user_id).where(AccessReviewItem.review_id == review_id)
                ).all()
            )
            why = reviewers_for(session, rt, product, everyone)[1]
    holders_shown = [
        HolderLine(
            assignment_id=aid,
            user_id=uid,
            name=name,
            assigned_at=utc(assigned),
            last_used_at=utc(used) if used else None,
            decision=decision,
            decided_by=by,
            decided_at=utc(at) if at else None,
            released=released is not None,
            release_reason=reason,
        )
        for aid, uid, name, assigned, used, decision, by, at, released, reason in rows
    ]
    assert review.id is not None
    return ReviewCard(
        review_id=review.id,
        product_id=product.id,
        product_name=product.name,
        started_by=review.started_by,
        started_at=utc(review.started_at),
        closed_at=utc(review.closed_at) if review.closed_at else None,
        why=why,
        part=part,
        parts=_parts(total),
        first=part * HOLDERS_PER_CARD + 1,
        total=total,
        holders=holders_shown,
        kept=tally.get("keep", 0),
        revoked=tally.get("revoke", 0),
    )


def posted_cards(rt: Runtime, review_id: int, *, part: int | None = None) -> list[PostedCard]:
    """Every reviewer's card (or one part of it) and where it was posted (None until it was)."""
    with rt.db.read() as session:
        stmt = select(AccessReviewCard).where(AccessReviewCard.review_id == review_id)
        if part is not None:
            stmt = stmt.where(AccessReviewCard.part == part)
        rows = session.exec(
            stmt.order_by(col(AccessReviewCard.part), col(AccessReviewCard.reviewer_id))
        ).all()
        return [PostedCard(r.reviewer_id, r.part, r.channel, r.ts) for r in rows]


def record_card(
    rt: Runtime, *, review_id: int, reviewer_id: str, part: int, channel: str, ts: str
) -> None:
    """Remember where a reviewer's card was posted, so answers can update it in place."""
    with rt.db.transaction() as session:
        row = session.get(AccessReviewCard, (review_id, reviewer_id, part))
        if row is not None:
            row.channel, row.ts = channel, ts
            session.add(row)
