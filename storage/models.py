"""Tables. Plain persistence: no Slack, no approval rules.

Timestamps are timezone-aware UTC. Money is Decimal. Keys are stored only as Fernet tokens.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Numeric, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def _utc(**kw: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), **kw)


class Product(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    name: str
    vendor: str = ""
    delivery: str = Field(max_length=8)  # "key" | "seat"
    seats: int = 0
    cost_per_seat: Decimal = Field(
        default=Decimal(0), sa_column=Column(Numeric(12, 2), nullable=False)
    )
    renewal_date: date | None = None
    approval: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    auto_approve: bool = False
    reclaim_after_days: int = 30
    reclaim_grace_days: int = 7
    auto_reclaim: bool = False
    min_free_seats: int = 0  # tell IT when free seats fall below this
    # Time-limited grants: a seat expires this many days after it was assigned (None: never).
    max_days: int | None = None
    # Seat products: where assignment and release events are POSTed (signed), if anywhere.
    provision_webhook: str | None = Field(default=None, max_length=2048)
    # Where pull connectors learn its use: "<connector>:<vendor's id of the app>", e.g.
    # "okta:0oa1gjh63g214q0Hq0g4".
    usage_source: str | None = Field(default=None, max_length=255)
    active: bool = True
    updated_at: datetime = _utc()


class GroupMember(SQLModel, table=True):
    group_name: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(primary_key=True, max_length=32)


class Person(SQLModel, table=True):
    slack_user_id: str = Field(primary_key=True, max_length=32)
    email: str = Field(index=True)
    name: str
    manager_slack_user_id: str | None = Field(default=None, max_length=32)
    department: str = ""
    updated_at: datetime = _utc()


class RoleGrant(SQLModel, table=True):
    user_id: str = Field(primary_key=True, max_length=32)
    role: str = Field(primary_key=True, max_length=32)
    granted_by: str
    granted_at: datetime = _utc()


class LicenseRequest(SQLModel, table=True):
    __tablename__ = "license_request"
    __table_args__ = (UniqueConstraint("origin_key", name="uq_license_request_origin_key"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(foreign_key="product.id", index=True, max_length=64)
    requester_id: str = Field(index=True, max_length=32)  # who gets the license
    requested_by: str = Field(max_length=32)  # who asked (a manager may ask for a new hire)
    justification: str = Field(default="", sa_column=Column(Text, nullable=False))
    # Where the request came from when that can arrive twice (a modal's view ID): the unique
    # constraint makes a second submission of the same modal find the first request.
    origin_key: str | None = Field(default=None, max_length=255)
    # When the open step opened (None: at created_at); reminders and escalation count from it.
    step_opened_at: datetime | None = _utc(default=None, nullable=True)
    # pending -> approved | denied | waitlisted (-> approved when a seat frees up)
    status: str = Field(default="pending", index=True, max_length=16)
    step: int = 0  # index into route of the step now open
    route: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _utc()
    updated_at: datetime = _utc()
    waitlisted_at: datetime | None = _utc(default=None, nullable=True)  # FIFO order of the queue
    closed_at: datetime | None = _utc(default=None, nullable=True)


class StepApprover(SQLModel, table=True):
    """Who may decide a step, and the card each was sent (for chat.update)."""

    __tablename__ = "step_approver"

    request_id: int = Field(foreign_key="license_request.id", primary_key=True)
    step: int = Field(primary_key=True)
    approver_id: str = Field(primary_key=True, max_length=32, index=True)
    why: str = ""  # e.g. why the step fell back to IT
    card_channel: str | None = None
    card_ts: str | None = None
    # Approval reminders: when this approver was reminded; escalation adds it_admins as
    # approvers of the step with ``escalated`` set.
    reminded_at: datetime | None = _utc(default=None, nullable=True)
    escalated: bool = False


class Decision(SQLModel, table=True):
    """One row per closed step: the primary key makes a second decision impossible."""

    request_id: int = Field(foreign_key="license_request.id", primary_key=True)
    step: int = Field(primary_key=True)
    decider_id: str = Field(max_length=32)
    outcome: str = Field(max_length=8)  # "approved" | "denied" | "auto"
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    decided_at: datetime = _utc()


class LicenseKey(SQLModel, table=True):
    __tablename__ = "license_key"
    __table_args__ = (
        # The keys never handed out, per product: a hand-out takes the first, the catalog
        # counts them. Partial, so both stay as fast with 10,000 keys given as with none.
        Index(
            "ix_license_key_free",
            "product_id",
            "id",
            sqlite_where=text("handed_out_at IS NULL"),
            postgresql_where=text("handed_out_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(foreign_key="product.id", index=True, max_length=64)
    ciphertext: str = Field(sa_column=Column(Text, nullable=False))
    imported_at: datetime = _utc()
    # When an assignment first pointed at it; a key is never handed out twice (unique
    # assignment.key_id), so this is set once, in the transaction that assigns it.
    handed_out_at: datetime | None = _utc(default=None, nullable=True)


class Assignment(SQLModel, table=True):
    """A seat held by a user; for key products it points at the key handed out."""

    __table_args__ = (
        UniqueConstraint("key_id", name="uq_assignment_key"),
        # Held seats of a product by last use: the reclaim scans and the digest read ranges of
        # it (last use older than the product's window; never used and assigned before it)
        # instead of joining a million seats to a million usage signals.
        Index(
            "ix_assignment_product_last_use",
            "product_id",
            "released_at",
            "last_used_at",
            "assigned_at",
            "user_id",  # with it, the renewal figures' "used lately" reads the index alone
        ),
        # The held seats that were nudged, per product by nudge time: unanswered nudges
        # (reclaim's, the digest's) are ranges of it. Partial, so it is as small as the
        # nudges, and it holds every column they test. (Each index costs every nudge's
        # update: a seat's product alone is read through the indexes that start with it.)
        Index(
            "ix_assignment_live_nudged",
            "product_id",
            "released_at",  # always NULL here, but SQLite ranks an index by the terms it serves
            "nudged_at",
            "last_used_at",
            "assigned_at",
            "snoozed_until",
            sqlite_where=text("released_at IS NULL AND nudged_at IS NOT NULL"),
            postgresql_where=text("released_at IS NULL AND nudged_at IS NOT NULL"),
        ),
        # Time-limited grants by end: partial, since most seats never end.
        Index(
            "ix_assignment_expires_at",
            "expires_at",
            sqlite_where=text("expires_at IS NOT NULL"),
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
        # The renewal peak reads only the last 90 days of a product's assignments, and the
        # seats held at an instant (assigned before it, released after) from the index alone.
        Index("ix_assignment_product_assigned", "product_id", "assigned_at", "released_at"),
        # "Given back this week" is a range of release times. Partial: only released seats, so
        # SQLite (no planner statistics) never takes it for "released_at IS NULL".
        Index(
            "ix_assignment_released_at",
            "released_at",
            sqlite_where=text("released_at IS NOT NULL"),
            postgresql_where=text("released_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(foreign_key="product.id", max_length=64)
    user_id: str = Field(index=True, max_length=32)
    request_id: int | None = Field(default=None, foreign_key="license_request.id")
    key_id: int | None = Field(default=None, foreign_key="license_key.id")
    assigned_at: datetime = _utc()
    released_at: datetime | None = _utc(default=None, nullable=True)
    # The holder's last use of the product while holding the seat: a copy of their
    # usage_signal.last_used_at (None: never seen in use), set when the seat is assigned and
    # moved forward with every signal (bot/usage.py), so seat scans need no join.
    last_used_at: datetime | None = _utc(default=None, nullable=True)
    release_reason: str = Field(default="", max_length=32)  # released | reclaimed | offboarded
    # Reclaim: the last nudge sent, and "Keep" answers snooze nudges until this time.
    nudged_at: datetime | None = _utc(default=None, nullable=True)
    snoozed_until: datetime | None = _utc(default=None, nullable=True)
    # Time-limited grants (product.max_days): when the seat ends, and when its holder was told.
    expires_at: datetime | None = _utc(default=None, nullable=True)
    expiry_warned_at: datetime | None = _utc(default=None, nullable=True)


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc(index=True)
    actor: str = Field(max_length=64, index=True)
    action: str = Field(max_length=64)
    subject: str = Field(max_length=128, index=True)
    details: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # canonical JSON
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    # HMAC of ``hash`` and the fingerprint of the audit key that made it; NULL only on entries
    # written before signing existed (schema 0003), which ``verify`` reports as unsigned.
    key_id: str | None = Field(default=None, max_length=32)
    mac: str | None = Field(default=None, max_length=64)
    # details["product"], copied so audit export and /license audit filter by product in SQL.
    product_id: str | None = Field(default=None, max_length=64, index=True)


class AuditHead(SQLModel, table=True):
    """A single row locked by every append, so concurrent writers never fork the chain."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    last_id: int = 0
    hash: str = Field(max_length=64)


