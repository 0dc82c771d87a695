"""Buttons (Approve, Deny, Reveal key) and modal submissions (request form, deny reason)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from re import Pattern
from typing import Any, TypeVar
from urllib.parse import urlsplit

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import approvals, delivery, expiry, home, reclaim, requests, reviews
from bot.directory import looks_like_user_id
from bot.errors import LicenseBotError
from bot.runtime import Runtime
from bot.text import storable
from handlers import blocks, ids
from handlers.replies import message_for

log = logging.getLogger("licensebot.handlers")
T = TypeVar("T")

# Button values and private_metadata the bot wrote: ASCII digits, small enough for the database
# (str.isdigit() also accepts "²", which int() refuses, and 5,000 digits overflow every column).
_STEP_REF = re.compile(r"([0-9]{1,9}):([0-9]{1,4})")
_ROW_ID = re.compile(r"[0-9]{1,9}")
# An access review card's button: "<review_id>:<assignment_id>".
_REVIEW_REF = re.compile(r"([0-9]{1,9}):([0-9]{1,9})")
# Slack's view IDs ("V0123ABCD"); origin keys built from them must fit their column.
_VIEW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
BROKEN_FORM = "This form is broken; close it and open it again."
BROKEN_BUTTON = "That button is broken; nothing was changed."
NO_REVEAL = "Slack did not let me show the key; please click Reveal key again."
NO_DENY_FORM = "Slack did not let me open the form; please click Deny again."


def _step_ref(value: object) -> tuple[int, int] | None:
    match = _STEP_REF.fullmatch(value) if isinstance(value, str) else None
    return (int(match[1]), int(match[2])) if match else None


def _review_ref(value: object) -> tuple[int, int] | None:
    match = _REVIEW_REF.fullmatch(value) if isinstance(value, str) else None
    return (int(match[1]), int(match[2])) if match else None


def _row_id(value: object) -> int | None:
    return int(value) if isinstance(value, str) and _ROW_ID.fullmatch(value) else None


def _clicker(body: dict[str, Any]) -> str | None:
    """Who clicked or submitted, if the payload names a Slack user the way Slack does."""
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    return user_id if isinstance(user_id, str) and looks_like_user_id(user_id) else None


def _malformed(body: dict[str, Any], what: str) -> None:
    log.warning("event=malformed_payload type=%r problem=%s", str(body.get("type"))[:40], what)


def _hook_url(value: object) -> str | None:
    """The payload's response_url if it is one the outbox can post to later; else None."""
    if not (isinstance(value, str) and len(value) <= 2000 and value.isascii()):
        return None
    if not value.isprintable():
        return None
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError unless 0-65535
    except ValueError:  # "http://[::1" and other unparsable hosts
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname or port == 0:
        return None
    return value


def _refuse(rt: Runtime, body: dict[str, Any], clicker: str, text: str) -> None:
    url = _hook_url(body.get("response_url"))
    if url:
        home.reply_later(rt, url, text)
    else:
        home.tell_user(rt, clicker, text)


def _trigger(body: dict[str, Any]) -> str | None:
    trigger_id = body.get("trigger_id")
    return trigger_id if isinstance(trigger_id, str) and trigger_id else None


def _input(view: dict[str, Any], block_id: str, action_id: str) -> dict[str, Any]:
    """One input's entry in a submitted modal's ``state.values``; {} when it is not there."""
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    block = values.get(block_id) if isinstance(values, dict) else None
    entry = block.get(action_id) if isinstance(block, dict) else None
    return entry if isinstance(entry, dict) else {}


def _click(
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    rt: Runtime,
    parse: Callable[[object], T | None],
) -> tuple[str, T] | None:
    """Every button's start: ack, who clicked, and the button's value as the bot wrote it.

    None (after logging or refusing) when the payload cannot be acted on.
    """
    ack()
    clicker = _clicker(body)
    if clicker is None:
        _malformed(body, "no_user")
        return None
    value = parse(action.get("value"))
    if value is None:
        _refuse(rt, body, clicker, BROKEN_BUTTON)
        return None
    return clicker, value


