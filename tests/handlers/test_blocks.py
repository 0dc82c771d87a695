"""Block Kit builders: Slack's limits hold for any input, user text cannot inject, keys stay out."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.catalog import ProductInfo
from bot.delivery import RevealedKey
from bot.overview import DecisionView, LicenseView, Overview, RequestCard
from bot.requests import SubmitResult
from bot.slacksim.blockkit import validate_blocks, validate_view
from handlers import blocks, ids

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

FAMILY = "👩\u200d👩\u200d👧\u200d👦"
FLAG = "🇫🇷"
THUMB = "👍🏽"
COMBINING = "e\u0301"
RTL = "\u202e\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd"  # RLO, Arabic, Hebrew
INJECTIONS = "<@U1> <!channel> <!here> <!subteam^S1> <https://evil.example|click here> & <#C1>"
EVIL = (INJECTIONS + " " + FAMILY + FLAG + THUMB + COMBINING + RTL + "\n> *bold* `code`\n") * 120
assert len(EVIL) > 10_000


# ---------------------------------------------------------------------------------------------
# Domain values, built directly (frozen dataclasses, no database)


def product(i: int = 0, **over: Any) -> ProductInfo:
    values: dict[str, Any] = {
        "id": f"prod{i:03d}" if i else "figma",
        "name": f"Product {i}" if i else "Figma",
        "vendor": "Figma Inc.",
        "delivery": "key",
        "seats": 10,
        "seats_left": 3,
        "cost_per_seat": Decimal("599"),
        "renewal_date": date(2027, 3, 1),
        "approval": ("manager", "it-team"),
        "auto_approve": False,
        "seats_taken": 7,
    }
    values.update(over)
    return ProductInfo(**values)


def decision(step: int, outcome: str, decider: str = "UMGR", reason: str = "") -> DecisionView:
    return DecisionView(step, decider, outcome, reason, AT)


def card(**over: Any) -> RequestCard:
    values: dict[str, Any] = {
        "id": 7,
        "product": product(),
        "requester_id": "UREQ",
        "requested_by": "UREQ",
        "justification": "Design reviews for the Q1 launch.",
        "status": "pending",
        "step": 0,
        "step_count": 2,
        "step_labels": ["manager", "it-team"],
        "decisions": [],
        "approvers": {0: ["UMGR"], 1: ["UIT1", "UIT2"]},
        "fallback_why": {},
        "created_at": AT,
        "waitlist_position": 0,
    }
    values.update(over)
    return RequestCard(**values)


def licence(i: int, delivery: str = "key", **over: Any) -> LicenseView:
    values: dict[str, Any] = {
        "assignment_id": 100 + i,
        "product_id": f"prod{i:03d}",
        "product_name": f"Product {i}",
        "delivery": delivery,
        "assigned_at": AT,
        "has_key": delivery == "key",
    }
    values.update(over)
    return LicenseView(**values)


def result(**over: Any) -> SubmitResult:
    values: dict[str, Any] = {
        "request_id": 7,
        "product_id": "figma",
        "product_name": "Figma",
        "requester_id": "UREQ",
        "status": "pending",
        "step": 0,
        "step_count": 2,
        "next_approvers": ["UA", "UB"],
    }
    values.update(over)
    return SubmitResult(**values)


# ---------------------------------------------------------------------------------------------
# Checks: our Slack simulator's validator AND slack_sdk's models must both accept the output


def check_message(message: tuple[str, list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]]:
    text, body = message
    assert isinstance(text, str) and 0 < len(text) <= 40_000
    assert 1 <= len(body) <= blocks.MAX_MESSAGE_BLOCKS
    assert validate_blocks(body, max_blocks=blocks.MAX_MESSAGE_BLOCKS) == []
    for block in body:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.to_dict()  # raises SlackObjectFormationError past a limit
    return text, body


def check_view(view: dict[str, Any]) -> dict[str, Any]:
    assert validate_view(view) == []
    assert len(view["blocks"]) <= blocks.MAX_VIEW_BLOCKS
    View(**view).to_dict()
    assert len(json.dumps(view).encode()) < 250_000  # views.open: view_too_large
    return view


def texts(obj: Any) -> Iterator[str]:
    """Every string anywhere in a payload."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from texts(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            yield from texts(value)


def dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def buttons(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for block in body:
        if block.get("type") == "actions":
            found += [e for e in block["elements"] if e["type"] == "button"]
        accessory = block.get("accessory")
        if accessory and accessory.get("type") == "button":
            found.append(accessory)
    return found


def raw_markup(text: str) -> list[str]:
    """Slack control sequences ``<…>`` left unescaped in a string."""
    return re.findall(r"<[^>]*>", text)


def assert_no_injection(payload: Any, allowed: set[str]) -> None:
    for text in texts(payload):
        for markup in raw_markup(text):
            assert markup in allowed, f"unescaped {markup!r} in {text[:80]!r}"


# ---------------------------------------------------------------------------------------------
# clip and escape


def test_clip_leaves_short_text_alone() -> None:
    assert blocks.clip("hello", 5) == "hello"
    assert blocks.clip("", 0) == ""


def test_clip_cuts_to_the_limit_with_an_ellipsis() -> None:
    assert blocks.clip("hello world", 6) == "hello…"
    assert blocks.clip("hello", 0) == ""
    assert blocks.clip("hello", 1) == "…"


@pytest.mark.parametrize(
    "cluster",
    [
        FAMILY,
        FLAG,
        THUMB,
        COMBINING,
        "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    ],
    ids=["zwj-family", "flag", "skin-tone", "combining", "tag-flag"],
)
def test_clip_never_splits_a_grapheme(cluster: str) -> None:
    text = "ab" + cluster * 5
    boundaries = {0, 1, 2} | {2 + k * len(cluster) for k in range(6)}
    for limit in range(1, blocks._units(text) + 2):
        out = blocks.clip(text, limit)
        assert blocks._units(out) <= limit
        kept = out.removesuffix("…")
        assert text.startswith(kept)
        assert len(kept) in boundaries, (limit, out)


def test_clip_counts_astral_characters_as_two_units() -> None:
    out = blocks.clip("😀" * 10, 7)
    assert out == "😀😀😀…"


def test_clip_keeps_surrogate_pairs_whole() -> None:
    # Text decoded with surrogatepass can hold UTF-16 pairs as two code points.
    pair = "\ud83d\ude00"
    out = blocks.clip("a" + pair * 4, 5)
    body = out.removesuffix("…")
    assert not body.endswith("\ud83d")


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(min_value=0, max_value=300))
def test_clip_is_always_a_prefix_within_the_limit(text: str, limit: int) -> None:
    out = blocks.clip(text, limit)
    assert len(out) <= max(limit, 0)
    if out != text:
        assert out == "" or out.endswith("…")
        assert text.startswith(out.removesuffix("…").rstrip())


def test_escape_makes_mentions_and_links_literal() -> None:
    assert blocks.escape("<@U1> & <!channel>") == "&lt;@U1&gt; &amp; &lt;!channel&gt;"
    assert blocks.escape("&lt;") == "&amp;lt;"


# ---------------------------------------------------------------------------------------------
# Approval cards


def test_open_card_has_exact_buttons_and_facts() -> None:
    text, body = check_message(blocks.approval_card(card(), step=0))
    assert body[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "License request #7", "emoji": True},
    }
    found = buttons(body)
    assert [(b["text"]["text"], b["action_id"], b["value"], b.get("style")) for b in found] == [
        ("Approve", ids.ACTION_APPROVE, "7:0", "primary"),
        ("Deny", ids.ACTION_DENY, "7:0", "danger"),
    ]
    rendered = dump(body)
    for fact in ("<@UREQ>", "Figma", "Figma Inc.", "$599.00/yr", "3 of 10", "2027-03-01"):
        assert fact in rendered
    assert "Step 1 of 2 (manager)" in rendered
    assert "Design reviews for the Q1 launch." in rendered
    assert "UREQ" in text and "Figma" in text


def test_card_names_who_asked_for_someone_else() -> None:
    _, body = check_message(blocks.approval_card(card(requested_by="UBOSS"), step=0))
    assert "requested by <@UBOSS>" in dump(body)


def test_card_shows_why_the_step_went_to_it() -> None:
    why = "<@UREQ> has no manager in the directory, so IT approves this step."
    _, body = check_message(blocks.approval_card(card(fallback_why={0: why}), step=0))
    assert why in dump(body)  # the bot's own mention survives


def test_money_has_cents_and_thousands() -> None:
    expensive = card(product=product(cost_per_seat=Decimal("1299.5")))
    _, body = blocks.approval_card(expensive, step=0)
    assert "$1,299.50/yr" in dump(body)