class OutboxMessage(SQLModel, table=True):
    """A notification to deliver, written in the same transaction as the change it reports."""

    __tablename__ = "outbox_message"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", index=True, max_length=16)  # pending | sent | failed
    attempts: int = 0
    next_attempt_at: datetime = _utc()
    created_at: datetime = _utc()
    sent_at: datetime | None = _utc(default=None, nullable=True)
    last_error: str = ""


class ProcessedEvent(SQLModel, table=True):
    """Events API deliveries already handled: Slack retries and duplicates are acked and skipped."""

    __tablename__ = "processed_event"

    event_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = _utc()


class JobRun(SQLModel, table=True):
    """A scheduled job's run for one period (a day, a week): claimed once across processes."""

    __tablename__ = "job_run"

    job_id: str = Field(primary_key=True, max_length=64)
    period: str = Field(primary_key=True, max_length=32)
    ran_at: datetime = _utc()


class UsageSignal(SQLModel, table=True):
    """The last time a user was seen using a product, and where that was learnt."""

    __tablename__ = "usage_signal"

    product_id: str = Field(foreign_key="product.id", primary_key=True, max_length=64)
    user_id: str = Field(primary_key=True, max_length=32)
    last_used_at: datetime = _utc()
    source: str = Field(max_length=32)  # csv | api | reveal | keep | connector:<name>
    updated_at: datetime = _utc()