def handle_action_approve(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], rt: Runtime
) -> None:
    clicked = _click(ack, body, action, rt, _step_ref)
    if clicked is None:
        return
    clicker, ref = clicked
    try:
        approvals.decide(rt, request_id=ref[0], step=ref[1], actor=clicker, approve=True)
    except LicenseBotError as exc:
        _refuse(rt, body, clicker, message_for(exc))


def handle_action_deny(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, rt: Runtime
) -> None:
    clicked = _click(ack, body, action, rt, _step_ref)
    if clicked is None:
        return
    clicker, ref = clicked
    try:
        product_name = approvals.check_may_decide(rt, request_id=ref[0], step=ref[1], actor=clicker)
    except LicenseBotError as exc:
        _refuse(rt, body, clicker, message_for(exc))
        return
    trigger_id = _trigger(body)
    if trigger_id is None:
        _refuse(rt, body, clicker, NO_DENY_FORM)
        return
    try:
        client.views_open(
            trigger_id=trigger_id, view=blocks.deny_modal(ref[0], ref[1], product_name)
        )
    except SlackApiError as exc:
        log.warning("event=views_open_failed error=%s", exc.response.get("error"))
        _refuse(rt, body, clicker, NO_DENY_FORM)


def handle_action_reveal(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, rt: Runtime
) -> None:
    clicked = _click(ack, body, action, rt, _row_id)
    if clicked is None:
        return
    clicker, assignment_id = clicked
    trigger_id = _trigger(body)
    if trigger_id is None:
        # No trigger, no modal: decrypting (and auditing a reveal) would be for nothing.
        _refuse(rt, body, clicker, NO_REVEAL)
        return
    try:
        revealed = delivery.reveal_key(rt, actor=clicker, assignment_id=assignment_id)
    except LicenseBotError as exc:
        _refuse(rt, body, clicker, message_for(exc))
        return
    try:
        # The key goes only into a modal: visible to its holder alone, never in history.
        # Hiding it again is already queued (reveal_key), under the modal's external_id.
        client.views_open(
            trigger_id=trigger_id,
            view=blocks.reveal_modal(revealed, hide_after_seconds=rt.reveal_seconds),
        )
    except SlackApiError as exc:
        log.warning("event=views_open_failed error=%s", exc.response.get("error"))
        _refuse(rt, body, clicker, NO_REVEAL)
        return


def _message_ref(body: dict[str, Any]) -> tuple[str, str] | None:
    """The channel and ts of the message the button was on, so its card can be updated."""
    container = body.get("container")
    if not isinstance(container, dict):
        return None
    channel, ts = container.get("channel_id"), container.get("message_ts")
    if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
        return channel[:64], ts[:64]
    return None


def handle_action_reclaim(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], rt: Runtime, *, keep: bool
) -> None:
    """Keep or Release on a reclaim nudge; only the seat's holder may answer."""
    clicked = _click(ack, body, action, rt, _row_id)
    if clicked is None:
        return
    clicker, assignment_id = clicked
    answer = reclaim.keep if keep else reclaim.release
    try:
        answer(rt, actor=clicker, assignment_id=assignment_id, card=_message_ref(body))
    except LicenseBotError as exc:
        _refuse(rt, body, clicker, message_for(exc))


def handle_action_extend(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], rt: Runtime
) -> None:
    """ "Request extension" on an expiry warning: a new request for the same product, which
    only the seat's holder may make; the answer (who approves next) is shown to them alone."""
    clicked = _click(ack, body, action, rt, _row_id)
    if clicked is None:
        return
    clicker, assignment_id = clicked
    try:
        result = expiry.request_extension(rt, actor=clicker, assignment_id=assignment_id)
    except LicenseBotError as exc:
        _refuse(rt, body, clicker, message_for(exc))
        return
    _refuse(rt, body, clicker, blocks.submitted(result)[0])


def handle_action_review(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], rt: Runtime, *, decision: str
) -> None:
    """Keep or Revoke on an access review card; only that review's reviewers may answer (the
    card is then updated in place for every reviewer through the outbox)."""
    clicked = _click(ack, body, action, rt, _review_ref)
    if clicked is None:
        return
    clicker, (review_id, assignment_id) = clicked
    try:
        reviews.decide(
            rt, actor=clicker, review_id=review_id, assignment_id=assignment_id, decision=decision
        )
    except LicenseBotError as exc:
        _refuse(rt, body, clicker, message_for(exc))