def test_card_for_an_approved_step_names_the_decider_and_has_no_buttons() -> None:
    closed = card(step=1, decisions=[decision(0, "approved")])
    text, body = check_message(blocks.approval_card(closed, step=0))
    assert buttons(body) == []
    assert "✅ Approved by <@UMGR> on 2026-11-02 09:00 UTC" in dump(body)
    assert "Approved by <@UMGR>" in text
    # The next step's card is open for its approvers.
    _, next_body = check_message(blocks.approval_card(closed, step=1))
    assert [b["value"] for b in buttons(next_body)] == ["7:1", "7:1"]
    assert "Step 2 of 2 (it-team)" in dump(next_body)


def test_card_for_a_denied_step_shows_reason_escaped() -> None:
    denied = card(status="denied", decisions=[decision(0, "denied", reason="No <!channel> budget")])
    _, body = check_message(blocks.approval_card(denied, step=0))
    assert buttons(body) == []
    rendered = dump(body)
    assert "❌ Denied by <@UMGR> on 2026-11-02 09:00 UTC" in rendered
    assert "No &lt;!channel&gt; budget" in rendered
    assert "<!channel>" not in rendered


def test_card_closes_when_the_request_is_no_longer_pending() -> None:
    # The request was decided at step 0 before this (hypothetical) step-1 card was rendered.
    gone = card(status="denied", step=0, decisions=[decision(0, "denied", reason="no")])
    _, body = check_message(blocks.approval_card(gone, step=1))
    assert buttons(body) == []


def test_card_with_a_user_step_label_keeps_the_mention() -> None:
    labelled = card(step_labels=["<@UCFO>", "it-team"])
    _, body = blocks.approval_card(labelled, step=0)
    assert "Step 1 of 2 (<@UCFO>)" in dump(body)


def test_huge_odd_unicode_justification_is_clipped_and_escaped() -> None:
    evil = card(justification=EVIL, requested_by="UBOSS", fallback_why={0: "because <@UREQ>"})
    text, body = check_message(blocks.approval_card(evil, step=0))
    assert_no_injection(body, allowed={"<@UREQ>", "<@UBOSS>"})
    assert_no_injection(text, allowed={"<@UREQ>"})
    rendered = dump(body)
    assert "&lt;!channel&gt;" in rendered and "&lt;@U1&gt;" in rendered
    assert "…" in rendered


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=4000))
def test_any_justification_gives_a_valid_card(justification: str) -> None:
    check_message(blocks.approval_card(card(justification=justification), step=0))
    closed = card(status="denied", decisions=[decision(0, "denied", reason=justification or "x")])
    check_message(blocks.approval_card(closed, step=0))
    check_message(blocks.request_denied(closed))


def test_odd_catalog_names_are_escaped_everywhere() -> None:
    odd = product(name="AT&T <!here> " + "x" * 400, vendor="<@U9> " * 100)
    base = card(product=odd, justification=EVIL)
    for message in (
        blocks.approval_card(base, step=0),
        blocks.request_approved(base, licence(1)),
        blocks.request_denied(replace(base, decisions=[decision(0, "denied", reason=EVIL)])),
        blocks.request_waitlisted(base),
        blocks.request_stalled(base),
        blocks.it_provision(base),
        blocks.it_out_of_stock(base),
        blocks.catalog_list([odd]),
    ):
        check_message(message)
        assert_no_injection(message, allowed={"<@UREQ>", "<@UMGR>"})
        assert "AT&amp;T" in dump(message)


# ---------------------------------------------------------------------------------------------
# Messages to requesters, IT, and slash command answers


def test_submitted_pending_names_the_approvers() -> None:
    text, body = check_message(blocks.submitted(result()))
    expected = (
        "Request #7 for *Figma* created. Waiting for approval from <@UA> or <@UB> (step 1 of 2)."
    )
    assert text == expected
    assert body[0]["text"]["text"] == expected


def test_submitted_on_behalf_of_someone() -> None:
    text, _ = blocks.submitted(result(), asked_by="UBOSS")
    assert "on behalf of <@UREQ>" in text