class AccessReview(SQLModel, table=True):
    """One product's permission audit: its approvers confirm or revoke each current holder."""

    __tablename__ = "access_review"

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(foreign_key="product.id", index=True, max_length=64)
    started_by: str = Field(max_length=64)  # a user ID, or "licensebot" for the schedule
    started_at: datetime = _utc()
    reminded_at: datetime | None = _utc(default=None, nullable=True)
    closed_at: datetime | None = _utc(default=None, nullable=True)


class AccessReviewItem(SQLModel, table=True):
    """A holder under review, and the answer given for them (empty until answered)."""

    __tablename__ = "access_review_item"

    review_id: int = Field(foreign_key="access_review.id", primary_key=True)
    assignment_id: int = Field(foreign_key="assignment.id", primary_key=True)
    user_id: str = Field(max_length=32)
    decision: str = Field(default="", max_length=8)  # "" | keep | revoke
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = _utc(default=None, nullable=True)


class AccessReviewCard(SQLModel, table=True):
    """The review cards each reviewer was sent (for chat.update): one per ``part``, each listing
    a slice of the holders, since one Slack message holds at most 50 blocks (schema 0007)."""

    __tablename__ = "access_review_card"

    review_id: int = Field(foreign_key="access_review.id", primary_key=True)
    reviewer_id: str = Field(primary_key=True, max_length=32)
    part: int = Field(default=0, primary_key=True)
    channel: str | None = None
    ts: str | None = None


class RenewalNotice(SQLModel, table=True):
    """A renewal reminder sent to IT: once per product, renewal date and threshold (60/30/7)."""

    __tablename__ = "renewal_notice"

    product_id: str = Field(foreign_key="product.id", primary_key=True, max_length=64)
    renewal_date: date = Field(primary_key=True)
    days_before: int = Field(primary_key=True)
    sent_at: datetime = _utc()


class SeatAlert(SQLModel, table=True):
    """The last seat alert IT got for a product, so a state is reported once, not every change."""

    __tablename__ = "seat_alert"

    product_id: str = Field(foreign_key="product.id", primary_key=True, max_length=64)
    state: str = Field(default="ok", max_length=16)  # ok | low | exhausted
    changed_at: datetime = _utc()


class ConnectorState(SQLModel, table=True):
    """Where a pull connector stopped reading (its cursor), so the next pull goes on from there."""

    __tablename__ = "connector_state"

    name: str = Field(primary_key=True, max_length=64)
    cursor: str = Field(default="", sa_column=Column(Text, nullable=False))
    updated_at: datetime = _utc()
