"""Access reviews: started per product, answered by reviewers only, closed, reminded, renewed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from sqlmodel import col, select

from bot import catalog, directory, jobs, reclaim, requests, reviews
from bot.cli import cli
from bot.clock import ManualClock
from bot.errors import AlreadyDecided, Conflict, NotAllowed, UnknownProduct
from bot.runtime import Runtime
from bot.seats import import_seats
from storage.models import (
    AccessReview,
    AccessReviewCard,
    AccessReviewItem,
    Assignment,
    AuditEntry,
    LicenseRequest,
    OutboxMessage,
)
from tests.company import ADMIN, DIRECTORY, EMPLOYEE, IT1, MANAGER, NEWHIRE, ORPHAN, OUTSIDER
from tests.conftest import START

CATALOG = f"""
groups:
  security: [{IT1}]
products:
  - {{id: design, name: Design Pro, delivery: seat, seats: 3, cost_per_seat: 144,
     approval: [manager, security]}}
  - {{id: notes, name: Notes, delivery: seat, seats: 5, cost_per_seat: 10, approval: [manager]}}
  - {{id: chat, name: Chat, delivery: seat, seats: 2, cost_per_seat: 0, approval: []}}
  - {{id: vault, name: Vault, delivery: seat, seats: 3, cost_per_seat: 0, approval: [{EMPLOYEE}]}}
  - {{id: spare, name: Spare, delivery: seat, seats: 3, cost_per_seat: 0, approval: [security]}}
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
        f"design,{EMPLOYEE},{day(40)}\n"
        f"design,{MANAGER},{day(30)}\n"
        f"design,{ORPHAN},{day(20)}\n"
        f"notes,{EMPLOYEE},{day(10)}\n"
        f"chat,{EMPLOYEE},{day(10)}\n"
        f"chat,{MANAGER},{day(10)}\n"
        f"vault,{EMPLOYEE},{day(10)}\n"
        f"vault,{NEWHIRE},{day(10)}\n",
        actor="test",
    )
    return runtime


def seat_id(rt: Runtime, product_id: str, user_id: str) -> int:
    with rt.db.read() as s:
        found = s.exec(
            select(Assignment.id).where(
                Assignment.product_id == product_id, Assignment.user_id == user_id
            )
        ).first()
    assert found is not None
    return found


def audits(rt: Runtime, action: str) -> list[dict[str, object]]:
    with rt.db.read() as s:
        rows = s.exec(
            select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        ).all()
    return [json.loads(r.details) for r in rows]


def queued(rt: Runtime, kind: str) -> list[dict[str, object]]:
    with rt.db.read() as s:
        rows = s.exec(
            select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(col(OutboxMessage.id))
        ).all()
    return [r.payload for r in rows]


def review_of(rt: Runtime, product_id: str) -> AccessReview:
    with rt.db.read() as s:
        found = s.exec(
            select(AccessReview)
            .where(AccessReview.product_id == product_id)
            .order_by(col(AccessReview.id).desc())
        ).first()
    assert found is not None
    return found


def start_one(rt: Runtime, product_id: str) -> int:
    result = reviews.start(rt, actor="cli:test", product_id=product_id)
    assert len(result.started) == 1, result
    return result.started[0].review_id


def test_start_opens_a_review_per_product_with_holders_and_the_right_reviewers(
    rt: Runtime,
) -> None:
    result = reviews.start(rt, actor="cli:test")
    by_product = {s.product_id: s for s in result.started}
    assert sorted(by_product) == ["chat", "design", "notes", "vault"]
    assert [(s.product_id, s.reason) for s in result.skipped] == [("spare", "nobody holds a seat")]
    # The last step's approvers: the security group.
    assert (by_product["design"].holders, by_product["design"].reviewers) == (3, [IT1])
    # A manager step or no step at all: IT reviews.
    assert by_product["notes"].reviewers == [ADMIN]
    assert by_product["chat"].reviewers == [ADMIN]
    # The one approver also holds a seat, and never reviews their own: IT joins.
    assert by_product["vault"].reviewers == [EMPLOYEE, ADMIN]

    design = by_product["design"].review_id
    with rt.db.read() as s:
        items = s.exec(select(AccessReviewItem).where(AccessReviewItem.review_id == design)).all()
        cards = s.exec(select(AccessReviewCard).where(AccessReviewCard.review_id == design)).all()
    assert sorted(i.user_id for i in items) == sorted([EMPLOYEE, MANAGER, ORPHAN])
    assert all(i.decision == "" for i in items)
    assert [(c.reviewer_id, c.part) for c in cards] == [(IT1, 0)]
    started = audits(rt, "review.started")
    assert {(d["product"], d["holders"]) for d in started} == {
        ("design", 3),
        ("notes", 1),
        ("chat", 2),
        ("vault", 2),
    }
    assert {"review_id": design, "reviewer_id": IT1, "part": 0} in queued(rt, "review_card")