def test_submitted_auto_approved_and_waitlisted_and_fallback() -> None:
    text, _ = check_message(blocks.submitted(result(status="approved", next_approvers=[])))
    assert "approved automatically" in text
    text, _ = check_message(
        blocks.submitted(result(status="waitlisted", next_approvers=[], waitlist_position=3))
    )
    assert "number 3 in the queue" in text
    why = "<@UREQ> has no manager in the directory, so IT approves this step."
    _, body = check_message(blocks.submitted(result(next_approvers=["UIT1"], why=why)))
    assert why in dump(body)
    text, _ = check_message(blocks.submitted(result(next_approvers=[])))
    assert "nobody can approve step 1 of 2" in text


def test_approved_key_product_offers_reveal_and_never_the_key() -> None:
    approved = card(
        status="approved",
        step=1,
        decisions=[decision(0, "approved"), decision(1, "approved", "UIT1")],
    )
    text, body = check_message(blocks.request_approved(approved, licence(5)))
    reveal = buttons(body)
    assert [(b["text"]["text"], b["action_id"], b["value"]) for b in reveal] == [
        ("Reveal key", ids.ACTION_REVEAL, "105")
    ]
    rendered = dump(body)
    assert "<@UMGR>" in rendered and "<@UIT1>" in rendered
    assert "approved" in text


def test_approved_seat_product_says_it_will_set_it_up() -> None:
    seat = card(
        status="approved",
        product=product(delivery="seat"),
        decisions=[decision(0, "auto", "licensebot")],
    )
    _, body = check_message(blocks.request_approved(seat, licence(5, "seat")))
    assert buttons(body) == []
    rendered = dump(body)
    assert "IT will set up your seat" in rendered
    assert "Approved automatically" in rendered
    assert "<@licensebot>" not in rendered


def test_denied_waitlisted_stalled_provision_out_of_stock() -> None:
    denied = card(status="denied", decisions=[decision(0, "denied", reason="Use the team plan")])
    _, body = check_message(blocks.request_denied(denied))
    assert "<@UMGR>" in dump(body) and "Use the team plan" in dump(body)

    waiting = card(status="waitlisted", waitlist_position=2)
    text, _ = check_message(blocks.request_waitlisted(waiting))
    assert "You are number 2 in the queue" in text

    text, body = check_message(blocks.request_stalled(card(step=1, approvers={0: ["UMGR"]})))
    assert "step 2 of 2" in text and "#7" in text
    assert "it_admin" in dump(body)

    seat = card(status="approved", product=product(delivery="seat"))
    text, _ = check_message(blocks.it_provision(seat))
    assert "<@UREQ>" in text and "#7" in text and "Figma" in text

    _, body = check_message(blocks.it_out_of_stock(waiting))
    assert "licensebot keys import" in dump(body)
    assert "number 2 in the queue" in dump(body)


def test_help_lists_every_usage() -> None:
    _, body = check_message(blocks.help_text())
    rendered = dump(body)
    for usage in (
        "/license request PRODUCT_ID [why…]",
        "/license request PRODUCT_ID for @user [why…]",
        "`/license request`",
        "/license mine",
        "/license catalog",
        "/license help",
    ):
        assert usage in rendered


def test_error_escapes_but_keeps_the_bots_mentions() -> None:
    text, body = check_message(blocks.error("<@UREQ> already has <!channel> & " + "x" * 5000))
    assert text.startswith(":warning: <@UREQ> already has &lt;!channel&gt; &amp; ")
    assert_no_injection(body, allowed={"<@UREQ>"})


def test_my_licenses_empty_and_capped() -> None:
    text, body = check_message(blocks.my_licenses([]))
    assert "no licenses" in text
    many = [licence(i, "key" if i % 2 else "seat") for i in range(60)]
    text, body = check_message(blocks.my_licenses(many))
    assert len(body) == blocks.MAX_MESSAGE_BLOCKS
    shown = [b for b in body if b.get("block_id", "").startswith("lic_")]
    assert "60 licenses" in text
    assert f"…and {60 - len(shown)} more" in dump(body[-1])
    assert all(b["text"]["text"] == "Reveal key" for b in buttons(body))
    assert {b["value"] for b in buttons(body)} == {
        str(lic.assignment_id) for lic in many[: len(shown)] if lic.delivery == "key"
    }


def test_catalog_of_200_products_stays_within_limits() -> None:
    products = [product(i) for i in range(1, 201)]
    _, body = check_message(blocks.catalog_list(products))
    rendered = dump(body)
    assert all(f"`/license request {p.id}`" in rendered for p in products)
    assert "$599.00/yr" in rendered and "3 of 10 left" in rendered and "2027-03-01" in rendered


