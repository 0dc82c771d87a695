"""Provisioning webhooks: a signed JSON event to the product's URL when a seat is assigned or
released, so an identity provider or a script can create or remove the account at the vendor.

Flow: ``seat_events`` queues a ``provision_webhook`` outbox row in the transaction that changed
the seat; the dispatcher hands it to ``WebhookDeliverer`` (through ``WithWebhooks``, which sends
every other kind to Slack). A failed POST is retried with the outbox's backoff; when a row fails
for good (attempts used up, a 4xx answer, or no secret to sign with) ``WebhookDeliverer.failed``
queues a ``webhook_failed`` notice for IT in the same transaction. The row stays ``failed``:
``licensebot outbox retry ID`` sends it again, with the same delivery id.

Signing (what a receiver checks):
    X-Licensebot-Timestamp: <unix seconds when this attempt was sent>
    X-Licensebot-Signature: sha256=<hex HMAC-SHA256(LICENSEBOT_WEBHOOK_SECRET,
                                                    "<timestamp>." + raw body)>
The timestamp is inside the signed string, so an old request cannot be replayed with a new
timestamp; receivers refuse timestamps more than ``TOLERANCE_SECONDS`` away from their clock
and can drop repeated ``id`` values (a retry repeats the id of its event).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlmodel import Session, col, select

from bot import notifications
from bot.notifications import DeliveryFailed, Notifier
from bot.runtime import Runtime
from storage import audit
from storage.models import Assignment, OutboxMessage, Person, Product

log = logging.getLogger("licensebot.webhooks")

ASSIGNED = "seat.assigned"
RELEASED = "seat.released"
SIGNATURE_HEADER = "X-Licensebot-Signature"
TIMESTAMP_HEADER = "X-Licensebot-Timestamp"
EVENT_HEADER = "X-Licensebot-Event"
DELIVERY_HEADER = "X-Licensebot-Delivery"
TOLERANCE_SECONDS = 300
ACTOR = "licensebot"
# Answers after which sending the same request again cannot help (IT is told at once).
_RETRYABLE_4XX = {408, 425, 429}
NO_SECRET = (
    "LICENSEBOT_WEBHOOK_SECRET is not set: refusing to send an unsigned webhook "
    "(set it, restart, then retry the message)"
)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Licensebot-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, *, timestamp: str, body: bytes, signature: str, now: float) -> bool:
    """What a receiver does (also shown in the README): the signature matches and the
    timestamp is recent."""
    try:
        fresh = abs(now - int(timestamp)) <= TOLERANCE_SECONDS
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def host_of(url: str) -> str:
    """The part of a webhook URL that may be shown: its path or query may carry a token."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def queue_event(session: Session, assignment: Assignment, event: str, *, now: datetime) -> None:
    """Queue the event for ``assignment`` if its product has a webhook (seat products only)."""
    queue_events(session, [assignment], event, now=now)


def queue_events(
    session: Session, assignments: Sequence[Assignment], event: str, *, now: datetime
) -> None:
    """``queue_event`` for many seats, with one look at their products."""
    products = {a.product_id for a in assignments}
    if not products:
        return
    hooked = set(
        session.exec(
            select(Product.id).where(
                col(Product.id).in_(sorted(products)),
                Product.delivery == "seat",
                col(Product.provision_webhook).is_not(None),
                Product.provision_webhook != "",
            )
        ).all()
    )
    for assignment in assignments:
        if assignment.product_id not in hooked:
            continue
        notifications.queue(
            session,
            notifications.PROVISION_WEBHOOK,
            now=now,
            assignment_id=assignment.id,
            event=event,
            # Fixed when queued: every retry of this event carries the same id (receivers dedupe).
            delivery_id=uuid.uuid4().hex,
            at=now.isoformat(),
        )


@dataclass(frozen=True)
class WebhookFailure:
    """What IT is told when an event could not be delivered."""

    outbox_id: int
    event: str
    product_name: str
    user_id: str
    host: str
    error: str


def failure_view(rt: Runtime, payload: dict[str, Any]) -> WebhookFailure:
    with rt.db.read() as session:
        assignment = session.get(Assignment, int(payload["assignment_id"]))
        product = session.get(Product, assignment.product_id) if assignment else None
    return WebhookFailure(
        outbox_id=int(payload["outbox_id"]),
        event=str(payload["event"]),
        product_name=product.name if product else str(payload.get("product_id", "?")),
        user_id=assignment.user_id if assignment else "",
        host=str(payload["host"]),
        error=str(payload["error"]),
    )


@dataclass(frozen=True)
class _Request:
    url: str
    body: bytes


