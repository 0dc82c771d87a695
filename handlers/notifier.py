"""The Slack side of the outbox: renders a queued notification and sends it.

Rendering happens at send time from the database, so a card delivered late (after a retry)
shows the request as it is now.
"""

from __future__ import annotations

import http.client
import logging
import math
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.webhook import WebhookClient

from bot import (
    approvals,
    digest,
    digest_chart,
    expiry,
    notifications,
    overview,
    reclaim,
    renewals,
    reviews,
    roles,
    seat_alerts,
    webhooks,
)
from bot.notifications import DeliveryDeferred, DeliveryFailed
from bot.pacing import Pacer
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
# Time-limited grants, rendered from the seat (bot/expiry.py).
_GRANT_KINDS = frozenset(
    {notifications.SEAT_EXPIRING, notifications.SEAT_EXPIRED, notifications.SEAT_EXTENDED}
)


def _seat_count(p: dict[str, Any]) -> seat_alerts.SeatCount:
    """The counts a seat alert was queued with (the moment's numbers, not today's)."""
    return seat_alerts.SeatCount(
        product_id=str(p["product_id"]),
        product_name=str(p["product_name"]),
        delivery=str(p["delivery"]),
        seats=int(p["seats"]),
        taken=int(p["taken"]),
        free=int(p["free"]),
        waiting=int(p["waiting"]),
        min_free_seats=int(p["min_free_seats"]),
    )


# Access reviews (bot/reviews.py): rendered from the review, or from the revoked seat.
_REVIEW_KINDS = frozenset(
    {
        notifications.REVIEW_CARD,
        notifications.REVIEW_UPDATED,
        notifications.REVIEW_REMINDER,
        notifications.SEAT_REVOKED,
    }
)
# views.update on a modal the user already closed: nothing left to hide.
GONE = {"not_found", "view_not_found"}


def _retry_after(header: str | None) -> float:
    try:
        seconds = float(header or 1)
    except ValueError:  # an HTTP date instead of seconds: wait the shortest sensible time
        return 1.0
    return min(seconds, 3600.0) if math.isfinite(seconds) else 1.0


def quiet_logger() -> logging.Logger:
    """slack_sdk logs request bodies at DEBUG; a revealed key travels in one (views.open)."""
    logger = logging.getLogger("licensebot.slack_sdk")
    logger.setLevel(logging.INFO)
    return logger