def test_a_product_with_an_open_review_is_skipped_and_reported(rt: Runtime) -> None:
    first = start_one(rt, "design")
    again = reviews.start(rt, actor="cli:test", product_id="design")
    assert again.started == []
    assert len(again.skipped) == 1
    assert f"review #{first}" in again.skipped[0].reason and "still open" in again.skipped[0].reason


def test_an_unknown_product_is_refused_and_nothing_is_written(rt: Runtime) -> None:
    with pytest.raises(UnknownProduct, match=r"desing.*design"):
        reviews.start(rt, actor="cli:test", product_id="desing")
    with rt.db.read() as s:
        assert s.exec(select(AccessReview)).all() == []
    assert audits(rt, "review.started") == []


def test_only_reviewers_answer_and_each_holder_is_answered_once(rt: Runtime) -> None:
    review = start_one(rt, "design")
    seat = seat_id(rt, "design", EMPLOYEE)
    with pytest.raises(NotAllowed, match="not one of its reviewers"):
        reviews.decide(rt, actor=OUTSIDER, review_id=review, assignment_id=seat, decision="revoke")
    with rt.db.read() as s:
        assert s.get(Assignment, seat).released_at is None  # type: ignore[union-attr]

    result = reviews.decide(rt, actor=IT1, review_id=review, assignment_id=seat, decision="keep")
    assert (result.holder_id, result.decision, result.closed) == (EMPLOYEE, "keep", False)
    assert audits(rt, "review.kept")[0] == {
        "product": "design",
        "review": review,
        "assignment": seat,
    }
    with pytest.raises(AlreadyDecided, match=f"already kept by <@{IT1}>"):
        reviews.decide(rt, actor=IT1, review_id=review, assignment_id=seat, decision="revoke")
    with rt.db.read() as s:
        item = s.get(AccessReviewItem, (review, seat))
        assert item is not None and (item.decision, item.decided_by) == ("keep", IT1)
        assert s.get(Assignment, seat).released_at is None  # type: ignore[union-attr]
    # The card of that holder's part is updated for every reviewer.
    assert {"review_id": review, "part": 0} in queued(rt, "review_updated")


def test_a_holder_never_answers_for_their_own_seat(rt: Runtime) -> None:
    review = start_one(rt, "vault")
    own = seat_id(rt, "vault", EMPLOYEE)
    with pytest.raises(NotAllowed, match="your own seat"):
        reviews.decide(rt, actor=EMPLOYEE, review_id=review, assignment_id=own, decision="keep")
    # ... but answers for the others, and IT answers for them.
    reviews.decide(
        rt,
        actor=EMPLOYEE,
        review_id=review,
        assignment_id=seat_id(rt, "vault", NEWHIRE),
        decision="keep",
    )
    assert reviews.decide(
        rt, actor=ADMIN, review_id=review, assignment_id=own, decision="keep"
    ).closed


def test_revoke_releases_the_seat_tells_the_holder_and_serves_the_waitlist(
    rt: Runtime, clock: ManualClock
) -> None:
    waiting = requests.submit(rt, asked_by=NEWHIRE, product_id="chat", justification="")
    assert waiting.status == "waitlisted"
    review = start_one(rt, "chat")
    seat = seat_id(rt, "chat", EMPLOYEE)
    clock.advance(timedelta(hours=1))
    result = reviews.decide(
        rt, actor=ADMIN, review_id=review, assignment_id=seat, decision="revoke"
    )
    assert (result.decision, result.served) == ("revoke", 1)
    with rt.db.read() as s:
        revoked = s.get(Assignment, seat)
        assert revoked is not None
        assert (revoked.released_at is not None, revoked.release_reason) == (True, "revoked")
        req = s.get(LicenseRequest, waiting.request_id)
        assert req is not None and req.status == "approved"
        assert s.exec(
            select(Assignment).where(
                Assignment.user_id == NEWHIRE,
                Assignment.product_id == "chat",
                col(Assignment.released_at).is_(None),
            )
        ).one()
    assert queued(rt, "seat_revoked") == [{"assignment_id": seat, "reviewer_id": ADMIN}]
    assert audits(rt, "seat.revoked") == [{"product": "chat", "review": review, "assignment": seat}]
    # The newcomer got their seat after the review started: not part of it.
    with pytest.raises(Conflict, match="not part of access review"):
        reviews.decide(
            rt,
            actor=ADMIN,
            review_id=review,
            assignment_id=seat_id(rt, "chat", NEWHIRE),
            decision="keep",
        )


