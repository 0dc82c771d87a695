"""Small services the Slack side needs that only queue a notification."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from bot import notifications
from bot.runtime import Runtime
from storage.models import ProcessedEvent


def refresh_home(rt: Runtime, user_id: str, *, event_id: str | None = None) -> bool:
    """Queue a fresh App Home for ``user_id``; False if this event was handled before.

    The event ID is recorded in the same transaction as the work, so a retry of an event
    whose first delivery failed half-way is still handled, and a duplicate never is.
    """
    try:
        with rt.db.transaction() as session:
            if event_id:
                session.add(ProcessedEvent(event_id=event_id[:64], received_at=rt.clock.now()))
                session.flush()
            notifications.queue(
                session, notifications.HOME_REFRESH, now=rt.clock.now(), user_id=user_id
            )
    except IntegrityError:
        return False
    rt.wake_dispatcher()
    return True


def reply_later(rt: Runtime, response_url: str, text: str) -> None:
    """Queue an ephemeral answer to an interaction (a refusal, an error) for its clicker."""
    with rt.db.transaction() as session:
        notifications.queue(
            session, notifications.RESPOND, now=rt.clock.now(), response_url=response_url, text=text
        )
    rt.wake_dispatcher()


def tell_user(rt: Runtime, user_id: str, text: str) -> None:
    """Answer a click that came without a response_url (App Home): a DM, and a fresh Home."""
    now = rt.clock.now()
    with rt.db.transaction() as session:
        notifications.queue(session, notifications.NOTICE, now=now, user_id=user_id, text=text)
        notifications.queue(session, notifications.HOME_REFRESH, now=now, user_id=user_id)
    rt.wake_dispatcher()
