"""The Slack side of the outbox: renders a queued notification and sends it.

Rendering happens at send time from the database, so a card delivered late (after a retry)
shows the request as it is now.
"""

from __future__ import annotations

import http.client
import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.webhook import WebhookClient

from bot import approvals, notifications, overview, reclaim, roles
from bot.notifications import DeliveryFailed
from bot.runtime import Runtime
from handlers import blocks

log = logging.getLogger("licensebot.notifier")

# Errors after which retrying the same call cannot succeed.
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "user_not_found",
    "invalid_blocks",
    "msg_too_long",
    "no_text",
    "invalid_arguments",
    "account_inactive",
    "invalid_auth",
    "not_authed",
    "user_disabled",
    "cannot_dm_bot",
    "messages_tab_disabled",
}
# Rendered from the seat (assignment), not from a request.
_SEAT_KINDS = frozenset(
    {
        notifications.RECLAIM_NUDGE,
        notifications.RECLAIM_ANSWERED,
        notifications.SEAT_KEPT,
        notifications.SEAT_RELEASED,
        notifications.SEAT_RECLAIMED,
    }
)
# views.update on a modal the user already closed: nothing left to hide.
GONE = {"not_found", "view_not_found"}


def quiet_logger() -> logging.Logger:
    """slack_sdk logs request bodies at DEBUG; a revealed key travels in one (views.open)."""
    logger = logging.getLogger("licensebot.slack_sdk")
    logger.setLevel(logging.INFO)
    return logger


