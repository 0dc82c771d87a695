"""``/license``: request, mine, catalog, audit, help. Answers go in the ack: no Slack call waits."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import audit_view, catalog, overview, requests
from bot.directory import looks_like_user_id
from bot.errors import LicenseBotError
from bot.runtime import Runtime
from bot.text import storable
from handlers import blocks, ids
from handlers.replies import message_for

log = logging.getLogger("licensebot.handlers")

# With should_escape=true Slack sends mentions as <@U123|name>; people also type raw IDs.
MENTION = re.compile(r"^(?:<@([UW][A-Z0-9]+)(?:\|[^>]*)?>|@?([UW][A-Z0-9]{2,}))$")


@dataclass(frozen=True)
class ParsedRequest:
    product_id: str
    for_user: str | None
    justification: str


def parse_request(rest: str) -> ParsedRequest | None:
    """``PRODUCT [for @user] [why…]`` → its parts; None when no product was given."""
    parts = rest.strip().split(maxsplit=1)
    if not parts:
        return None
    product, tail = parts[0], (parts[1] if len(parts) > 1 else "")
    for_user = None
    words = tail.split(maxsplit=2)
    if len(words) >= 2 and words[0].lower() == "for":
        match = MENTION.match(words[1])
        if match:
            for_user = match.group(1) or match.group(2)
            tail = words[2] if len(words) > 2 else ""
    return ParsedRequest(product, for_user, tail.strip())


def handle_command_license(
    ack: Ack, command: dict[str, Any], client: WebClient, rt: Runtime
) -> None:
    text = storable(command.get("text")).strip()
    user = command.get("user_id")
    if not isinstance(user, str) or not looks_like_user_id(user):
        # Slack always names the user; a command without one is refused, not guessed at.
        _reply(ack, blocks.error("This command did not say who sent it; nothing was done."))
        return
    sub, _, rest = text.partition(" ")
    sub = sub.lower()
    try:
        if sub == "request":
            parsed = parse_request(rest)
            if parsed is None:
                _open_request_modal(ack, client, rt, command.get("trigger_id"))
                return
            result = requests.submit(
                rt,
                asked_by=user,
                product_id=parsed.product_id,
                justification=parsed.justification,
                for_user=parsed.for_user,
            )
            _reply(ack, blocks.submitted(result, asked_by=user))
        elif sub == "mine":
            _reply(ack, blocks.my_licenses(overview.my_licenses(rt, user)))
        elif sub == "catalog":
            _reply(ack, blocks.catalog_list(catalog.list_products(rt)))
        elif sub == "cancel":
            number = rest.strip().lstrip("#")
            if not (number.isascii() and number.isdigit() and len(number) <= 9):
                _reply(ack, blocks.error(f"Say which request: `{ids.COMMAND} cancel 42`."))
                return
            name = requests.cancel(rt, request_id=int(number), actor=user)
            _reply(ack, blocks.cancelled(int(number), name))
        elif sub == "audit":
            _audit(ack, rt, user, rest)
        elif sub in ("", "help"):
            _reply(ack, blocks.help_text())
        else:
            _, body = blocks.help_text()
            err_text, err_body = blocks.error(f"I don't know `{clip_word(sub)}`.")
            ack(text=err_text, blocks=err_body + body)
    except LicenseBotError as exc:
        _reply(ack, blocks.error(message_for(exc)))


def _audit(ack: Ack, rt: Runtime, viewer: str, rest: str) -> None:
    """``audit @user`` or ``audit PRODUCT_ID``; anything else gets the usage."""
    target = rest.strip()
    # Whole, not split: the name in an escaped mention (<@U123|name>) may hold spaces.
    match = MENTION.match(target)
    if match:
        who = match.group(1) or match.group(2)
        _reply(ack, blocks.audit_log(audit_view.recent(rt, viewer=viewer, user=who), user=who))
        return
    if len(target.split()) != 1:
        _reply(ack, blocks.audit_usage())
        return
    product = target.lower()
    lines = audit_view.recent(rt, viewer=viewer, product=product)
    _reply(ack, blocks.audit_log(lines, product=product))


def clip_word(word: str) -> str:
    return word[:40].replace("`", "'")


def _reply(ack: Ack, message: tuple[str, list[dict[str, Any]]]) -> None:
    text, body = message
    ack(text=text, blocks=body, response_type="ephemeral")


def _open_request_modal(
    ack: Ack, client: WebClient, rt: Runtime, trigger_id: object, initial: str | None = None
) -> None:
    if not isinstance(trigger_id, str) or not trigger_id:
        _reply(ack, blocks.error("Slack sent no way to open the form; please try again."))
        return
    # views.open must use the trigger within 3 s, so it runs before the ack returns.
    try:
        client.views_open(
            trigger_id=trigger_id,
            view=blocks.request_modal(catalog.list_products(rt), initial_product=initial),
        )
    except SlackApiError as exc:
        log.warning("event=views_open_failed error=%s", exc.response.get("error"))
        _reply(ack, blocks.error("Slack did not let me open the form; please try again."))
        return
    ack()


def handle_shortcut_request(
    ack: Ack, shortcut: dict[str, Any], client: WebClient, rt: Runtime
) -> None:
    _open_request_modal(ack, client, rt, shortcut.get("trigger_id"))


def register(app: App, rt: Runtime) -> None:
    app.command(ids.COMMAND)(
        lambda ack, command, client: handle_command_license(ack, command, client, rt)
    )
    app.shortcut(ids.SHORTCUT_REQUEST)(
        lambda ack, shortcut, client: handle_shortcut_request(ack, shortcut, client, rt)
    )