def test_the_last_answer_closes_the_review_with_its_tally(rt: Runtime) -> None:
    review = start_one(rt, "design")
    for user, decision in ((EMPLOYEE, "keep"), (MANAGER, "revoke"), (ORPHAN, "keep")):
        result = reviews.decide(
            rt,
            actor=IT1,
            review_id=review,
            assignment_id=seat_id(rt, "design", user),
            decision=decision,
        )
    assert result.closed
    assert review_of(rt, "design").closed_at is not None
    closed = audits(rt, "review.closed")
    assert closed == [
        {
            "product": "design",
            "outcome": "completed",
            "holders": 3,
            "kept": 2,
            "revoked": 1,
            "released_otherwise": 0,
            "no_answer": 0,
            "no_answer_holders": [],
        }
    ]
    assert {"review_id": review, "part": None} in queued(rt, "review_updated")
    with pytest.raises(AlreadyDecided):
        reviews.decide(
            rt,
            actor=IT1,
            review_id=review,
            assignment_id=seat_id(rt, "design", EMPLOYEE),
            decision="revoke",
        )
    # A closed review can be followed by a new one.
    assert start_one(rt, "design") != review


def test_an_open_review_is_reminded_once_after_seven_days(rt: Runtime, clock: ManualClock) -> None:
    review = start_one(rt, "design")
    reviews.decide(
        rt,
        actor=IT1,
        review_id=review,
        assignment_id=seat_id(rt, "design", EMPLOYEE),
        decision="keep",
    )
    job = jobs.JOBS[reviews.REMINDER_JOB_ID]
    clock.advance(timedelta(days=6))
    assert job.run(rt, clock.now())
    assert queued(rt, "review_reminder") == []

    clock.advance(timedelta(days=1))
    assert job.run(rt, clock.now())
    assert not job.run(rt, clock.now())  # the same day again: nothing
    clock.advance(timedelta(days=1))
    assert job.run(rt, clock.now())  # the next day: no second reminder
    assert queued(rt, "review_reminder") == [{"review_id": review, "reviewer_id": IT1}]
    assert audits(rt, "review.reminded") == [
        {
            "product": "design",
            "reviewers": [IT1],
            "no_answer": 2,
            "no_answer_holders": sorted([MANAGER, ORPHAN]),
        }
    ]
    assert review_of(rt, "design").reminded_at is not None
    with rt.db.read() as s:
        (open_review,) = reviews.unfinished(s, clock.now())
    assert (open_review.product_id, open_review.answered, open_review.total) == ("design", 1, 3)
    assert open_review.overdue and open_review.pending == 2


def test_a_review_whose_holders_all_left_some_other_way_is_closed_by_the_daily_job(
    rt: Runtime, clock: ManualClock
) -> None:
    review = start_one(rt, "notes")
    reclaim.release(rt, actor=EMPLOYEE, assignment_id=seat_id(rt, "notes", EMPLOYEE))
    with pytest.raises(Conflict, match="no longer holds"):
        reviews.decide(
            rt,
            actor=ADMIN,
            review_id=review,
            assignment_id=seat_id(rt, "notes", EMPLOYEE),
            decision="keep",
        )
    assert jobs.JOBS[reviews.REMINDER_JOB_ID].run(rt, clock.now())
    assert review_of(rt, "notes").closed_at is not None
    assert audits(rt, "review.closed")[0]["released_otherwise"] == 1
    assert queued(rt, "review_reminder") == []


def test_the_quarterly_job_runs_once_a_quarter_and_supersedes_unfinished_reviews(
    rt: Runtime, clock: ManualClock
) -> None:
    job = jobs.JOBS[reviews.JOB_ID]
    assert job.schedule(rt.policy) == "0 9 1 1,4,7,10 *"
    assert job.run(rt, clock.now())
    assert not job.run(rt, clock.now() + timedelta(days=20))  # still 2026-Q4
    with rt.db.read() as s:
        first = {r.product_id: r.id for r in s.exec(select(AccessReview)).all()}
    assert sorted(first) == ["chat", "design", "notes", "vault"]
    assert {d["product"] for d in audits(rt, "review.started")} == set(first)
    assert all(r["holders"] for r in audits(rt, "review.started"))
    # Design gets one answer; nobody answers the rest.
    reviews.decide(
        rt,
        actor=IT1,
        review_id=first["design"],
        assignment_id=seat_id(rt, "design", EMPLOYEE),
        decision="keep",
    )

    next_quarter = datetime(2027, 1, 1, 9, 0, tzinfo=UTC)
    assert job.run(rt, next_quarter)
    assert not job.run(rt, next_quarter + timedelta(hours=1))
    with rt.db.read() as s:
        reviews_now = s.exec(select(AccessReview).order_by(col(AccessReview.id))).all()
    old = [r for r in reviews_now if r.id in first.values()]
    new = [r for r in reviews_now if r.id not in first.values()]
    assert all(r.closed_at is not None for r in old)
    assert sorted(r.product_id for r in new) == sorted(first)
    assert all(r.closed_at is None and r.started_by == "licensebot" for r in new)
    design_closed = next(d for d in audits(rt, "review.closed") if d["product"] == "design")
    assert design_closed["outcome"] == "superseded"
    assert (design_closed["kept"], design_closed["no_answer"]) == (1, 2)
    assert design_closed["no_answer_holders"] == sorted([MANAGER, ORPHAN])
    superseding = [d for d in audits(rt, "review.started") if d["supersedes"] is not None]
    assert {d["supersedes"] for d in superseding} == set(first.values())


