"""Buttons (Approve, Deny, Reveal key) and modal submissions (request form, deny reason)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import approvals, delivery, home, requests
from bot.errors import LicenseBotError
from bot.runtime import Runtime
from handlers import blocks, ids
from handlers.replies import message_for

log = logging.getLogger("licensebot.handlers")


def _step_ref(value: str) -> tuple[int, int] | None:
    request_id, _, step = value.partition(":")
    if not (request_id.isdigit() and step.isdigit()):
        return None
    return int(request_id), int(step)


def _refuse(rt: Runtime, body: dict[str, Any], text: str) -> None:
    url = body.get("response_url")
    if url:
        home.reply_later(rt, url, text)
    else:
        home.tell_user(rt, body["user"]["id"], text)


def handle_action_approve(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], rt: Runtime
) -> None:
    ack()
    ref = _step_ref(str(action.get("value", "")))
    if ref is None:
        _refuse(rt, body, "That button is broken; nothing was changed.")
        return
    try:
        approvals.decide(rt, request_id=ref[0], step=ref[1], actor=body["user"]["id"], approve=True)
    except LicenseBotError as exc:
        _refuse(rt, body, message_for(exc))


def handle_action_deny(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, rt: Runtime
) -> None:
    ack()
    ref = _step_ref(str(action.get("value", "")))
    if ref is None:
        _refuse(rt, body, "That button is broken; nothing was changed.")
        return
    try:
        product_name = approvals.check_may_decide(
            rt, request_id=ref[0], step=ref[1], actor=body["user"]["id"]
        )
    except LicenseBotError as exc:
        _refuse(rt, body, message_for(exc))
        return
    try:
        client.views_open(
            trigger_id=body["trigger_id"], view=blocks.deny_modal(ref[0], ref[1], product_name)
        )
    except SlackApiError as exc:
        log.warning("event=views_open_failed error=%s", exc.response.get("error"))
        _refuse(rt, body, "Slack did not let me open the form; please click Deny again.")


def handle_action_reveal(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, rt: Runtime
) -> None:
    ack()
    value = str(action.get("value", ""))
    if not value.isdigit():
        _refuse(rt, body, "That button is broken; nothing was changed.")
        return
    try:
        revealed = delivery.reveal_key(rt, actor=body["user"]["id"], assignment_id=int(value))
    except LicenseBotError as exc:
        _refuse(rt, body, message_for(exc))
        return
    try:
        # The key goes only into a modal: visible to its holder alone, never in history.
        response = client.views_open(
            trigger_id=body["trigger_id"],
            view=blocks.reveal_modal(revealed, hide_after_seconds=rt.reveal_seconds),
        )
    except SlackApiError as exc:
        log.warning("event=views_open_failed error=%s", exc.response.get("error"))
        _refuse(rt, body, "Slack did not let me show the key; please click Reveal key again.")
        return
    home.schedule_mask(rt, response["view"]["id"], revealed.product_name)


def handle_view_request(ack: Ack, body: dict[str, Any], view: dict[str, Any], rt: Runtime) -> None:
    values = view["state"]["values"]
    selected = values.get(ids.BLOCK_PRODUCT, {}).get(ids.INPUT_PRODUCT, {})
    product = (selected.get("selected_option") or {}).get("value")
    justification = (
        values.get(ids.BLOCK_JUSTIFICATION, {}).get(ids.INPUT_JUSTIFICATION, {}).get("value") or ""
    )
    if not product:
        ack(response_action="errors", errors={ids.BLOCK_PRODUCT: "Choose a product."})
        return
    try:
        result = requests.submit(
            rt,
            asked_by=body["user"]["id"],
            product_id=product,
            justification=justification,
            # Slack may deliver one submission twice; the view ID makes it one request.
            origin_key=f"view:{view['id']}",
        )
    except LicenseBotError as exc:
        ack(response_action="errors", errors={ids.BLOCK_PRODUCT: message_for(exc)[:150]})
        return
    ack(response_action="update", view=blocks.request_modal_done(result))


def handle_view_deny(ack: Ack, body: dict[str, Any], view: dict[str, Any], rt: Runtime) -> None:
    ref = _step_ref(view.get("private_metadata", ""))
    reason = (
        view["state"]["values"].get(ids.BLOCK_REASON, {}).get(ids.INPUT_REASON, {}).get("value")
        or ""
    ).strip()
    if ref is None:
        ack(response_action="errors", errors={ids.BLOCK_REASON: "This form is broken; close it."})
        return
    if not reason:
        ack(response_action="errors", errors={ids.BLOCK_REASON: "Say why, for the requester."})
        return
    try:
        approvals.decide(
            rt,
            request_id=ref[0],
            step=ref[1],
            actor=body["user"]["id"],
            approve=False,
            reason=reason,
        )
    except LicenseBotError as exc:
        ack(response_action="errors", errors={ids.BLOCK_REASON: message_for(exc)[:150]})
        return
    ack()


def register(app: App, rt: Runtime) -> None:
    app.action(ids.ACTION_APPROVE)(
        lambda ack, body, action: handle_action_approve(ack, body, action, rt)
    )
    app.action(ids.ACTION_DENY)(
        lambda ack, body, action, client: handle_action_deny(ack, body, action, client, rt)
    )
    app.action(ids.ACTION_REVEAL)(
        lambda ack, body, action, client: handle_action_reveal(ack, body, action, client, rt)
    )
    app.view(ids.VIEW_REQUEST)(lambda ack, body, view: handle_view_request(ack, body, view, rt))
    app.view(ids.VIEW_DENY)(lambda ack, body, view: handle_view_deny(ack, body, view, rt))