class SlackNotifier:
    def __init__(self, rt: Runtime, client: WebClient) -> None:
        self._rt = rt
        self._client = client

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            self._deliver(kind, payload)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            if kind == notifications.MASK_REVEAL and error in GONE:
                return
            if status == 429:
                retry = exc.response.headers.get("Retry-After", "1")
                raise DeliveryFailed("ratelimited", retry_after=float(retry)) from None
            reason = f"{error} (HTTP {status})" if error else f"HTTP {status}"
            raise DeliveryFailed(reason, permanent=status < 500 and error in PERMANENT) from None
        except (SlackRequestError, OSError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None

    def _deliver(self, kind: str, p: dict[str, Any]) -> None:
        if kind == notifications.RESPOND:
            self._respond(p["response_url"], p["text"])
            return
        if kind == notifications.NOTICE:
            self._post(p["user_id"], blocks.error(p["text"]))
            return
        if kind == notifications.HOME_REFRESH:
            view = blocks.home(overview.overview(self._rt, p["user_id"]))
            self._client.views_publish(user_id=p["user_id"], view=view)
            return
        if kind == notifications.IT_OFFBOARDED:
            self._tell_it(
                blocks.it_offboarded(
                    user_id=p["user_id"],
                    released=p["released"],
                    keys=p["keys"],
                    cancelled=p["cancelled"],
                )
            )
            return
        if kind == notifications.AUDIT_HEAD:
            self._tell_it(
                blocks.audit_head_notice(entries=int(p["entries"]), head=p["head"], day=p["day"])
            )
            return
        if kind == notifications.MASK_REVEAL:
            self._client.views_update(
                view_id=p["view_id"], view=blocks.masked_reveal_modal(p["product_name"])
            )
            return
        if kind in _SEAT_KINDS:
            self._seat(kind, p)
            return
        card = overview.request_card(self._rt, int(p["request_id"]))
        if card is None:
            log.warning("event=notification_dropped kind=%s reason=no_such_request", kind)
            return
        if kind == notifications.APPROVAL_CARD:
            self._approval_card(card, int(p["step"]), p["approver_id"])
        elif kind == notifications.STEP_CLOSED:
            self._close_step(card, int(p["step"]))
        elif kind == notifications.REQUEST_APPROVED:
            licence = next(
                (
                    lic
                    for lic in overview.my_licenses(self._rt, card.requester_id)
                    if lic.product_id == card.product.id
                ),
                None,
            )
            self._post(card.requester_id, blocks.request_approved(card, licence))
        elif kind == notifications.REQUEST_DENIED:
            self._post(card.requester_id, blocks.request_denied(card))
        elif kind == notifications.REQUEST_WAITLISTED:
            self._post(card.requester_id, blocks.request_waitlisted(card))
        elif kind == notifications.IT_PROVISION:
            self._tell_it(blocks.it_provision(card))
        elif kind == notifications.IT_OUT_OF_STOCK:
            self._tell_it(blocks.it_out_of_stock(card))
        elif kind == notifications.REQUEST_STALLED:
            self._tell_it(blocks.request_stalled(card))
        else:
            raise DeliveryFailed(f"unknown notification kind {kind!r}", permanent=True)

    def _seat(self, kind: str, p: dict[str, Any]) -> None:
        seat = reclaim.seat_view(self._rt, int(p["assignment_id"]))
        if seat is None:
            log.warning("event=notification_dropped kind=%s reason=no_such_assignment", kind)
            return
        if kind == notifications.RECLAIM_ANSWERED:
            text, body = blocks.reclaim_answered(seat)
            self._client.chat_update(channel=p["channel"], ts=p["ts"], text=text, blocks=body)
        elif kind == notifications.RECLAIM_NUDGE:
            self._post(seat.user_id, blocks.reclaim_nudge(seat))
        elif kind == notifications.SEAT_RECLAIMED:
            self._post(seat.user_id, blocks.seat_reclaimed(seat))
        else:  # SEAT_KEPT, SEAT_RELEASED: the answer by DM when there was no card to update
            self._post(seat.user_id, blocks.reclaim_answered(seat))

    def _post(self, channel: str, message: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
        text, body = message
        response = self._client.chat_postMessage(channel=channel, text=text, blocks=body)
        return {"channel": response["channel"], "ts": response["ts"]}

    def _approval_card(self, card: overview.RequestCard, step: int, approver: str) -> None:
        # A redelivery after a crash updates the card already posted instead of posting twice.
        posted = next(
            (
                row
                for row in approvals.step_cards(self._rt, request_id=card.id, step=step)
                if row.approver_id == approver and row.ts
            ),
            None,
        )
        text, body = blocks.approval_card(card, step=step)
        if posted is not None and posted.channel and posted.ts:
            self._client.chat_update(channel=posted.channel, ts=posted.ts, text=text, blocks=body)
            return
        sent = self._post(approver, (text, body))
        approvals.record_card(
            self._rt,
            request_id=card.id,
            step=step,
            approver_id=approver,
            channel=sent["channel"],
            ts=sent["ts"],
        )

    def _close_step(self, card: overview.RequestCard, step: int) -> None:
        text, body = blocks.approval_card(card, step=step)
        for row in approvals.step_cards(self._rt, request_id=card.id, step=step):
            if row.channel and row.ts:
                self._client.chat_update(channel=row.channel, ts=row.ts, text=text, blocks=body)

    def _tell_it(self, message: tuple[str, list[dict[str, Any]]]) -> None:
        if self._rt.it_channel:
            self._post(self._rt.it_channel, message)
            return
        # Without an IT channel the notice still has to reach someone who can act on it.
        for admin in roles.it_admins(self._rt):
            self._post(admin, message)

    def _respond(self, url: str, text: str) -> None:
        fallback, body = blocks.error(text)
        try:
            response = WebhookClient(url, logger=quiet_logger()).send(
                text=fallback, blocks=body, response_type="ephemeral", replace_original=False
            )
        except (ValueError, http.client.InvalidURL) as exc:
            # Not a URL anyone can post to: retrying cannot help.
            raise DeliveryFailed(f"response_url unusable ({exc})", permanent=True) from None
        if response.status_code == 429:
            raise DeliveryFailed("ratelimited", retry_after=1.0)
        if response.status_code >= 500:
            raise DeliveryFailed(f"response_url http_{response.status_code}")
        if response.status_code >= 400:
            # used_url / expired_url: Slack will not take it any more; keep it as failed.
            raise DeliveryFailed(f"response_url {response.body}", permanent=True)