class SlackNotifier:
    def __init__(self, rt: Runtime, client: WebClient, pacer: Pacer | None = None) -> None:
        self._rt = rt
        self._client = client
        self._pacer = pacer or Pacer(rt.clock)

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        if kind != notifications.RESPOND:  # response_url posts are not Web API calls
            # After a 429, every queued row waits out Retry-After without calling Slack.
            self._pacer.check()
        try:
            self._deliver(kind, payload)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            if kind == notifications.MASK_REVEAL and error in GONE:
                return
            if status == 429:
                # Slack's limits are per method per workspace, but one 429 means we are going
                # too fast: pause all Slack calls. Not a failure: no attempt is counted.
                until = self._pacer.pause(_retry_after(exc.response.headers.get("Retry-After")))
                raise DeliveryDeferred(until, reason="ratelimited") from None
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
        if kind == notifications.IT_DIGEST:
            self._tell_it(blocks.it_digest(digest.report(self._rt, _as_of(p))))
            return
        if kind == notifications.IT_DIGEST_FILES:
            self._digest_files(_as_of(p))
            return
        if kind == notifications.AUDIT_HEAD:
            self._tell_it(
                blocks.audit_head_notice(entries=int(p["entries"]), head=p["head"], day=p["day"])
            )
            return
        if kind == notifications.WEBHOOK_FAILED:
            self._tell_it(blocks.webhook_failed(webhooks.failure_view(self._rt, p)))
            return
        if kind == notifications.MASK_REVEAL:
            view = blocks.masked_reveal_modal(p["product_name"])
            if "view_ref" in p:  # the modal's external_id (bot/delivery.py reveal_key)
                self._client.views_update(external_id=p["view_ref"], view=view)
            else:  # rows queued before external_ids, by the modal's view ID
                self._client.views_update(view_id=p["view_id"], view=view)
            return
        if kind == notifications.IT_SEAT_ALERT:
            self._tell_it(blocks.it_seat_alert(_seat_count(p), previous=str(p["previous"])))
            return
        if kind in _GRANT_KINDS:
            self._grant(kind, p)
            return
        if kind in _REVIEW_KINDS:
            self._review(kind, p)
            return
        if kind in _SEAT_KINDS:
            self._seat(kind, p)
            return
        if kind == notifications.RENEWAL_NOTICE:
            self._renewal(p)
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
        elif kind == notifications.APPROVAL_REMINDER:
            self._reminder(card, int(p["step"]), p["approver_id"], p["opened_at"])
        elif kind == notifications.REQUEST_ESCALATED:
            step, added, after = int(p["step"]), list(p["added"]), str(p["after_hours"])
            self._post(
                card.requester_id,
                blocks.request_escalated(card, step=step, added=added, after_hours=after),
            )
        elif kind == notifications.ESCALATION_NOBODY:
            step, after = int(p["step"]), str(p["after_hours"])
            self._tell_it(blocks.escalation_nobody(card, step=step, after_hours=after))
        else:
            raise DeliveryFailed(f"unknown notification kind {kind!r}", permanent=True)

    def _reminder(
        self, card: overview.RequestCard, step: int, approver: str, opened_at: str
    ) -> None:
        """Post the card again with a reminder on top, and make that the card the step's close
        updates; the earlier card loses its buttons and points to the new one."""
        if card.status != "pending" or card.step != step or card.decision_for(step) is not None:
            # Decided or cancelled between the job and now: nothing to remind of.
            log.info("event=notification_dropped kind=approval_reminder reason=step_closed")
            return
        opened = datetime.fromisoformat(opened_at)
        waited = self._rt.clock.now() - (opened if opened.tzinfo else opened.replace(tzinfo=UTC))
        earlier = next(
            (
                row
                for row in approvals.step_cards(self._rt, request_id=card.id, step=step)
                if row.approver_id == approver and row.channel and row.ts
            ),
            None,
        )
        if earlier is not None and earlier.channel and earlier.ts:
            # First, so a retry after a failure below repeats only this (idempotent) update.
            text, body = blocks.approval_card_moved(card, step=step)
            try:
                self._client.chat_update(
                    channel=earlier.channel, ts=earlier.ts, text=text, blocks=body
                )
            except SlackApiError as exc:
                if exc.response.status_code == 429 or exc.response.status_code >= 500:
                    raise
                # The approver deleted it, or Slack will not edit it: the reminder still goes.
                log.info(
                    "event=old_card_not_updated request=%s error=%s",
                    card.id,
                    exc.response.get("error", ""),
                )
        sent = self._post(approver, blocks.approval_reminder(card, step=step, waited=waited))
        approvals.record_card(
            self._rt,
            request_id=card.id,
            step=step,
            approver_id=approver,
            channel=sent["channel"],
            ts=sent["ts"],
        )

    def _renewal(self, p: dict[str, Any]) -> None:
        figures = renewals.product_figures(self._rt, str(p["product_id"]))
        if figures is None or figures.renewal_date.isoformat() != p["renewal_date"]:
            # The renewal date was removed or moved since: that notice no longer holds.
            log.info("event=notification_dropped kind=renewal_notice reason=renewal_changed")
            return
        self._tell_it(blocks.renewal_notice(figures, days_before=int(p["days_before"])))

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

    def _grant(self, kind: str, p: dict[str, Any]) -> None:
        grant = expiry.grant_view(self._rt, int(p["assignment_id"]))
        if grant is None:
            log.warning("event=notification_dropped kind=%s reason=no_such_assignment", kind)
            return
        if kind == notifications.SEAT_EXPIRING:
            self._post(grant.user_id, blocks.seat_expiring(grant))
        elif kind == notifications.SEAT_EXPIRED:
            self._post(grant.user_id, blocks.seat_expired(grant))
        else:  # SEAT_EXTENDED
            self._post(grant.user_id, blocks.seat_extended(grant, int(p["request_id"])))

    def _review(self, kind: str, p: dict[str, Any]) -> None:
        if kind == notifications.SEAT_REVOKED:
            seat = reclaim.seat_view(self._rt, int(p["assignment_id"]))
            if seat is None:
                log.warning("event=notification_dropped kind=%s reason=no_such_assignment", kind)
                return
            self._post(seat.user_id, blocks.seat_revoked(seat, p["reviewer_id"]))
            return
        review_id = int(p["review_id"])
        if kind == notifications.REVIEW_REMINDER:
            summary = reviews.summary(self._rt, review_id)
            if summary is None or summary.closed_at is not None:
                return  # closed before the reminder went out: nothing left to ask
            self._post(p["reviewer_id"], blocks.review_reminder(summary))
            return
        if kind == notifications.REVIEW_CARD:
            self._review_card(review_id, p["reviewer_id"], int(p["part"]))
            return
        # REVIEW_UPDATED: every reviewer's card of that part (or of every part) shows it now.
        part = None if p.get("part") is None else int(p["part"])
        rendered: dict[int, tuple[str, list[dict[str, Any]]]] = {}
        for row in reviews.posted_cards(self._rt, review_id, part=part):
            if not (row.channel and row.ts):
                continue  # not posted yet: its REVIEW_CARD renders the current state
            if row.part not in rendered:
                card = reviews.card(self._rt, review_id, row.part)
                if card is None:
                    return
                rendered[row.part] = blocks.review_card(card)
            text, body = rendered[row.part]
            self._client.chat_update(channel=row.channel, ts=row.ts, text=text, blocks=body)

    def _review_card(self, review_id: int, reviewer_id: str, part: int) -> None:
        card = reviews.card(self._rt, review_id, part)
        if card is None:
            log.warning("event=notification_dropped kind=review_card reason=no_such_review")
            return
        message = blocks.review_card(card)
        # A redelivery after a crash updates the card already posted instead of posting twice.
        posted = next(
            (
                row
                for row in reviews.posted_cards(self._rt, review_id, part=part)
                if row.reviewer_id == reviewer_id and row.channel and row.ts
            ),
            None,
        )
        if posted is not None and posted.channel and posted.ts:
            text, body = message
            self._client.chat_update(channel=posted.channel, ts=posted.ts, text=text, blocks=body)
            return
        sent = self._post(reviewer_id, message)
        reviews.record_card(
            self._rt,
            review_id=review_id,
            reviewer_id=reviewer_id,
            part=part,
            channel=sent["channel"],
            ts=sent["ts"],
        )

    def _post(
        self, channel: str, message: tuple[str, list[dict[str, Any]]], *, paced: bool = True
    ) -> dict[str, Any]:
        if paced:  # one message per second per channel; a user ID stands for their DM
            self._pacer.reserve(channel)
        text, body = message
        response = self._client.chat_postMessage(channel=channel, text=text, blocks=body)
        return {"channel": response["channel"], "ts": response["ts"]}

    def _approval_card(self, card: overview.RequestCard, step: int, approver: str) -> None:
        # A redelivery after a crash updates the card already posted instead of posting twice.
        posted = card.posted.get((step, approver))
        text, body = blocks.approval_card(card, step=step)
        if posted is not None:
            channel, ts = posted
            self._client.chat_update(channel=channel, ts=ts, text=text, blocks=body)
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
        for (card_step, _), (channel, ts) in sorted(card.posted.items()):
            if card_step == step:
                self._client.chat_update(channel=channel, ts=ts, text=text, blocks=body)

    def _digest_files(self, as_of: datetime) -> None:
        """The digest's full table (CSV) and chart (PNG), shared in the IT channel in one
        message through Slack's external upload (files.getUploadURLExternal, a POST of the
        bytes, files.completeUploadExternal: what files_upload_v2 does)."""
        channel = self._rt.it_channel
        if not channel:
            # Files are shared into a channel; without one the digest message (sent to the
            # it_admins by DM) is all IT gets.
            log.warning("event=digest_files_skipped reason=no_it_channel")
            return
        self._pacer.reserve(channel)  # completing the upload posts a message there
        report = digest.report(self._rt, as_of)
        day = report.as_of.date().isoformat()
        self._client.files_upload_v2(
            file_uploads=[
                {
                    "filename": f"licensebot-digest-{day}.csv",
                    "content": digest.to_csv(report),
                    "title": f"License digest {day}: all products (CSV)",
                },
                {
                    "filename": f"licensebot-digest-{day}.png",
                    "content": digest_chart.chart_png(report),
                    "title": f"Idle vs active seats by product, {day}",
                    "alt_txt": "Stacked bars of active, new, idle and unknown seats by product",
                },
            ],
            channel=channel,
            initial_comment=blocks.digest_files_comment(report),
        )

    def _tell_it(self, message: tuple[str, list[dict[str, Any]]]) -> None:
        if self._rt.it_channel:
            self._post(self._rt.it_channel, message)
            return
        # Without an IT channel the notice still has to reach someone who can act on it.
        admins = roles.it_admins(self._rt)
        # All DMs at once or none: a deferral half-way would post the first ones twice.
        self._pacer.reserve(*admins)
        for admin in admins:
            self._post(admin, message, paced=False)

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


def _as_of(payload: dict[str, Any]) -> datetime:
    at = datetime.fromisoformat(str(payload["as_of"]))
    return at if at.tzinfo else at.replace(tzinfo=UTC)