def _request(rt: Runtime, payload: dict[str, Any]) -> _Request | None:
    """The event as it is sent; None when there is nothing to send any more."""
    with rt.db.read() as session:
        assignment = session.get(Assignment, int(payload["assignment_id"]))
        if assignment is None:
            return None
        product = session.get(Product, assignment.product_id)
        if product is None or not product.provision_webhook:
            return None  # the webhook was removed from the catalog since
        person = session.get(Person, assignment.user_id)
        event = str(payload["event"])
        body: dict[str, Any] = {
            "event": event,
            "id": payload["delivery_id"],
            "product_id": product.id,
            "product_name": product.name,
            "user": {
                "slack_user_id": assignment.user_id,
                "email": person.email if person else None,
                "name": person.name if person else None,
            },
            "assignment_id": assignment.id,
            "at": payload["at"],
        }
        if event == RELEASED:
            body["reason"] = assignment.release_reason or "released"
        url = product.provision_webhook
    # Compact and key-sorted: the bytes signed are the bytes sent.
    return _Request(url, json.dumps(body, separators=(",", ":"), sort_keys=True).encode())


class WebhookDeliverer:
    """POSTs ``provision_webhook`` rows; raises DeliveryFailed so the dispatcher retries."""

    def __init__(self, rt: Runtime, client: httpx.Client) -> None:
        self._rt = rt
        self._client = client

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        request = _request(self._rt, payload)
        if request is None:
            log.warning(
                "event=webhook_dropped assignment=%s reason=no_webhook", payload["assignment_id"]
            )
            return
        # Read at send time: setting the secret and retrying is enough, no queued row is stale.
        secret = self._rt.policy.webhook_secret
        if not secret:
            raise DeliveryFailed(NO_SECRET, permanent=True)
        timestamp = str(int(self._rt.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "licensebot-webhooks",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, request.body),
            EVENT_HEADER: str(payload["event"]),
            DELIVERY_HEADER: str(payload["delivery_id"]),
        }
        host = host_of(request.url)
        try:
            response = self._client.post(request.url, content=request.body, headers=headers)
        except httpx.HTTPError as exc:
            # Never the URL itself (its path may hold a token): the host is enough to act on.
            raise DeliveryFailed(f"{type(exc).__name__} from {host}: {exc}"[:300]) from None
        status = response.status_code
        if 200 <= status < 300:
            log.info(
                "event=webhook_sent host=%s event=%s status=%s", host, payload["event"], status
            )
            return
        reason = f"HTTP {status} from {host}"
        if status >= 500 or status in _RETRYABLE_4XX:
            raise DeliveryFailed(reason, retry_after=_retry_after(response))
        # 3xx (not followed: the signed body must go to the URL IT configured) and other 4xx.
        raise DeliveryFailed(reason, permanent=True)

    def failed(self, session: Session, row: OutboxMessage, now: datetime) -> None:
        """The dispatcher's ``on_failed``: a webhook that failed for good is told to IT (and
        audited) in the transaction that marks it failed, so it cannot be lost."""
        if row.kind != notifications.PROVISION_WEBHOOK:
            return
        assignment = session.get(Assignment, int(row.payload["assignment_id"]))
        product = session.get(Product, assignment.product_id) if assignment else None
        host = host_of(product.provision_webhook) if product and product.provision_webhook else "?"
        event = str(row.payload["event"])
        audit.append(
            session,
            self._rt.audit_keys,
            at=now,
            actor=ACTOR,
            action="webhook.failed",
            subject=f"user:{assignment.user_id}" if assignment else "outbox",
            details={
                "outbox": row.id,
                "event": event,
                "product": product.id if product else None,
                "assignment": row.payload["assignment_id"],
                "host": host,
                "error": row.last_error,
            },
        )
        notifications.queue(
            session,
            notifications.WEBHOOK_FAILED,
            now=now,
            outbox_id=row.id,
            assignment_id=row.payload["assignment_id"],
            event=event,
            host=host,
            error=row.last_error,
        )


def _retry_after(response: httpx.Response) -> float | None:
    try:
        value = float(response.headers.get("Retry-After", ""))
    except ValueError:  # absent, or an HTTP date: the outbox's own backoff applies
        return None
    return min(max(value, 1.0), 3600.0) if math.isfinite(value) else None


class WithWebhooks:
    """The dispatcher's one Notifier: webhook rows to the deliverer, everything else to Slack."""

    def __init__(self, slack: Notifier, webhooks: WebhookDeliverer) -> None:
        self._slack = slack
        self._webhooks = webhooks

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == notifications.PROVISION_WEBHOOK:
            self._webhooks.deliver(kind, payload)
        else:
            self._slack.deliver(kind, payload)