def test_catalog_with_huge_entries_says_how_many_more() -> None:
    products = [product(i, name="N" * 500, vendor="V" * 500) for i in range(1, 501)]
    _, body = check_message(blocks.catalog_list(products))
    rendered = dump(body)
    listed = sum(f"`/license request {p.id}`" in rendered for p in products)
    assert 200 < listed < 500
    assert f"…and {500 - listed} more products" in rendered


def test_catalog_empty() -> None:
    text, _ = check_message(blocks.catalog_list([]))
    assert "empty" in text


# ---------------------------------------------------------------------------------------------
# Modals


def options_of(view: dict[str, Any]) -> list[dict[str, Any]]:
    select = view["blocks"][0]["element"]
    if "options" in select:
        return list(select["options"])
    return [o for group in select["option_groups"] for o in group["options"]]


def test_request_modal_shape() -> None:
    view = check_view(blocks.request_modal([product(), product(1)], initial_product="prod001"))
    assert view["callback_id"] == ids.VIEW_REQUEST
    assert view["title"]["text"] == "Request a license"
    assert view["submit"]["text"] == "Request" and view["close"]["text"] == "Cancel"
    product_block, why_block = view["blocks"]
    assert product_block["block_id"] == ids.BLOCK_PRODUCT
    assert product_block["element"]["action_id"] == ids.INPUT_PRODUCT
    assert product_block["element"]["type"] == "static_select"
    assert product_block["element"]["initial_option"]["value"] == "prod001"
    assert options_of(view)[0] == {
        "text": {"type": "plain_text", "text": "Figma (Figma Inc.)"},
        "value": "figma",
    }
    assert why_block["block_id"] == ids.BLOCK_JUSTIFICATION
    assert why_block["optional"] is True
    assert why_block["element"]["action_id"] == ids.INPUT_JUSTIFICATION
    assert why_block["element"]["multiline"] is True
    assert why_block["element"]["max_length"] == 3000


def test_request_modal_ignores_an_unknown_initial_product() -> None:
    view = check_view(blocks.request_modal([product()], initial_product="nope"))
    assert "initial_option" not in view["blocks"][0]["element"]


def test_request_modal_with_200_products_uses_option_groups() -> None:
    products = [product(i, name=f"{'Long name ' * 10}{i}") for i in range(1, 201)]
    view = check_view(blocks.request_modal(products, initial_product="prod150"))
    options = options_of(view)
    assert [o["value"] for o in options] == [p.id for p in products]
    assert all(len(o["text"]["text"]) <= 75 for o in options)
    assert view["blocks"][0]["element"]["initial_option"]["value"] == "prod150"


def test_request_modal_caps_a_huge_catalog() -> None:
    products = [product(i, name="N" * 100, vendor="V" * 100) for i in range(1, 1501)]
    view = check_view(blocks.request_modal(products))
    assert len(options_of(view)) == blocks.MAX_MODAL_OPTIONS
    assert "1000 of 1500" in view["blocks"][0]["hint"]["text"]


def test_request_modal_with_an_empty_catalog_has_no_submit() -> None:
    view = check_view(blocks.request_modal([]))
    assert "submit" not in view


def test_request_modal_done_confirms() -> None:
    view = check_view(blocks.request_modal_done(result()))
    assert view["callback_id"] == ids.VIEW_REQUEST
    assert "submit" not in view
    assert "Waiting for approval from <@UA> or <@UB>" in dump(view)


def test_deny_modal_shape() -> None:
    view = check_view(blocks.deny_modal(7, 1, "AT&T <!channel> " + "x" * 5000))
    assert view["callback_id"] == ids.VIEW_DENY
    assert view["title"]["text"] == "Deny request"
    assert view["private_metadata"] == "7:1"
    assert view["submit"]["text"] == "Deny" and view["close"]["text"] == "Cancel"
    reason = view["blocks"][-1]
    assert reason["block_id"] == ids.BLOCK_REASON
    assert not reason.get("optional", False)
    assert reason["element"]["action_id"] == ids.INPUT_REASON
    assert reason["element"]["multiline"] is True
    assert reason["element"]["max_length"] == 2000
    assert_no_injection(view, allowed=set())


# ---------------------------------------------------------------------------------------------
# Keys


