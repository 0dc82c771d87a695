"""What the domain asks to be told to people, and the interface that tells them.

Services queue a notification in the same transaction as the change it reports; the dispatcher
hands it to a ``Notifier`` (Slack's lives in ``handlers/``) after the commit. Payloads carry IDs,
never a license key: the notifier renders from the database at send time, so a late delivery
shows the current state.
"""

from __future__ import annotations

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
MASK_REVEAL = "mask_reveal"  # view_id: hide a revealed key again
AUDIT_HEAD = "audit_head"  # entries, head, day: the audit chain's head for IT
RECLAIM_NUDGE = "reclaim_nudge"  # assignment_id: ask an idle seat's holder to Keep or Release
RECLAIM_ANSWERED = "reclaim_answered"  # assignment_id, channel, ts: update the nudge card
SEAT_KEPT = "seat_kept"  # assignment_id: Keep confirmed by DM (no card to update)
SEAT_RELEASED = "seat_released"  # assignment_id: thank the holder by DM (no card to update)
SEAT_RECLAIMED = "seat_reclaimed"  # assignment_id: tell the holder the seat was taken back
IT_OFFBOARDED = "it_offboarded"  # user_id, released, keys, cancelled: someone left

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


class Notifier(Protocol):
    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        """Deliver one notification or raise DeliveryFailed."""


def queue(
    session: Session, kind: str, *, now: datetime, delay: timedelta | None = None, **payload: Any
) -> None:
    assert kind in KINDS, kind
    outbox.enqueue(session, kind, payload, now=now + delay if delay else now)
