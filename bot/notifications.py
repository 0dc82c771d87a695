"""What the domain asks to be told to people, and the interface that tells them.

Services queue a notification in the same transaction as the change it reports; the dispatcher
hands it to a ``Notifier`` (Slack's lives in ``handlers/``) after the commit. Payloads carry IDs,
never a license key: the notifier renders from the database at send time, so a late delivery
shows the current state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlmodel import Session

from storage import outbox

APPROVAL_CARD = "approval_card"  # request_id, step, approver_id
STEP_CLOSED = "step_closed"  # request_id, step: update every card of that step
REQUEST_APPROVED = "request_approved"  # request_id: tell the requester
REQUEST_DENIED = "request_denied"  # request_id
REQUEST_WAITLISTED = "request_waitlisted"  # request_id
REQUEST_STALLED = "request_stalled"  # request_id: nobody at all can approve a step
IT_PROVISION = "it_provision"  # request_id: IT must provision a seat
IT_OUT_OF_STOCK = "it_out_of_stock"  # request_id: product out of seats or keys
HOME_REFRESH = "home_refresh"  # user_id
RESPOND = "respond"  # response_url, text: an ephemeral answer to an interaction
NOTICE = "notice"  # user_id, text: a DM answer where there is no response_url (App Home)
MASK_REVEAL = "mask_reveal"  # view_ref (the modal's external_id): hide a revealed key again
AUDIT_HEAD = "audit_head"  # entries, head, day: the audit chain's head for IT
RECLAIM_NUDGE = "reclaim_nudge"  # assignment_id: ask an idle seat's holder to Keep or Release
RECLAIM_ANSWERED = "reclaim_answered"  # assignment_id, channel, ts: update the nudge card
SEAT_KEPT = "seat_kept"  # assignment_id: Keep confirmed by DM (no card to update)
SEAT_RELEASED = "seat_released"  # assignment_id: thank the holder by DM (no card to update)
SEAT_RECLAIMED = "seat_reclaimed"  # assignment_id: tell the holder the seat was taken back
IT_OFFBOARDED = "it_offboarded"  # user_id, released, keys, cancelled: someone left
# assignment_id, event, delivery_id, at: POST a signed seat event to the product's webhook
PROVISION_WEBHOOK = "provision_webhook"
# outbox_id, assignment_id, event, host, error: a webhook failed for good; IT can retry it
WEBHOOK_FAILED = "webhook_failed"
# Time-limited grants (bot/expiry.py, bot/grants.py), each rendered from the seat:
SEAT_EXPIRING = "seat_expiring"  # assignment_id: ends in 3 days; "Request extension" button
SEAT_EXPIRED = "seat_expired"  # assignment_id: the seat ended and was released
SEAT_EXTENDED = "seat_extended"  # assignment_id, request_id: an extension was approved
# product_id, product_name, delivery, state, previous, seats, taken, free, waiting,
# min_free_seats: a product's seat state changed (bot/seat_alerts.py)
IT_SEAT_ALERT = "it_seat_alert"
# as_of: the weekly IT digest (bot/digest.py), rendered as of that time; the message, then
# its files (the full table as CSV and the idle-vs-active chart) as a second notification
IT_DIGEST = "it_digest"
IT_DIGEST_FILES = "it_digest_files"
# Approval reminders and escalation (bot/reminders.py):
APPROVAL_REMINDER = "approval_reminder"  # request_id, step, approver_id, opened_at: card again
REQUEST_ESCALATED = "request_escalated"  # request_id, step, added, after_hours: tell requester
ESCALATION_NOBODY = "escalation_nobody"  # request_id, step, after_hours: no it_admin to add
# Renewals (bot/renewals.py): product_id, renewal_date, days_before: the figures for IT
RENEWAL_NOTICE = "renewal_notice"
# Access reviews (bot/reviews.py):
REVIEW_CARD = "review_card"  # review_id, reviewer_id, part: post one part of a reviewer's card
REVIEW_UPDATED = "review_updated"  # review_id, part (None: all): update every reviewer's card
REVIEW_REMINDER = "review_reminder"  # review_id, reviewer_id: the review is open for 7 days
SEAT_REVOKED = "seat_revoked"  # assignment_id, reviewer_id: tell the holder their seat went

KINDS = frozenset(
    {
        APPROVAL_CARD,
        STEP_CLOSED,
        REQUEST_APPROVED,
        REQUEST_DENIED,
        REQUEST_WAITLISTED,
        REQUEST_STALLED,
        IT_PROVISION,
        IT_OUT_OF_STOCK,
        HOME_REFRESH,
        RESPOND,
        NOTICE,
        MASK_REVEAL,
        AUDIT_HEAD,
        RECLAIM_NUDGE,
        RECLAIM_ANSWERED,
        SEAT_KEPT,
        SEAT_RELEASED,
        SEAT_RECLAIMED,
        IT_OFFBOARDED,
        PROVISION_WEBHOOK,
        WEBHOOK_FAILED,
        SEAT_EXPIRING,
        SEAT_EXPIRED,
        SEAT_EXTENDED,
        IT_SEAT_ALERT,
        IT_DIGEST,
        IT_DIGEST_FILES,
        APPROVAL_REMINDER,
        REQUEST_ESCALATED,
        ESCALATION_NOBODY,
        RENEWAL_NOTICE,
        REVIEW_CARD,
        REVIEW_UPDATED,
        REVIEW_REMINDER,
        SEAT_REVOKED,
    }
)


class DeliveryFailed(Exception):
    """A notification could not be delivered now.

    ``retry_after`` is the wait the far side asked for (429); ``permanent`` means retrying
    cannot help (the message is kept as failed, visible to IT).
    """

    def __init__(self, reason: str, *, retry_after: float | None = None, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent


class DeliveryDeferred(Exception):
    """Not now, and not a failure: deliver at ``until`` without counting an attempt.

    Raised for Slack's pace (one message per second per channel) and while a 429's
    Retry-After pause lasts; ``reason`` (when set) is kept as the row's last error.
    """

    def __init__(self, until: datetime, *, reason: str = ""):
        super().__init__(f"deferred until {until.isoformat()}" + (f" ({reason})" if reason else ""))
        self.until = until
        self.reason = reason


class Notifier(Protocol):
    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        """Deliver one notification or raise DeliveryFailed (or DeliveryDeferred)."""


def queue(
    session: Session, kind: str, *, now: datetime, delay: timedelta | None = None, **payload: Any
) -> None:
    assert kind in KINDS, kind
    outbox.enqueue(session, kind, payload, now=now + delay if delay else now)


def queue_many(
    session: Session, kind: str, payloads: Sequence[dict[str, Any]], *, now: datetime
) -> None:
    """``queue`` for each payload, in one multi-row insert (scans that tell thousands)."""
    assert kind in KINDS, kind
    outbox.enqueue_many(session, kind, payloads, now=now)