def key_text(view: dict[str, Any]) -> str:
    """The key as a person would copy it back out of the modal."""
    parts = []
    for block in view["blocks"]:
        if not block.get("block_id", "").startswith("key_"):
            continue
        text = block["text"]
        if text["type"] == "plain_text":
            parts.append(text["text"])
        else:
            parts.append(html.unescape(text["text"].strip("`")))
    return "".join(parts)


def test_reveal_modal_shows_the_key_and_when_it_hides() -> None:
    revealed = RevealedKey(5, "figma", "Figma", "ABCD-1234-<&>-EFGH")
    view = check_view(blocks.reveal_modal(revealed, hide_after_seconds=120))
    assert view["callback_id"] == ids.VIEW_REVEAL
    assert view["title"]["text"] == "Your license key"
    assert view["close"]["text"] == "Done" and "submit" not in view
    assert "private_metadata" not in view
    assert key_text(view) == revealed.key
    assert "`ABCD-1234-&lt;&amp;&gt;-EFGH`" in dump(view)
    assert "Only you can see this. It is hidden again after 2 minutes." in dump(view)


@pytest.mark.parametrize(
    "key",
    [
        "K" * 10_000,
        ("<&>" * 4000),  # every character grows when escaped; slices must not cut an entity
        "line one\n" * 800,
        "has`backtick" * 500,
    ],
    ids=["plain", "escaped", "multiline", "backtick"],
)
def test_long_keys_are_split_over_sections_not_clipped(key: str) -> None:
    view = check_view(blocks.reveal_modal(RevealedKey(5, "p", "P", key), hide_after_seconds=90))
    sections = [b for b in view["blocks"] if b.get("block_id", "").startswith("key_")]
    assert len(sections) > 1
    assert all(len(s["text"]["text"]) <= 3000 for s in sections)
    assert key_text(view) == key
    assert "parts" in dump(view)
    assert "90 seconds" in dump(view)


def test_a_key_too_long_for_slack_is_not_shown_in_part() -> None:
    key = "Z" * (blocks.KEY_SLICE * blocks.MAX_KEY_SECTIONS + 1)
    view = check_view(blocks.reveal_modal(RevealedKey(5, "p", "P", key), hide_after_seconds=60))
    assert "Z" * 100 not in dump(view)
    assert "too long" in dump(view)


def test_masked_reveal_modal() -> None:
    view = check_view(blocks.masked_reveal_modal("Figma"))
    assert view["callback_id"] == ids.VIEW_REVEAL
    assert view["title"]["text"] == "Your license key"
    rendered = dump(view)
    assert "••••" in rendered and "Hidden. Click *Reveal key* again to see it." in rendered


def test_no_key_in_any_output_but_the_reveal_modal() -> None:
    secret = "SECRET-KEY-9f8e7d6c5b4a"
    revealed = RevealedKey(105, "figma", "Figma", secret)
    approved = card(status="approved", decisions=[decision(0, "approved"), decision(1, "approved")])
    home_view = Overview(
        user_id="UREQ",
        licenses=[licence(5)],
        requests=[card()],
        waiting_for_me=[card(id=8, requester_id="UOTHER")],
    )
    outputs: list[Any] = [
        blocks.approval_card(approved, step=0),
        blocks.approval_card(card(), step=0),
        blocks.submitted(result()),
        blocks.request_approved(approved, licence(5)),
        blocks.request_denied(card(status="denied")),
        blocks.request_waitlisted(card(status="waitlisted")),
        blocks.request_stalled(card()),
        blocks.it_provision(approved),
        blocks.it_out_of_stock(approved),
        blocks.my_licenses([licence(5)]),
        blocks.catalog_list([product()]),
        blocks.help_text(),
        blocks.error("nope"),
        blocks.request_modal([product()]),
        blocks.request_modal_done(result()),
        blocks.deny_modal(7, 0, "Figma"),
        blocks.masked_reveal_modal(revealed.product_name),
        blocks.home(home_view),
    ]
    for output in outputs:
        assert secret not in dump(output)
    assert secret not in repr(revealed)
    view = blocks.reveal_modal(revealed, hide_after_seconds=60)
    assert secret in dump(view["blocks"])
    assert secret not in dump({k: v for k, v in view.items() if k != "blocks"})
    assert buttons(view["blocks"]) == []


# ---------------------------------------------------------------------------------------------
# App Home


