"""Block Kit builders: pure functions from domain results to Slack messages, modals and Home.

Nothing here calls Slack or the database. Every builder stays inside Slack's limits whatever it
is given, because Slack rejects the whole message (``invalid_blocks``) when one field is too long
and a notification that cannot be rendered is a notification nobody gets.

Three kinds of text meet here, and each has one way in:

- Text people typed (justifications, deny reasons) and catalog text (names, vendors) goes through
  ``escape`` and is clipped to fit, so it can neither break a limit nor become a mention or link.
- Text the bot wrote that carries mentions on purpose (routing's fallback reasons, error messages)
  goes through ``_trusted``: escaped like the rest, except well-formed ``<@U…>``/``<#C…>``.
- A license key appears in ``reveal_modal`` only, never in a message, button value or metadata.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.audit_view import AuditLine
from bot.catalog import ProductInfo
from bot.delivery import RevealedKey
from bot.digest import Digest, ProductFigures
from bot.expiry import GrantView
from bot.overview import DecisionView, LicenseView, Overview, RequestCard
from bot.reclaim import SeatView
from bot.renewals import RenewalFigures
from bot.requests import SubmitResult
from bot.reviews import HolderLine, ReviewCard, ReviewSummary
from bot.seat_alerts import SeatCount
from bot.webhooks import WebhookFailure
from handlers import ids

Block = dict[str, Any]
Message = tuple[str, list[Block]]

# Slack's limits (SLACK.md §5, §6).
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
SECTION_TEXT = 3000
FIELD_TEXT = 2000
HEADER_TEXT = 150
CONTEXT_TEXT = 2000
BUTTON_TEXT = 75
OPTION_TEXT = 75
OPTION_VALUE = 150
MAX_OPTIONS = 100
VIEW_TITLE = 24
# A notification's text is what phones show; Slack truncates past 40,000 but nobody reads that.
FALLBACK_TEXT = 3000

# Slack refuses a view past 250 kB (view_too_large): options get at most 200 kB of it, measured
# as slack_sdk sends them (ASCII-escaped JSON), and a select this long is unusable past 1,000.
MAX_MODAL_OPTIONS = 1000
MAX_OPTIONS_BYTES = 200_000
# Room left in a section for the code fences around one slice of a key.
KEY_SLICE = 2900
# A longer key (~170,000 characters) is not shown at all rather than shown in part.
MAX_KEY_SECTIONS = 60

ELLIPSIS = "…"
_ZWJ = "\u200d"
_MENTION = re.compile(r"<(?:@[UW][A-Z0-9]+|#C[A-Z0-9]+)>")
_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")

COMMAND = ids.COMMAND


# ---------------------------------------------------------------------------------------------
# Text: clip, escape, format


def _units(text: str) -> int:
    # Counted in UTF-16 code units: never fewer than Python's code points, so a string within
    # the limit by this count is within it however Slack or slack_sdk counts.
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _extends_previous(ch: str) -> bool:
    """True for characters that belong to the grapheme before them (marks, modifiers, tags)."""
    code = ord(ch)
    return (
        unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or ch == _ZWJ
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # tag sequences (subdivision flags)
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
    )


def _splits_grapheme(text: str, cut: int) -> bool:
    if cut <= 0 or cut >= len(text):
        return False
    before, after = text[cut - 1], text[cut]
    if _extends_previous(after) or before == _ZWJ:
        return True
    # Lone surrogates only reach here from surrogatepass-decoded input; keep the pair whole.
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return True
    if _is_regional_indicator(before) and _is_regional_indicator(after):
        run = 0
        while cut - 1 - run >= 0 and _is_regional_indicator(text[cut - 1 - run]):
            run += 1
        return run % 2 == 1  # flags are pairs: an odd run means we are inside one
    return False


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit``, else its longest whole-grapheme prefix + "…".

    Length is counted in UTF-16 code units (an emoji outside the BMP counts 2), the stricter of
    the counts Slack's clients and slack_sdk use.
    """
    if _units(text) <= limit:
        return text
    if limit <= 0:
        return ""
    budget = limit - _units(ELLIPSIS)
    cut = used = 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > budget:
            break
        used += width
        cut += 1
    while _splits_grapheme(text, cut):
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS


def escape(text: str) -> str:
    """Make text literal in mrkdwn: no mentions, no links, no ``<!channel>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _trusted(text: str) -> str:
    """Escape bot-written text but keep the user and channel mentions it means to make."""
    out: list[str] = []
    pos = 0
    for match in _MENTION.finditer(text):
        out.append(escape(text[pos : match.start()]))
        out.append(match.group())
        pos = match.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def _fit(text: str, limit: int, render: Callable[[str], str] = escape) -> str:
    """``render(clip(text, n))`` for the largest ``n`` whose result fits in ``limit``.

    Clipping before escaping never cuts an entity like ``&amp;`` in half.
    """
    whole = render(text)
    if _units(whole) <= limit:
        return whole
    low, high = 1, min(limit, _units(text))
    best = render(clip(text, 1))
    while low <= high:
        mid = (low + high) // 2
        candidate = render(clip(text, mid))
        if _units(candidate) <= limit:
            best, low = candidate, mid + 1
        else:
            high = mid - 1
    return best if _units(best) <= limit else ""


def _quoted(text: str) -> str:
    # Every line gets its own ">" so a newline in the text cannot end the quote early.
    return ">" + escape(text).replace("\n", "\n>")


def _quote(text: str, limit: int) -> str:
    text = text.strip()
    if not text:
        return "_None given._"
    return _fit(text, limit, _quoted)


def _user(user_id: str) -> str:
    # Only a real-looking ID becomes a mention; the system actor "licensebot" stays a word.
    return f"<@{user_id}>" if _USER_ID.match(user_id) else escape(user_id)


def _users_or(user_ids: Sequence[str], most: int = 10) -> str:
    names = [_user(u) for u in user_ids[:most]]
    if len(user_ids) > most:
        names.append(f"{len(user_ids) - most} others")
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " or " + names[-1]


def _day(day: date | None) -> str:
    return day.isoformat() if day else "—"


def _when(at: datetime) -> str:
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _money(amount: Decimal) -> str:
    return f"${amount:,.2f}/yr"


def _name(product_name: str) -> str:
    return _fit(product_name, 200)


def _step_text(card: RequestCard, step: int, word: str = "Step", *, label: bool = True) -> str:
    text = f"{word} {step + 1} of {max(card.step_count, step + 1)}"
    if label and 0 <= step < len(card.step_labels):
        text += f" ({_fit(card.step_labels[step], 200, _trusted)})"
    return text


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# ---------------------------------------------------------------------------------------------
# Blocks


def _section(text: str, *, block_id: str | None = None, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_TEXT)}}
    if block_id:
        block["block_id"] = block_id
    if accessory:
        block["accessory"] = accessory
    return block


def _fields(items: Sequence[str], *, block_id: str) -> Block:
    return {
        "type": "section",
        "block_id": block_id,
        "fields": [{"type": "mrkdwn", "text": clip(item, FIELD_TEXT)} for item in items[:10]],
    }


def _header(text: str) -> Block:
    return {"type": "header", "text": _plain(text, HEADER_TEXT)}


def _context(text: str, *, block_id: str | None = None) -> Block:
    block: Block = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": clip(text, CONTEXT_TEXT)}],
    }
    if block_id:
        block["block_id"] = block_id
    return block


def _divider() -> Block:
    return {"type": "divider"}


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def _button(label: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(label, BUTTON_TEXT),
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _decision_buttons(request_id: int, step: int, *, block_id: str) -> Block:
    value = f"{request_id}:{step}"
    return {
        "type": "actions",
        "block_id": block_id,
        "elements": [
            _button("Approve", ids.ACTION_APPROVE, value, "primary"),
            _button("Deny", ids.ACTION_DENY, value, "danger"),
        ],
    }


def _reveal_button(assignment_id: int) -> Block:
    return _button("Reveal key", ids.ACTION_REVEAL, str(assignment_id))


def _more(count: int, what: str, *, block_id: str) -> Block:
    return _context(f"…and {count} more {what}.", block_id=block_id)


def _room(items: int, slots: int) -> tuple[int, int]:
    """How many of ``items`` to show in ``slots`` blocks, keeping one for "and N more"."""
    if items <= slots:
        return items, 0
    shown = max(slots - 1, 0)
    return shown, items - shown


def _message(text: str, blocks: list[Block]) -> Message:
    return clip(text, FALLBACK_TEXT), blocks[:MAX_MESSAGE_BLOCKS]


# ---------------------------------------------------------------------------------------------
# Approval cards and what follows a decision


def _decision_line(decision: DecisionView) -> str:
    when = _when(decision.decided_at)
    if decision.outcome == "auto":
        return f"✅ Approved automatically on {when}"
    if decision.outcome == "approved":
        return f"✅ Approved by {_user(decision.decider_id)} on {when}"
    if decision.outcome == "denied":
        return (
            f"❌ Denied by {_user(decision.decider_id)} on {when}\n"
            f"*Reason:*\n{_quote(decision.reason, 2000)}"
        )
    return f"{escape(decision.outcome)} by {_user(decision.decider_id)} on {when}"


def _status_phrase(card: RequestCard) -> str:
    return {
        "pending": "waiting for approval",
        "approved": "approved",
        "denied": "denied",
        "waitlisted": "approved and waiting for a free seat or key",
    }.get(card.status, escape(card.status))


def _step_open(card: RequestCard, step: int) -> bool:
    return card.status == "pending" and card.step == step and card.decision_for(step) is None


def approval_card(card: RequestCard, *, step: int) -> Message:
    """The card an approver of ``step`` gets; buttons only while that step is still open.

    Rendered again with chat.update once the step closes, so every approver sees who decided.
    """
    product = card.product
    name = _name(product.name)
    who = f"*Requester:* {_user(card.requester_id)}"
    if card.requested_by and card.requested_by != card.requester_id:
        who += f" (requested by {_user(card.requested_by)})"
    blocks: list[Block] = [
        _header(f"License request #{card.id}"),
        _section(
            f"{who}\n*Product:* {name} ({_fit(product.vendor, 200)})",
            block_id=f"req_{card.id}_{step}_who",
        ),
        _fields(
            [
                f"*Cost per seat*\n{_money(product.cost_per_seat)}",
                f"*Seats left*\n{product.seats_left} of {product.seats}",
                f"*Renews*\n{_day(product.renewal_date)}",
                f"*Approval*\n{_step_text(card, step)}",
            ],
            block_id=f"req_{card.id}_{step}_facts",
        ),
        _section(
            f"*Justification*\n{_quote(card.justification, SECTION_TEXT - 20)}",
            block_id=f"req_{card.id}_{step}_why",
        ),
    ]
    why = card.fallback_why.get(step)
    if why:
        blocks.append(
            _context(f":information_source: {_fit(why, 1000, _trusted)}", block_id="fallback")
        )
    requester = _user(card.requester_id)
    if _step_open(card, step):
        blocks.append(_decision_buttons(card.id, step, block_id=f"decide_{card.id}_{step}"))
        step_text = _step_text(card, step, "step")
        text = f"License request #{card.id}: {requester} asks for {name}, {step_text}"
        return _message(text, blocks)
    decision = card.decision_for(step)
    if decision is not None:
        line = _decision_line(decision)
    else:
        line = f"Nothing left to decide: this request is {_status_phrase(card)}."
    blocks.append(_section(line, block_id=f"closed_{card.id}_{step}"))
    if decision is not None and card.status != "pending":
        blocks.append(_context(f"Request #{card.id} is {_status_phrase(card)}.", block_id="status"))
    first_line = line.split("\n", 1)[0]
    return _message(f"License request #{card.id} for {name}: {first_line}", blocks)


def submitted(result: SubmitResult, *, asked_by: str | None = None) -> Message:
    """The ephemeral confirmation after ``/license request`` (and the form's last page)."""
    name = _name(result.product_name)
    on_behalf = asked_by is not None and asked_by != result.requester_id
    subject = f"Request #{result.request_id} for *{name}*"
    if on_behalf:
        subject += f" on behalf of {_user(result.requester_id)}"
    step = f"step {result.step + 1} of {max(result.step_count, result.step + 1)}"
    if result.status == "pending" and result.next_approvers:
        line = (
            f"{subject} created. Waiting for approval from "
            f"{_users_or(result.next_approvers)} ({step})."
        )
    elif result.status == "pending":
        line = f"{subject} created, but nobody can approve {step} yet; IT has been asked to help."
    elif result.status == "approved":
        where = "them" if on_behalf else "you"
        line = (
            f"{subject} was approved automatically. I'll message {where} with the details; "
            f"see `{COMMAND} mine`."
        )
    elif result.status == "waitlisted":
        who = f"{_user(result.requester_id)} is" if on_behalf else "you are"
        place = (
            f"number {result.waitlist_position} in the queue"
            if result.waitlist_position
            else "in the queue"
        )
        line = (
            f"{subject} was approved, but no seat or key is free right now: {who} {place}. "
            "IT has been told."
        )
    else:
        line = f"{subject}: {escape(result.status)}."
    blocks = [_section(line, block_id="submitted")]
    if result.why:
        blocks.append(
            _context(f":information_source: {_fit(result.why, 1000, _trusted)}", block_id="why")
        )
    return _message(line, blocks)


def _approved_by(card: RequestCard) -> str:
    people = [d for d in card.decisions if d.outcome == "approved"]
    if not people:
        return "Approved automatically."
    names = []
    for d in people:
        label = card.step_labels[d.step] if 0 <= d.step < len(card.step_labels) else ""
        role = _fit(label, 200, _trusted) if label else f"step {d.step + 1}"
        names.append(f"{_user(d.decider_id)} ({role})")
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"Approved by {joined}."


def request_approved(card: RequestCard, licence: LicenseView | None) -> Message:
    """The requester's DM: approved, by whom, and how to get it. Never the key itself."""
    name = _name(card.product.name)
    lines = [f"✅ Your request #{card.id} for *{name}* was approved.", _approved_by(card)]
    if card.requested_by and card.requested_by != card.requester_id:
        lines.append(f"{_user(card.requested_by)} asked for it on your behalf.")
    blocks: list[Block] = [_section("\n".join(lines), block_id=f"approved_{card.id}")]
    if card.product.delivery == "key" and licence is not None and licence.has_key:
        blocks.append(
            _section(
                "Your key is ready. It opens in a window only you can see.",
                block_id=f"lic_{licence.assignment_id}",
                accessory=_reveal_button(licence.assignment_id),
            )
        )
    elif card.product.delivery == "key":
        blocks.append(_section(f"See your key with `{COMMAND} mine`.", block_id=f"howto_{card.id}"))
    else:
        blocks.append(
            _section(
                "IT will set up your seat and let you know when it is ready.",
                block_id=f"howto_{card.id}",
            )
        )
    return _message(f"Your request #{card.id} for {name} was approved.", blocks)


def request_denied(card: RequestCard) -> Message:
    name = _name(card.product.name)
    denial = next((d for d in card.decisions if d.outcome == "denied"), None)
    if denial is None:
        line = f"❌ Your request #{card.id} for *{name}* was denied."
        blocks = [_section(line, block_id=f"denied_{card.id}")]
    else:
        line = (
            f"❌ Your request #{card.id} for *{name}* was denied by {_user(denial.decider_id)} "
            f"on {_when(denial.decided_at)}."
        )
        blocks = [
            _section(line, block_id=f"denied_{card.id}"),
            _section(
                f"*Reason:*\n{_quote(denial.reason, SECTION_TEXT - 20)}",
                block_id=f"reason_{card.id}",
            ),
        ]
    blocks.append(
        _context(
            f"If something changes, you can ask again with `{COMMAND} request`.", block_id="next"
        )
    )
    return _message(line, blocks)


def request_waitlisted(card: RequestCard) -> Message:
    name = _name(card.product.name)
    place = (
        f"You are number {card.waitlist_position} in the queue"
        if card.waitlist_position
        else "You are in the queue"
    )
    line = (
        f"⏳ Your request #{card.id} for *{name}* was approved, but there is no free seat or key "
        f"right now. {place}; I'll message you as soon as one is yours."
    )
    return _message(line, [_section(line, block_id=f"waitlisted_{card.id}")])


def request_stalled(card: RequestCard) -> Message:
    """For the IT channel: a step has nobody who may approve it."""
    name = _name(card.product.name)
    line = (
        f":rotating_light: Nobody can approve {_step_text(card, card.step, 'step')} of request "
        f"#{card.id} (*{name}* for {_user(card.requester_id)})."
    )
    blocks = [
        _section(
            f"{line}\nPlease add an it_admin (someone other than the requester) so it can go on.",
            block_id=f"stalled_{card.id}",
        )
    ]
    why = card.fallback_why.get(card.step)
    if why:
        blocks.append(_context(_fit(why, 1000, _trusted), block_id="why"))
    return _message(line, blocks)


def it_provision(card: RequestCard) -> Message:
    """For the IT channel: an approved seat product needs setting up at the vendor."""
    product = card.product
    name = _name(product.name)
    line = (
        f":gear: Please provision a *{name}* ({_fit(product.vendor, 200)}) seat for "
        f"{_user(card.requester_id)}: request #{card.id} was approved."
    )
    blocks = [_section(line, block_id=f"provision_{card.id}"), _context(_approved_by(card))]
    return _message(line, blocks)


def it_out_of_stock(card: RequestCard) -> Message:
    """For the IT channel: an approved request is waiting because nothing is free."""
    product = card.product
    name = _name(product.name)
    what = "keys" if product.delivery == "key" else "seats"
    place = f" (number {card.waitlist_position} in the queue)" if card.waitlist_position else ""
    line = (
        f":package: *{name}* is out of {what}: request #{card.id} for "
        f"{_user(card.requester_id)} is waitlisted{place}."
    )
    product_id = _fit(product.id, 100)
    if product.delivery == "key":
        advice = (
            f"Import more keys with `licensebot keys import` for `{product_id}`; if all "
            f"{product.seats} seats are taken, raise `seats` in the catalog too."
        )
    else:
        advice = f"Free a seat or raise `seats` for `{product_id}` in the catalog."
    blocks = [_section(f"{line}\n{advice}", block_id=f"stock_{card.id}")]
    return _message(line, blocks)


def cancelled(request_id: int, product_name: str) -> Message:
    """The requester's confirmation that a request was withdrawn."""
    line = f":wastebasket: Request #{request_id} for *{_name(product_name)}* is cancelled."
    return _message(line, [_section(line, block_id="cancelled")])


def it_offboarded(
    *, user_id: str, released: Sequence[str], keys: Sequence[str], cancelled: Sequence[int]
) -> Message:
    """For the IT channel: a deactivated account's seats came back."""
    who = _user(user_id)
    line = f":wave: {who} was deactivated in Slack: {len(released)} seat(s) released"
    line += f", {len(cancelled)} open request(s) cancelled." if cancelled else "."
    parts = [line]
    if released:
        parts.append("Released: " + ", ".join(f"`{_fit(p, 64)}`" for p in released[:40]))
    if keys:
        parts.append(
            ":key: These keys may need deactivating at the vendor: "
            + ", ".join(f"`{_fit(p, 64)}`" for p in keys[:40])
        )
    if cancelled:
        parts.append("Cancelled: " + ", ".join(f"#{n}" for n in cancelled[:40]))
    return _message(line, [_section("\n".join(parts), block_id="offboarded")])


def audit_head_notice(*, entries: int, head: str, day: str) -> Message:
    """For the IT channel, daily: the audit chain's head, so history cannot be quietly
    rewritten (a later `licensebot audit verify` must agree with what Slack holds)."""
    line = f":lock: Audit log on {day}: {entries} entries, chain head `{_fit(head, 64)}`."
    hint = (
        "Keep this message. `licensebot audit verify` re-computes the chain; an entry number and "
        "head that no longer match this one mean the history was rewritten."
    )
    return _message(line, [_section(line, block_id="audit_head"), _context(hint)])


# ---------------------------------------------------------------------------------------------
# Approval reminders and escalation (bot/reminders.py), renewals (bot/renewals.py)


def _waited(waited: timedelta) -> str:
    hours = max(int(waited.total_seconds() // 3600), 0)
    if hours < 48:
        return _plural(hours, "hour")
    return f"{hours // 24} days" + (f" {_plural(hours % 24, 'hour')}" if hours % 24 else "")


def approval_reminder(card: RequestCard, *, step: int, waited: timedelta) -> Message:
    """The approval card again, as a new DM with the same buttons, headed by a reminder."""
    text, body = approval_card(card, step=step)
    note = (
        f":alarm_clock: *Reminder:* {_user(card.requester_id)} has been waiting "
        f"{_waited(waited)} for your decision on request #{card.id}."
    )
    reminder = _section(note, block_id=f"remind_{card.id}_{step}")
    return _message(f"Reminder, waiting {_waited(waited)}: {text}", [reminder, *body])


def approval_card_moved(card: RequestCard, *, step: int) -> Message:
    """The earlier card once a reminder was posted below it: the buttons live on the newer one."""
    text, body = approval_card(card, step=step)
    kept = [b for b in body if b.get("type") != "actions"]
    kept.append(
        _context(
            ":alarm_clock: A reminder with the Approve and Deny buttons is in a newer message "
            "below.",
            block_id=f"moved_{card.id}_{step}",
        )
    )
    return _message(text, kept)


def request_escalated(
    card: RequestCard, *, step: int, added: Sequence[str], after_hours: str
) -> Message:
    """For the requester: their request waited too long, so IT may now decide the step too."""
    name = _name(card.product.name)
    line = (
        f":arrow_up: Your request #{card.id} for *{name}* waited {escape(after_hours)} hours "
        f"for {_step_text(card, step, 'step')}, so I also asked IT ({_users_or(added)}) to "
        "decide it. Whoever answers first decides."
    )
    hint = f"Changed your mind? `{COMMAND} cancel {card.id}` withdraws it."
    return _message(line, [_section(line, block_id=f"escalated_{card.id}_{step}"), _context(hint)])


def escalation_nobody(card: RequestCard, *, step: int, after_hours: str) -> Message:
    """For the IT channel: a step is due for escalation and there is no it_admin to take it."""
    name = _name(card.product.name)
    line = (
        f":rotating_light: Request #{card.id} (*{name}* for {_user(card.requester_id)}) has "
        f"waited {escape(after_hours)} hours for {_step_text(card, step, 'step')}, and there is "
        "no it_admin (other than the requester) to escalate it to."
    )
    advice = (
        "Grant the role with `licensebot roles grant USER_ID it_admin` (or set "
        "`LICENSEBOT_ADMINS`), or remind its approvers: "
        f"{_users_or(card.approvers.get(step, []))}."
    )
    return _message(line, [_section(f"{line}\n{advice}", block_id=f"nobody_{card.id}_{step}")])


def renewal_notice(figures: RenewalFigures, *, days_before: int) -> Message:
    """For the IT channel: a product renews soon; how many seats it needs, and the saving."""
    f = figures
    name = _name(f.product_name)
    when = "today" if f.days_left == 0 else f"in {_plural(f.days_left, 'day')}"
    line = (
        f"*{name}* renews {when} ({_day(f.renewal_date)}): {f.seats_bought} seats "
        f"bought, {f.recommended} recommended."
    )
    if f.yearly_saving > 0:
        verdict = f"Right-sizing to {f.recommended} seats saves *{_money(f.yearly_saving)}*."
    elif f.extra_cost > 0:
        verdict = (
            f"Demand is above the seats bought: {f.recommended - f.seats_bought} more would cost "
            f"{_money(f.extra_cost)}."
        )
    else:
        verdict = "The seats bought match the recommendation."
    blocks: list[Block] = [
        _header(f":calendar: Renewal in {_plural(max(f.days_left, 0), 'day')}"),
        _section(line, block_id=f"renewal_{days_before}"),
        _fields(
            [
                f"*Seats bought*\n{f.seats_bought} ({f.seats_assigned} assigned now)",
                f"*Used in the last 30 days*\n{f.used_30_days}",
                f"*Peak use (90 days)*\n{f.peak_90_days}",
                f"*Waitlist*\n{f.waitlist}",
                f"*Recommended*\n{f.recommended} (peak + waitlist + {f.buffer} buffer)",
                f"*Cost per seat*\n{_money(f.cost_per_seat)}",
            ],
            block_id="renewal_figures",
        ),
        _section(verdict, block_id="renewal_verdict"),
        _context(
            "Used = holders seen in the last 30 days or given their seat in them. Peak = most "
            "seats held at once in the last 90 days. Buffer = 10% of peak, at least 1; never "
            f"above the seats bought unless demand is. Vendor: {_fit(f.vendor or '—', 200)}.",
            block_id="renewal_how",
        ),
    ]
    return _message(line + " " + verdict, blocks)


def webhook_failed(failure: WebhookFailure) -> Message:
    """For the IT channel: a provisioning webhook gave up; the event is kept and can be sent
    again once the receiver is fixed."""
    who = _user(failure.user_id) if failure.user_id else "an unknown user"
    line = (
        f":warning: Provisioning webhook failed: `{_fit(failure.event, 32)}` for {who} on "
        f"*{_name(failure.product_name)}* to `{_fit(failure.host, 255)}`."
    )
    detail = f"Last error: {_fit(failure.error, 500)}"
    hint = (
        "Nothing was lost: the account at the vendor may need changing by hand, or fix the "
        f"receiver and run `licensebot outbox retry {failure.outbox_id}`."
    )
    return _message(
        line, [_section(f"{line}\n{detail}", block_id="webhook_failed"), _context(hint)]
    )


# ---------------------------------------------------------------------------------------------
# Reclaiming idle seats


def _last_use(seat: SeatView) -> str:
    if seat.last_used_at is None:
        return f"never since it was assigned on {_day(seat.assigned_at.date())}"
    return _day(seat.last_used_at.date())


def reclaim_nudge(seat: SeatView) -> Message:
    """The holder's DM: the seat looks idle; Keep it (snoozed) or Release it (freed now)."""
    name = _name(seat.product_name)
    if seat.released_at is not None:
        return reclaim_answered(seat)  # answered (or reclaimed) before this was delivered
    line = f"Are you still using *{name}*?"
    facts = (
        f"Last use: {_last_use(seat)}\nYearly cost: {_money(seat.cost_per_seat)}\n"
        f"Keep it and I won't ask again for {_plural(seat.reclaim_after_days, 'day')}; "
        "Release it and it goes to the next person who needs it."
    )
    if seat.auto_reclaim:
        facts += (
            f"\nWithout an answer within {_plural(seat.reclaim_grace_days, 'day')} "
            "the seat is taken back."
        )
    value = str(seat.assignment_id)
    blocks = [
        _section(f"{line}\n{facts}", block_id=f"reclaim_{seat.assignment_id}"),
        {
            "type": "actions",
            "block_id": f"reclaim_actions_{seat.assignment_id}",
            "elements": [
                _button("Keep", ids.ACTION_KEEP, value, "primary"),
                _button("Release", ids.ACTION_RELEASE, value, "danger"),
            ],
        },
    ]
    return _message(f"Are you still using {name}?", blocks)


_SEAT_ENDED = {
    "revoked": "was revoked in an access review",
    "expired": "has ended (it was time-limited)",
    "offboarded": "was released when your account was deactivated",
}


def reclaim_answered(seat: SeatView) -> Message:
    """The nudge card after its answer (no buttons left), or the DM saying the same."""
    name = _name(seat.product_name)
    if seat.released_at is not None and seat.release_reason == "reclaimed":
        return seat_reclaimed(seat)
    if seat.released_at is not None and seat.release_reason == "released":
        line = f"🙏 Thanks for giving back your *{name}* seat; it goes to whoever needs it next."
    elif seat.released_at is not None:
        # Ended another way (revoked in an access review, expired, offboarded) before this
        # card went out: nothing is asked any more, and no thanks for what the holder didn't do.
        why = _SEAT_ENDED.get(seat.release_reason, "was released")
        line = f"Your *{name}* seat {why}; there is nothing to answer."
    elif seat.snoozed_until is not None:
        line = (
            f"👍 You kept your *{name}* seat. I won't ask again before "
            f"{_day(seat.snoozed_until.date())}."
        )
    else:
        line = f"Your *{name}* seat is unchanged."
    return _message(line, [_section(line, block_id=f"reclaim_{seat.assignment_id}")])


def seat_reclaimed(seat: SeatView) -> Message:
    name = _name(seat.product_name)
    line = (
        f"Your *{name}* seat was taken back: it was unused since {_last_use(seat)} and the "
        f"reminder got no answer. Ask again with `{COMMAND} request {_fit(seat.product_id, 64)}` "
        "if you need it."
    )
    return _message(line, [_section(line, block_id=f"reclaim_{seat.assignment_id}")])


# ---------------------------------------------------------------------------------------------
# Access reviews


def _holder_status(card: ReviewCard, holder: HolderLine) -> str:
    if holder.decision == "keep" and holder.decided_at and holder.decided_by:
        return f"✅ Kept by {_user(holder.decided_by)} on {_day(holder.decided_at.date())}"
    if holder.decision == "revoke" and holder.decided_at and holder.decided_by:
        return f"🚫 Revoked by {_user(holder.decided_by)} on {_day(holder.decided_at.date())}"
    if holder.released:
        return f"Seat already given back ({escape(holder.release_reason)}): nothing to review"
    if card.closed_at is not None:
        return "No answer (the review is closed)"
    return ""


def _review_holder(card: ReviewCard, holder: HolderLine) -> list[Block]:
    who = _user(holder.user_id)
    if holder.name:
        who += f" ({_fit(holder.name, 100)})"
    used = _day(holder.last_used_at.date()) if holder.last_used_at else "unknown (no usage signal)"
    text = f"{who}\nSince {_day(holder.assigned_at.date())} · last use {used}"
    status = _holder_status(card, holder)
    blocks = [
        _section(f"{text}\n{status}" if status else text, block_id=f"review_{holder.assignment_id}")
    ]
    if status:
        return blocks
    value = f"{card.review_id}:{holder.assignment_id}"
    revoke = _button("Revoke", ids.ACTION_REVIEW_REVOKE, value, "danger")
    revoke["confirm"] = {
        "title": _plain("Revoke this seat?", 100),
        "text": {
            "type": "mrkdwn",
            "text": clip(
                f"{who} loses their *{_fit(card.product_name, 80)}* seat now and is told it "
                "was revoked in this review.",
                300,
            ),
        },
        "confirm": _plain("Revoke", 30),
        "deny": _plain("Cancel", 30),
        "style": "danger",
    }
    blocks.append(
        {
            "type": "actions",
            "block_id": f"review_actions_{holder.assignment_id}",
            "elements": [_button("Keep", ids.ACTION_REVIEW_KEEP, value, "primary"), revoke],
        }
    )
    return blocks


def review_card(card: ReviewCard) -> Message:
    """A reviewer's card (one part of it): the holders, each with Keep and Revoke until answered.

    At most HOLDERS_PER_CARD holders, two blocks each, plus three: inside 50 blocks.
    """
    name = _name(card.product_name)
    last = card.first + len(card.holders) - 1
    which = f"Holders {card.first} to {last} of {card.total}"
    if card.parts > 1:
        which += f" (card {card.part + 1} of {card.parts})"
    if card.closed_at is None:
        intro = (
            f"Please confirm who still needs *{name}*. *Keep* leaves the seat as it is; "
            "*Revoke* takes it back now and tells the holder.\n"
            f"Started by {_user(card.started_by)} on {_day(card.started_at.date())}. {which}."
        )
    else:
        intro = (
            f"The access review of *{name}* closed on {_day(card.closed_at.date())}: "
            f"{card.kept} kept, {card.revoked} revoked. {which}."
        )
    blocks = [
        _header(f"Access review: {card.product_name}"),
        _section(intro, block_id="review_intro"),
    ]
    if card.why and card.closed_at is None:
        blocks.append(_context(_trusted(card.why), block_id="review_why"))
    for holder in card.holders:
        blocks += _review_holder(card, holder)
    return _message(f"Access review: {name} ({_plural(card.total, 'holder')})", blocks)


def review_reminder(review: ReviewSummary) -> Message:
    name = _name(review.product_name)
    line = (
        f"⏰ The access review of *{name}* started on {_day(review.started_at.date())} still "
        f"has {review.pending} of {_plural(review.total, 'holder')} unanswered. Please answer "
        "with Keep or Revoke on the review card I sent you then."
    )
    return _message(line, [_section(line, block_id=f"review_reminder_{review.review_id}")])


def seat_revoked(seat: SeatView, reviewer_id: str) -> Message:
    name = _name(seat.product_name)
    line = (
        f"Your *{name}* seat was revoked by {_user(reviewer_id)} in an access review (the "
        "regular check of who holds which license). Ask again with "
        f"`{COMMAND} request {_fit(seat.product_id, 64)}` if you still need it."
    )
    return _message(line, [_section(line, block_id=f"revoked_{seat.assignment_id}")])


# ---------------------------------------------------------------------------------------------
# Time-limited grants (max_days) and IT's seat alerts


def _ends(grant: GrantView) -> str:
    return _day(grant.expires_at.date()) if grant.expires_at else "—"


def seat_expiring(grant: GrantView) -> Message:
    """The holder's DM a few days before a time-limited seat ends, with "Request extension"."""
    if grant.released_at is not None:
        return seat_expired(grant)  # it ended (or was given back) before this was delivered
    name = _name(grant.product_name)
    line = f":hourglass_flowing_sand: Your *{name}* seat ends on {_ends(grant)}."
    more = (
        "Need it longer? Request an extension: it goes to the usual approvers, and once "
        "approved your seat runs on"
        + (f" for another {_plural(grant.max_days, 'day')}." if grant.max_days else ".")
    )
    blocks = [
        _section(f"{line}\n{more}", block_id=f"expiring_{grant.assignment_id}"),
        {
            "type": "actions",
            "block_id": f"expiring_actions_{grant.assignment_id}",
            "elements": [_button("Request extension", ids.ACTION_EXTEND, str(grant.assignment_id))],
        },
    ]
    return _message(f"Your {name} seat ends on {_ends(grant)}.", blocks)


def seat_expired(grant: GrantView) -> Message:
    name = _name(grant.product_name)
    if grant.release_reason != "expired":
        line = f"Your *{name}* seat was already given back; nothing ends any more."
    else:
        line = (
            f"Your *{name}* seat ended on {_ends(grant)} and was released. Ask again with "
            f"`{COMMAND} request {_fit(grant.product_id, 64)}` if you still need it."
        )
    return _message(line, [_section(line, block_id=f"expired_{grant.assignment_id}")])


def seat_extended(grant: GrantView, request_id: int) -> Message:
    name = _name(grant.product_name)
    until = f"runs until {_ends(grant)}" if grant.expires_at else "no longer ends"
    line = f"✅ Your extension (request #{request_id}) was approved: your *{name}* seat {until}."
    return _message(line, [_section(line, block_id=f"extended_{grant.assignment_id}")])


def it_seat_alert(count: SeatCount, *, previous: str) -> Message:
    """For the IT channel: a product's seat state changed (once per change, not per seat)."""
    name = _name(count.product_name)
    what = "keys" if count.delivery == "key" else "seats"
    product_id = _fit(count.product_id, 100)
    if count.state == "exhausted":
        line = (
            f":package: *{name}* is out of {what}: "
            f"{_plural(count.waiting, 'request')} waiting for one."
        )
        if count.delivery == "key":
            advice = (
                f"Import keys with `licensebot keys import {product_id}`; if all "
                f"{count.seats} seats are taken, raise `seats` in the catalog too."
            )
        else:
            advice = f"Free a seat or raise `seats` for `{product_id}` in the catalog."
    elif count.state == "low":
        line = (
            f":warning: *{name}* is running low: {count.free} free, below its "
            f"`min_free_seats` of {count.min_free_seats}."
        )
        advice = f"Buy more and raise `seats` for `{product_id}`, or reclaim idle ones."
    else:
        was = "out of stock" if previous == "exhausted" else "low"
        line = f":white_check_mark: *{name}* is back to normal (it was {was})."
        advice = ""
    facts = _fields(
        [
            f"*Seats bought*\n{count.seats}",
            f"*Taken*\n{count.taken}",
            f"*Free*\n{count.free}",
            f"*Waiting*\n{count.waiting}",
            f"*Alert below*\n{count.min_free_seats} free (`min_free_seats`)",
        ],
        block_id="seat_alert_facts",
    )
    blocks = [_section(f"{line}\n{advice}" if advice else line, block_id="seat_alert"), facts]
    return _message(line, blocks)


# ---------------------------------------------------------------------------------------------
# Slash command answers


def _licence_block(licence: LicenseView) -> Block:
    kind = "key" if licence.delivery == "key" else "seat"
    text = f"*{_name(licence.product_name)}*\n{kind} since {_day(licence.assigned_at.date())}"
    if licence.expires_at is not None:
        text += f" · ends {_day(licence.expires_at.date())}"
    accessory = _reveal_button(licence.assignment_id) if licence.has_key else None
    return _section(text, block_id=f"lic_{licence.assignment_id}", accessory=accessory)


def my_licenses(licenses: list[LicenseView]) -> Message:
    """``/license mine``: one section per license, Reveal key on the ones that have a key."""
    if not licenses:
        line = (
            f"You have no licenses yet. See what you can ask for with `{COMMAND} catalog`, "
            f"then `{COMMAND} request PRODUCT_ID`."
        )
        return _message(line, [_section(line, block_id="empty")])
    shown, hidden = _room(len(licenses), MAX_MESSAGE_BLOCKS - 1)
    blocks = [_header(f"Your licenses ({len(licenses)})")]
    blocks += [_licence_block(lic) for lic in licenses[:shown]]
    if hidden:
        blocks.append(_more(hidden, "licenses; see them in my Home tab", block_id="more"))
    return _message(f"You have {_plural(len(licenses), 'license')}.", blocks)


def _catalog_entry(product: ProductInfo) -> str:
    product_id = _fit(product.id, 100)
    return (
        f"*{_name(product.name)}* — {_fit(product.vendor, 200)}\n"
        f"`{product_id}` · {escape(product.delivery)} · "
        f"{product.seats_left} of {product.seats} left · {_money(product.cost_per_seat)} · "
        f"renews {_day(product.renewal_date)}\n"
        f"Request: `{COMMAND} request {product_id}`"
    )


def catalog_list(products: list[ProductInfo]) -> Message:
    """``/license catalog``: everything one can ask for, several products per block if needed."""
    if not products:
        line = "The catalog is empty; ask IT to load it."
        return _message(line, [_section(line, block_id="empty")])
    head = [
        _header("License catalog"),
        _context(f"Ask for one with `{COMMAND} request PRODUCT_ID [why…]`.", block_id="howto"),
    ]
    slots = MAX_MESSAGE_BLOCKS - len(head)
    entries = [_catalog_entry(p) for p in products]
    # One product per block reads best; past the block limit, share blocks evenly.
    per_block = max(1, -(-len(entries) // (slots - 1))) if len(entries) > slots else 1
    sections: list[str] = []
    for entry in entries:
        last = sections[-1] if sections else None
        if (
            last is not None
            and last.count("\n\n") + 1 < per_block
            and _units(last) + 2 + _units(entry) <= SECTION_TEXT
        ):
            sections[-1] = f"{last}\n\n{entry}"
        else:
            sections.append(entry)
    shown, _ = _room(len(sections), slots)
    listed = sum(s.count("\n\n") + 1 for s in sections[:shown])
    blocks = head + [_section(s, block_id=f"cat_{i}") for i, s in enumerate(sections[:shown])]
    if listed < len(products):
        blocks.append(
            _more(
                len(products) - listed,
                f"products; ask for one by its ID with `{COMMAND} request PRODUCT_ID`",
                block_id="more",
            )
        )
    return _message(f"The catalog has {_plural(len(products), 'product')}.", blocks)


def help_text() -> Message:
    usage = "\n".join(
        [
            f"`{COMMAND} request PRODUCT_ID [why…]` — ask for a license",
            f"`{COMMAND} request PRODUCT_ID for @user [why…]` — ask for someone else "
            "(their manager or IT)",
            f"`{COMMAND} request` — open the request form",
            f"`{COMMAND} mine` — your licenses and keys",
            f"`{COMMAND} catalog` — what you can ask for",
            f"`{COMMAND} cancel N` — withdraw your open request number N",
            f"`{COMMAND} audit @user` or `{COMMAND} audit PRODUCT_ID` — the latest audit "
            "entries (auditors and IT)",
            f"`{COMMAND} help` — this help",
        ]
    )
    blocks = [
        _section(f"*How to use licensebot*\n{usage}", block_id="usage"),
        _context(
            "You can also use the *Request a license* shortcut, and see everything in my Home tab.",
            block_id="more",
        ),
    ]
    return _message(f"How to use {COMMAND}: request, mine, catalog, cancel, audit, help.", blocks)


# Per value of an entry's details: a justification can be long, the list of them must fit.
AUDIT_VALUE_TEXT = 200
AUDIT_DETAILS_SHOWN = 8


def audit_usage() -> Message:
    line = (
        f"`{COMMAND} audit @user` — the latest audit entries about a person\n"
        f"`{COMMAND} audit PRODUCT_ID` — the latest audit entries about a product\n"
        "For auditors and IT admins. The whole log: `licensebot audit export`."
    )
    return _message(line, [_section(line, block_id="usage")])


def _audit_value(key: str, value: Any) -> str:
    if key == "for" and isinstance(value, str) and _USER_ID.match(value):
        return _user(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _fit(text, AUDIT_VALUE_TEXT)


def _audit_subject(subject: str) -> str:
    kind, _, rest = subject.partition(":")
    if kind == "user" and _USER_ID.match(rest):
        return _user(rest)
    return f"`{_fit(subject, 128)}`"


def _audit_entry(line: AuditLine) -> Block:
    head = (
        f"*{_when(line.at)}* · `{_fit(line.action, 64)}` by {_user(line.actor)} "
        f"on {_audit_subject(line.subject)}"
    )
    items = list(line.details.items())
    shown = [f"{_fit(k, 40)}: {_audit_value(k, v)}" for k, v in items[:AUDIT_DETAILS_SHOWN]]
    if len(items) > AUDIT_DETAILS_SHOWN:
        shown.append(f"…{len(items) - AUDIT_DETAILS_SHOWN} more")
    text = head + ("\n" + " · ".join(shown) if shown else "")
    return _section(text, block_id=f"audit_{line.id}")


def _entries(count: int) -> str:
    return "1 entry" if count == 1 else f"{count} entries"


def audit_log(lines: Sequence[AuditLine], *, user: str | None = None, product: str = "") -> Message:
    """``/license audit``: entries about a person (``user``) or a product, newest first."""
    who = _user(user) if user else f"`{_fit(product, 64)}`"
    if not lines:
        text = f"No audit entries about {who} yet."
        return _message(text, [_section(text, block_id="empty")])
    title = f"*Audit log for {who}* — the latest {_entries(len(lines))}, newest first"
    head = [_section(title, block_id="title")]
    # One block stays for the footer, which "and N more" replaces when entries do not fit.
    shown, hidden = _room(len(lines), MAX_MESSAGE_BLOCKS - len(head) - 1)
    body = head + [_audit_entry(line) for line in lines[:shown]]
    if hidden:
        body.append(_more(hidden, "entries; see `licensebot audit export`", block_id="hidden"))
    else:
        body.append(
            _context(
                "Everything, with hashes and signatures: `licensebot audit export`; "
                "check the chain: `licensebot audit verify`.",
                block_id="more",
            )
        )
    return _message(f"{_entries(len(lines))} of the audit log about {who}.", body)


def error(message: str) -> Message:
    """A refusal or error the person can act on; keeps the mentions the message makes."""
    line = f":warning: {_fit(message, SECTION_TEXT - 20, _trusted)}"
    return _message(line, [_section(line, block_id="error")])


# ---------------------------------------------------------------------------------------------
# Modals


def _modal(
    title: str,
    blocks: list[Block],
    *,
    callback_id: str,
    close: str,
    submit: str | None = None,
    private_metadata: str | None = None,
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": _plain(title, VIEW_TITLE),
        "close": _plain(close, VIEW_TITLE),
        "blocks": blocks[:MAX_VIEW_BLOCKS],
    }
    if submit:
        view["submit"] = _plain(submit, VIEW_TITLE)
    if private_metadata is not None:
        view["private_metadata"] = private_metadata
    return view


def _product_option(product: ProductInfo) -> dict[str, Any]:
    label = f"{product.name} ({product.vendor})"
    # Options are plain text: no escaping, and emoji codes in a name stay as typed.
    return {"text": {"type": "plain_text", "text": clip(label, OPTION_TEXT)}, "value": product.id}


def request_modal(
    products: list[ProductInfo], *, initial_product: str | None = None
) -> dict[str, Any]:
    """The request form (``/license request`` without arguments, and the global shortcut)."""
    # A longer ID could not come back in an option value; such a product is requested by command.
    usable = [p for p in products if 0 < len(p.id) <= OPTION_VALUE]
    if not usable:
        empty = [_section("The catalog is empty; ask IT to load it.", block_id="empty")]
        return _modal("Request a license", empty, callback_id=ids.VIEW_REQUEST, close="Close")
    shown: list[ProductInfo] = []
    options: list[dict[str, Any]] = []
    size = 0
    for item in usable[:MAX_MODAL_OPTIONS]:
        option = _product_option(item)
        size += len(json.dumps(option))
        if size > MAX_OPTIONS_BYTES:
            break
        shown.append(item)
        options.append(option)
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": ids.INPUT_PRODUCT,
        "placeholder": _plain("Choose a product", 150),
    }
    if len(options) <= MAX_OPTIONS:
        select["options"] = options
    else:
        groups = []
        for start in range(0, len(options), MAX_OPTIONS):
            part = shown[start : start + MAX_OPTIONS]
            label = f"{clip(part[0].name, 35)} to {clip(part[-1].name, 35)}"
            groups.append(
                {
                    "label": _plain(label, OPTION_TEXT),
                    "options": options[start : start + MAX_OPTIONS],
                }
            )
        select["option_groups"] = groups
    wanted = (initial_product or "").strip().lower()  # as typed after "/license request"
    initial = next((o for o, p in zip(options, shown, strict=True) if p.id == wanted), None)
    if initial is not None:
        select["initial_option"] = initial
    product_block: Block = {
        "type": "input",
        "block_id": ids.BLOCK_PRODUCT,
        "label": _plain("Product", 2000),
        "element": select,
    }
    if len(usable) > len(shown):
        product_block["hint"] = _plain(
            f"Showing the first {len(shown)} of {len(usable)} products; ask for any other with "
            f"{COMMAND} request PRODUCT_ID.",
            2000,
        )
    blocks: list[Block] = [
        product_block,
        {
            "type": "input",
            "block_id": ids.BLOCK_JUSTIFICATION,
            "optional": True,
            "label": _plain("Why do you need it?", 2000),
            "hint": _plain("Your approvers see this.", 2000),
            "element": {
                "type": "plain_text_input",
                "action_id": ids.INPUT_JUSTIFICATION,
                "multiline": True,
                "max_length": 3000,
            },
        },
    ]
    return _modal(
        "Request a license",
        blocks,
        callback_id=ids.VIEW_REQUEST,
        submit="Request",
        close="Cancel",
    )


def request_modal_done(result: SubmitResult) -> dict[str, Any]:
    """Replaces the form after a successful submission (``response_action: update``)."""
    _, blocks = submitted(result)
    return _modal("Request a license", blocks, callback_id=ids.VIEW_REQUEST, close="Done")


def deny_modal(request_id: int, step: int, product_name: str) -> dict[str, Any]:
    blocks: list[Block] = [
        _section(
            f"Deny request #{request_id} for *{_name(product_name)}*? "
            "The requester sees your reason.",
            block_id="about",
        ),
        {
            "type": "input",
            "block_id": ids.BLOCK_REASON,
            "label": _plain("Reason", 2000),
            "element": {
                "type": "plain_text_input",
                "action_id": ids.INPUT_REASON,
                "multiline": True,
                "max_length": 2000,
            },
        },
    ]
    return _modal(
        "Deny request",
        blocks,
        callback_id=ids.VIEW_DENY,
        submit="Deny",
        close="Cancel",
        private_metadata=f"{request_id}:{step}",
    )


def _key_slices(key: str) -> list[str]:
    """Cut a key into pieces whose rendering fits a section, never inside an escape."""
    slices: list[str] = []
    current: list[str] = []
    size = 0
    for ch in key:
        width = _units(escape(ch))
        if current and size + width > KEY_SLICE:
            slices.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += width
    if current:
        slices.append("".join(current))
    return slices


def _key_blocks(key: str) -> list[Block]:
    slices = _key_slices(key)
    if not slices:
        return [_section("_This key is empty; ask IT to check it._", block_id="key_empty")]
    if len(slices) > MAX_KEY_SECTIONS:
        return [
            _section(
                f"This key is too long to show in Slack ({len(key):,} characters); "
                "ask IT to send it to you another way.",
                block_id="key_too_long",
            )
        ]
    blocks: list[Block] = []
    for i, part in enumerate(slices):
        if "`" in key:
            # mrkdwn cannot escape a backtick inside code: show such a key as exact plain text.
            text: dict[str, Any] = {"type": "plain_text", "text": part, "emoji": False}
        elif "\n" in key:
            text = {"type": "mrkdwn", "text": f"```{escape(part)}```"}
        else:
            text = {"type": "mrkdwn", "text": f"`{escape(part)}`"}
        blocks.append({"type": "section", "block_id": f"key_{i}", "text": text})
    if len(slices) > 1:
        blocks.append(
            _context(
                f"The key is long, so it is shown in {len(slices)} parts: copy them in order "
                "and join them without spaces.",
                block_id="split_note",
            )
        )
    return blocks


def _duration(seconds: int) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return _plural(seconds // 60, "minute")
    return _plural(seconds, "second")


def reveal_modal(key: RevealedKey, *, hide_after_seconds: int) -> dict[str, Any]:
    """The one place a license key is rendered: a modal only its holder sees."""
    blocks: list[Block] = [
        _section(f"*{_name(key.product_name)}*", block_id="product"),
        *_key_blocks(key.key),
        _context(
            f"Only you can see this. It is hidden again after {_duration(hide_after_seconds)}.",
            block_id="notice",
        ),
    ]
    view = _modal("Your license key", blocks, callback_id=ids.VIEW_REVEAL, close="Done")
    if key.view_ref:  # hiding it again finds the modal by this (bot/delivery.py reveal_key)
        view["external_id"] = key.view_ref
    return view


def masked_reveal_modal(product_name: str) -> dict[str, Any]:
    blocks: list[Block] = [
        _section(f"*{_name(product_name)}*", block_id="product"),
        _section("`••••`", block_id="key_0"),
        _context("Hidden. Click *Reveal key* again to see it.", block_id="notice"),
    ]
    return _modal("Your license key", blocks, callback_id=ids.VIEW_REVEAL, close="Done")


# ---------------------------------------------------------------------------------------------
# The weekly IT digest

DIGEST_TOP = 15  # products listed by idle cost; the attached CSV has them all
DIGEST_LIST = 10  # over-assigned products, renewals, reclaimable, reviews shown per section
# Room a list section may use, leaving space for its "…and N more" line.
_LIST_TEXT = SECTION_TEXT - 100


def _lines_section(title: str, lines: Sequence[str], *, total: int, what: str) -> Block:
    """``title`` and as many whole ``lines`` as fit in one section; the rest counted."""
    text = title
    shown = 0
    for line in lines:
        if _units(text) + 1 + _units(line) > _LIST_TEXT:
            break
        text += "\n" + line
        shown += 1
    if total > shown:
        text += f"\n…and {total - shown} more {what} (see the attached CSV)."
    return _section(text)


def _digest_name(p: ProductFigures) -> str:
    return f"*{_fit(p.name, 60)}* (`{_fit(p.product_id, 40)}`)"


def _idle_line(p: ProductFigures) -> str:
    line = (
        f"• {_digest_name(p)}: {p.idle} idle of {p.assigned} held ({p.active} active)"
        f" · {_money(p.idle_cost)} idle"
    )
    if p.waitlist:
        line += f" · {p.waitlist} waiting"
    return line


def _renewal_line(r: RenewalFigures) -> str:
    line = (
        f"• *{_fit(r.product_name, 60)}* on {_day(r.renewal_date)} (in {r.days_left} days): "
        f"{r.seats_bought} bought, {r.used_30_days} used in 30 days, {r.recommended} recommended"
    )
    if r.yearly_saving:
        line += f" (saves {_money(r.yearly_saving)})"
    elif r.extra_cost:
        line += f" (+{_money(r.extra_cost)})"
    return line


def confidence_line(digest: Digest) -> str:
    """How much of the digest rests on usage data; seats without any are not called idle."""
    t = digest.totals
    if not t.assigned:
        return ":mag: Confidence: no seats are held."
    if not t.no_data:
        return (
            f":mag: Confidence: high. All {t.assigned} held seats are of products with usage data."
        )
    return (
        f":mag: Confidence: {t.no_data} of {t.assigned} held seats "
        f"({_plural(t.no_data_products, 'product')}) have no usage data at all: they are "
        "counted as *unknown*, not idle. Feed their use (CSV, API or a connector) to know."
    )


def it_digest(digest: Digest) -> Message:
    """For the IT channel, weekly: seats, idle cost, risks and what waits for IT.

    Top items only, within Slack's limits for any number of products; the full table follows
    as a CSV file (``digest_files_comment``)."""
    t = digest.totals
    week = digest.as_of.date().isoformat()
    summary = (
        f"Weekly license digest ({week}): {t.idle} idle seats cost {_money(t.idle_cost)}; "
        f"{t.reclaimed_this_week} seats reclaimed this week save {_money(t.saved_this_week)}."
    )
    body: list[Block] = [
        _header(f":bar_chart: Weekly license digest · {week}"),
        _fields(
            [
                f"*Seats bought*\n{t.bought} in {_plural(t.products, 'product')}",
                f"*Assigned*\n{t.assigned}",
                f"*Active*\n{t.active}",
                f"*Idle*\n{t.idle}",
                f"*Idle cost*\n{_money(t.idle_cost)}",
                f"*Waitlist*\n{t.waitlist} waiting",
                f"*Reclaimed this week*\n{t.reclaimed_this_week}"
                f" · saves {_money(t.saved_this_week)}",
                f"*Reclaimable*\n{t.reclaimable} unanswered nudges (IT decides)",
                f"*New, not used yet*\n{t.new}",
                f"*No usage data*\n{t.no_data} seats (unknown, not idle)",
            ],
            block_id="digest_totals",
        ),
        _context(confidence_line(digest), block_id="digest_confidence"),
        _divider(),
    ]
    idle = [p for p in digest.products if p.idle]
    if idle:
        body.append(
            _lines_section(
                f":money_with_wings: *Top {min(len(idle), DIGEST_TOP)} products by idle cost*",
                [_idle_line(p) for p in idle[:DIGEST_TOP]],
                total=len(idle),
                what="products with idle seats",
            )
        )
    else:
        body.append(_section(":money_with_wings: No idle seats this week."))
    over = digest.over_assigned
    if over:
        body.append(
            _lines_section(
                f":warning: *{_plural(len(over), 'product')} over-assigned* (more seats "
                "assigned than bought: a compliance risk)",
                [
                    f"• {_digest_name(p)}: {p.assigned} assigned, {p.bought} bought "
                    f"(+{p.over_assigned})"
                    for p in over[:DIGEST_LIST]
                ],
                total=len(over),
                what="over-assigned products",
            )
        )
    if digest.pending_count:
        body.append(
            _lines_section(
                f":hourglass: *{_plural(digest.pending_count, 'request')} pending approval for "
                "more than 48 h* (oldest first)",
                [
                    f"• #{r.request_id} *{_fit(r.product_name, 60)}* for {_user(r.requester_id)}"
                    f", since {_when(r.created_at)}"
                    for r in digest.pending_oldest
                ],
                total=digest.pending_count,
                what="requests",
            )
        )
    if digest.renewals:
        body.append(
            _lines_section(
                ":calendar: *Renewals in the next 60 days*",
                [_renewal_line(r) for r in digest.renewals[:DIGEST_LIST]],
                total=len(digest.renewals),
                what="renewals",
            )
        )
    if t.reclaimed_this_week:
        body.append(
            _section(
                f":recycle: *{_plural(t.reclaimed_this_week, 'seat')} came back this week*, "
                f"saving {_money(t.saved_this_week)}."
            )
        )
    reclaimable = digest.with_reclaimable
    if reclaimable:
        body.append(
            _lines_section(
                f":inbox_tray: *{_plural(t.reclaimable, 'seat')} reclaimable*: nudged, no answer "
                "after the grace period, not reclaimed automatically",
                [f"• {_digest_name(p)}: {p.reclaimable}" for p in reclaimable[:DIGEST_LIST]],
                total=len(reclaimable),
                what="products",
            )
        )
    if digest.reviews:
        open_count = sum(r.open_reviews for r in digest.reviews)
        body.append(
            _lines_section(
                f":clipboard: *{_plural(open_count, 'access review')} not finished*",
                [
                    f"• *{_fit(r.product_name, 60)}*: {r.open_reviews} open, since "
                    f"{_day(r.oldest_started_at.date())}"
                    for r in digest.reviews[:DIGEST_LIST]
                ],
                total=len(digest.reviews),
                what="products",
            )
        )
    unknown = digest.no_data_products
    if unknown:
        names = ", ".join(_fit(p.name, 60) for p in unknown[:20])
        if len(unknown) > 20:
            names += f" and {len(unknown) - 20} more"
        body.append(_context(f"No usage data for: {names}.", block_id="digest_no_data"))
    body.append(
        _context(
            f":paperclip: The full table ({_plural(t.products, 'product')}, CSV) and a chart of "
            "idle vs active seats follow.",
            block_id="digest_files",
        )
    )
    return _message(summary, body)


def digest_files_comment(digest: Digest) -> str:
    """The message the digest's CSV and chart are shared with."""
    return (
        f"Weekly license digest ({digest.as_of.date().isoformat()}): every product's figures "
        f"({digest.totals.products}) as CSV, and idle vs active seats by product."
    )


# ---------------------------------------------------------------------------------------------
# App Home


def _share(budget: int, needs: Sequence[int]) -> list[int]:
    """Split ``budget`` over ``needs`` fairly: small needs are met, the rest share what is left."""
    given = [0] * len(needs)
    left = budget
    hungry = [i for i, need in enumerate(needs) if need > 0]
    while hungry and left > 0:
        share = max(1, left // len(hungry))
        for i in list(hungry):
            take = min(share, needs[i] - given[i], left)
            given[i] += take
            left -= take
            if given[i] >= needs[i]:
                hungry.remove(i)
            if left == 0:
                break
    return given


def _open_request_block(card: RequestCard) -> Block:
    step = _step_text(card, card.step, "step", label=False)
    if card.status == "pending":
        approvers = card.approvers.get(card.step, [])
        if approvers:
            status = f"waiting for {_users_or(approvers)} ({step})"
        else:
            status = f"stuck at {step}: nobody can approve it yet; IT has been told"
    elif card.status == "waitlisted":
        status = (
            f"waitlisted, number {card.waitlist_position} in the queue"
            if card.waitlist_position
            else "waitlisted"
        )
    else:
        status = _status_phrase(card)
    return _section(
        f"*{_name(card.product.name)}* · request #{card.id}\n{status}", block_id=f"req_{card.id}"
    )


def _waiting_blocks(card: RequestCard) -> list[Block]:
    text = (
        f"*#{card.id} {_name(card.product.name)}* for {_user(card.requester_id)} · "
        f"{_step_text(card, card.step, 'step')}\n{_quote(card.justification, 600)}"
    )
    return [
        _section(text, block_id=f"wait_{card.id}_{card.step}"),
        _decision_buttons(card.id, card.step, block_id=f"decide_{card.id}_{card.step}"),
    ]


def home(view: Overview) -> dict[str, Any]:
    """The App Home tab: my licenses, my open requests, and what waits for my approval."""
    lengths = (len(view.licenses), len(view.requests), len(view.waiting_for_me))
    cost = (1, 1, 2)  # blocks per item; a request to decide has its buttons in a second block
    # Intro, three headers, two dividers, and per list one "and N more" (or empty-state) block.
    fixed = 1 + 3 + 2 + 3
    given = _share(MAX_VIEW_BLOCKS - fixed, [n * c for n, c in zip(lengths, cost, strict=True)])
    counts = [g // c for g, c in zip(given, cost, strict=True)]

    blocks: list[Block] = [
        _context(
            f"Ask for a license with `{COMMAND} request` or the *Request a license* shortcut; "
            f"`{COMMAND} help` shows everything.",
            block_id="intro",
        ),
        _header("My licenses"),
    ]
    if not view.licenses:
        blocks.append(_section("You have no licenses yet.", block_id="lic_empty"))
    blocks += [_licence_block(lic) for lic in view.licenses[: counts[0]]]
    if len(view.licenses) > counts[0]:
        blocks.append(
            _more(
                len(view.licenses) - counts[0], f"licenses: `{COMMAND} mine`", block_id="lic_more"
            )
        )

    blocks += [_divider(), _header("My open requests")]
    if not view.requests:
        blocks.append(_section("No open requests.", block_id="req_empty"))
    blocks += [_open_request_block(card) for card in view.requests[: counts[1]]]
    if len(view.requests) > counts[1]:
        blocks.append(_more(len(view.requests) - counts[1], "requests", block_id="req_more"))

    blocks += [_divider(), _header("Waiting for my approval")]
    if not view.waiting_for_me:
        blocks.append(_section("Nothing is waiting for you.", block_id="wait_empty"))
    for card in view.waiting_for_me[: counts[2]]:
        blocks += _waiting_blocks(card)
    if len(view.waiting_for_me) > counts[2]:
        blocks.append(
            _more(len(view.waiting_for_me) - counts[2], "requests to decide", block_id="wait_more")
        )
    return {"type": "home", "blocks": blocks[:MAX_VIEW_BLOCKS]}