def handle_view_request(ack: Ack, body: dict[str, Any], view: dict[str, Any], rt: Runtime) -> None:
    clicker = _clicker(body)
    view_id = view.get("id")
    if clicker is None or not (isinstance(view_id, str) and _VIEW_ID.fullmatch(view_id)):
        _malformed(body, "no_user_or_view_id")
        ack(response_action="errors", errors={ids.BLOCK_PRODUCT: BROKEN_FORM})
        return
    selected = _input(view, ids.BLOCK_PRODUCT, ids.INPUT_PRODUCT).get("selected_option")
    product = storable(selected.get("value") if isinstance(selected, dict) else None).strip()
    justification = storable(
        _input(view, ids.BLOCK_JUSTIFICATION, ids.INPUT_JUSTIFICATION).get("value")
    )
    if not product:
        ack(response_action="errors", errors={ids.BLOCK_PRODUCT: "Choose a product."})
        return
    try:
        result = requests.submit(
            rt,
            asked_by=clicker,
            product_id=product,
            justification=justification,
            # Slack may deliver one submission twice; the view ID makes it one request.
            origin_key=f"view:{view_id}",
        )
    except LicenseBotError as exc:
        ack(response_action="errors", errors={ids.BLOCK_PRODUCT: message_for(exc)[:150]})
        return
    ack(response_action="update", view=blocks.request_modal_done(result))


def handle_view_deny(ack: Ack, body: dict[str, Any], view: dict[str, Any], rt: Runtime) -> None:
    clicker = _clicker(body)
    ref = _step_ref(view.get("private_metadata"))
    reason = storable(_input(view, ids.BLOCK_REASON, ids.INPUT_REASON).get("value")).strip()
    if clicker is None or ref is None:
        _malformed(body, "no_user_or_step")
        ack(response_action="errors", errors={ids.BLOCK_REASON: BROKEN_FORM})
        return
    if not reason:
        ack(response_action="errors", errors={ids.BLOCK_REASON: "Say why, for the requester."})
        return
    try:
        approvals.decide(
            rt,
            request_id=ref[0],
            step=ref[1],
            actor=clicker,
            approve=False,
            reason=reason,
        )
    except LicenseBotError as exc:
        ack(response_action="errors", errors={ids.BLOCK_REASON: message_for(exc)[:150]})
        return
    ack()


def _button(action_id: str) -> dict[str, str | Pattern[str]]:
    # Only block_actions: a bare action_id would also match legacy interactive_message and
    # dialog payloads whose callback_id happens to equal it, and those have no actions[0].
    return {"type": "block_actions", "action_id": action_id}


def register(app: App, rt: Runtime) -> None:
    app.action(_button(ids.ACTION_APPROVE))(
        lambda ack, body, action: handle_action_approve(ack, body, action, rt)
    )
    app.action(_button(ids.ACTION_DENY))(
        lambda ack, body, action, client: handle_action_deny(ack, body, action, client, rt)
    )
    app.action(_button(ids.ACTION_REVEAL))(
        lambda ack, body, action, client: handle_action_reveal(ack, body, action, client, rt)
    )
    app.action(_button(ids.ACTION_KEEP))(
        lambda ack, body, action: handle_action_reclaim(ack, body, action, rt, keep=True)
    )
    app.action(_button(ids.ACTION_EXTEND))(
        lambda ack, body, action: handle_action_extend(ack, body, action, rt)
    )
    app.action(_button(ids.ACTION_RELEASE))(
        lambda ack, body, action: handle_action_reclaim(ack, body, action, rt, keep=False)
    )
    app.action(_button(ids.ACTION_REVIEW_KEEP))(
        lambda ack, body, action: handle_action_review(ack, body, action, rt, decision="keep")
    )
    app.action(_button(ids.ACTION_REVIEW_REVOKE))(
        lambda ack, body, action: handle_action_review(ack, body, action, rt, decision="revoke")
    )
    app.view(ids.VIEW_REQUEST)(lambda ack, body, view: handle_view_request(ack, body, view, rt))
    app.view(ids.VIEW_DENY)(lambda ack, body, view: handle_view_deny(ack, body, view, rt))