def test_home_lists_licenses_requests_and_approvals() -> None:
    view = check_view(
        blocks.home(
            Overview(
                user_id="UREQ",
                licenses=[licence(1), licence(2, "seat")],
                requests=[
                    card(id=3),
                    card(id=4, status="waitlisted", waitlist_position=2, step=1),
                ],
                waiting_for_me=[card(id=9, requester_id="UOTHER", step=1)],
            )
        )
    )
    assert view["type"] == "home"
    rendered = dump(view)
    for title in ("My licenses", "My open requests", "Waiting for my approval"):
        assert title in rendered
    assert "waiting for <@UMGR> (step 1 of 2)" in rendered
    assert "waitlisted, number 2 in the queue" in rendered
    found = buttons(view["blocks"])
    assert [(b["text"]["text"], b["value"]) for b in found] == [
        ("Reveal key", "101"),
        ("Approve", "9:1"),
        ("Deny", "9:1"),
    ]


def test_home_empty() -> None:
    view = check_view(blocks.home(Overview(user_id="U1", licenses=[], requests=[])))
    assert "You have no licenses yet." in dump(view)
    assert "Nothing is waiting for you." in dump(view)


def test_home_with_60_licenses_and_full_queues_stays_within_100_blocks() -> None:
    overview = Overview(
        user_id="UREQ",
        licenses=[licence(i) for i in range(60)],
        requests=[card(id=1000 + i, justification=EVIL) for i in range(20)],
        waiting_for_me=[card(id=2000 + i, justification=EVIL) for i in range(20)],
    )
    view = check_view(blocks.home(overview))
    rendered = dump(view)
    shown_licences = sum(
        1 for b in view["blocks"] if re.fullmatch(r"lic_\d+", b.get("block_id", ""))
    )
    shown_waiting = sum(1 for b in view["blocks"] if b.get("block_id", "").startswith("wait_2"))
    assert f"…and {60 - shown_licences} more licenses" in rendered
    if shown_waiting < 20:
        assert f"…and {20 - shown_waiting} more requests to decide" in rendered
    assert shown_waiting >= 10  # the actionable list is not starved by a long license list
    assert_no_injection(view, allowed={"<@UREQ>", "<@UMGR>"})


def test_home_with_60_licenses_only() -> None:
    view = check_view(blocks.home(Overview("U1", [licence(i) for i in range(60)], [])))
    shown = sum(1 for b in view["blocks"] if re.fullmatch(r"lic_\d+", b.get("block_id", "")))
    assert shown == 60


def test_request_modal_preselects_the_product_as_typed() -> None:
    view = check_view(blocks.request_modal([product(), product(1)], initial_product=" PROD001 "))
    assert view["blocks"][0]["element"]["initial_option"]["value"] == "prod001"


def test_request_modal_stays_under_slacks_view_size_with_wide_options() -> None:
    wide = [
        product(i, id=f"{i:04d}" + "x" * 146, name="\u6f22\u5b57" * 40, vendor="\u30d9" * 40)
        for i in range(1, 1001)
    ]
    view = check_view(blocks.request_modal(wide))
    shown = len(options_of(view))
    assert 0 < shown < 1000
    assert f"first {shown} of 1000" in view["blocks"][0]["hint"]["text"]


def _seat(**over: Any) -> Any:
    from bot.reclaim import SeatView

    values: dict[str, Any] = {
        "assignment_id": 7,
        "user_id": "UEMP",
        "product_id": "figma",
        "product_name": "Figma",
        "cost_per_seat": Decimal("144"),
        "assigned_at": datetime(2026, 1, 1, tzinfo=UTC),
        "last_used_at": None,
        "reclaim_after_days": 30,
        "reclaim_grace_days": 7,
        "auto_reclaim": False,
        "snoozed_until": None,
        "released_at": None,
        "release_reason": "",
    }
    values.update(over)
    return SeatView(**values)


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        ("released", "Thanks for giving back"),
        ("revoked", "revoked in an access review"),
        ("expired", "time-limited"),
        ("offboarded", "deactivated"),
    ],
)
def test_an_answered_nudge_says_how_the_seat_ended(reason: str, says: str) -> None:
    ended = _seat(released_at=datetime(2026, 3, 1, tzinfo=UTC), release_reason=reason)
    text, body = check_message(blocks.reclaim_answered(ended))
    assert says in text
    assert not buttons(body)
    if reason != "released":
        assert "Thanks" not in text