def test_the_quarter_is_counted_in_the_company_time_zone() -> None:
    late = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert reviews.quarter(late, "UTC") == "2026-Q4"
    assert reviews.quarter(late, "Europe/Berlin") == "2027-Q1"


def many_holders(rt: Runtime, product_id: str, count: int) -> list[str]:
    """``count`` people in the directory, each holding a seat of ``product_id``."""
    people = [f"UBULK{n:05d}" for n in range(count)]
    directory.import_directory(
        rt,
        DIRECTORY
        + "".join(f"{u},{u.lower()}@example.com,Person {u[-5:]},{MANAGER},Ops\n" for u in people),
        actor="test",
    )
    rows = "".join(f"{product_id},{u},{day(3)}\n" for u in people)
    import_seats(rt, "product_id,slack_user_id,assigned_at\n" + rows, actor="test")
    return people


def test_many_holders_get_a_card_in_parts(runtime: Runtime) -> None:
    catalog.load_catalog(
        runtime,
        "products:\n  - {id: big, name: Big, delivery: seat, seats: 200, approval: []}\n",
        actor="test",
    )
    many_holders(runtime, "big", 45)
    review = start_one(runtime, "big")
    assert [p["part"] for p in queued(runtime, "review_card")] == [0, 1, 2]
    last = reviews.card(runtime, review, 2)
    assert last is not None
    assert (last.parts, last.first, len(last.holders), last.total) == (3, 41, 5, 45)
    reviews.decide(
        runtime,
        actor=ADMIN,
        review_id=review,
        assignment_id=last.holders[0].assignment_id,
        decision="keep",
    )
    assert queued(runtime, "review_updated") == [{"review_id": review, "part": 2}]


# --- the CLI ----------------------------------------------------------------------------------


def invoke(database_url: str, encryption_key: str, *args: str) -> Result:
    env = {
        "DATABASE_URL": database_url,
        "LICENSEBOT_ENCRYPTION_KEYS": encryption_key,
        "LICENSEBOT_ADMINS": ADMIN,
        "SLACK_BOT_TOKEN": None,
        "SLACK_SIGNING_SECRET": None,
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_review_start_and_list_from_the_cli(
    rt: Runtime, database_url: str, encryption_key: str
) -> None:
    started = invoke(database_url, encryption_key, "review", "start", "design")
    assert started.exit_code == 0
    assert started.output == (f"Started review #1 of design: 3 holders, reviewers {IT1}.\n")
    everything = invoke(database_url, encryption_key, "review", "start")
    assert everything.exit_code == 0
    lines = everything.output.splitlines()
    assert "Skipped design: review #1 (started" in everything.output
    assert "Skipped spare: nobody holds a seat." in lines
    assert sum(line.startswith("Started review #") for line in lines) == 3

    listed = invoke(database_url, encryption_key, "review", "list")
    assert listed.exit_code == 0
    first = listed.output.splitlines()[0].split("\t")
    assert first[0:2] == ["#1", "design"] and first[3] == "0/3 answered"


def test_review_start_of_an_unknown_product_fails_in_one_line_and_writes_nothing(
    rt: Runtime, database_url: str, encryption_key: str
) -> None:
    result = invoke(database_url, encryption_key, "review", "start", "desing")
    assert result.exit_code == 1
    assert result.stderr.startswith("licensebot: There is no product `desing`")
    assert result.stderr.count("\n") == 1
    with rt.db.read() as s:
        assert s.exec(select(AccessReview)).all() == []
        assert s.exec(select(OutboxMessage).where(OutboxMessage.kind == "review_card")).all() == []
    assert invoke(database_url, encryption_key, "review", "list").output == (
        "No access review is open.\n"
    )
