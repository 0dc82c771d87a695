"""``blocks.audit_log``: within Slack's limits for any entries, user text escaped, newest first."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import Block

from bot.audit_view import AuditLine
from bot.slacksim.blockkit import validate_blocks
from handlers import blocks
from tests.handlers.test_blocks import EVIL

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def line(i: int, **over: Any) -> AuditLine:
    values: dict[str, Any] = {
        "id": i,
        "at": AT + timedelta(minutes=i),
        "actor": "UMGR00001",
        "action": "step.approved",
        "subject": f"request:{i}",
        "details": {"step": 1, "of": 2, "reason": ""},
    }
    values.update(over)
    return AuditLine(**values)


def check(message: tuple[str, list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]]:
    text, body = message
    assert 0 < len(text) <= blocks.FALLBACK_TEXT
    assert 1 <= len(body) <= blocks.MAX_MESSAGE_BLOCKS
    assert validate_blocks(body, max_blocks=blocks.MAX_MESSAGE_BLOCKS) == []
    for block in body:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.to_dict()  # raises past a limit
    return text, body


def test_entries_about_a_person_render_in_the_order_given() -> None:
    entries = [
        line(3, actor="licensebot", action="seat.assigned", subject="user:UEMP00001"),
        line(2),
        line(1, actor="UEMP00001", action="request.created", details={"for": "UEMP00001"}),
    ]
    text, body = check(blocks.audit_log(entries, user="UEMP00001"))

    assert text == "3 entries of the audit log about <@UEMP00001>."
    assert "*Audit log for <@UEMP00001>* — the latest 3 entries" in body[0]["text"]["text"]
    rendered = [b["text"]["text"] for b in body[1:4]]
    assert rendered[0].startswith(
        "*2026-11-02 09:03 UTC* · `seat.assigned` by licensebot on <@UEMP00001>"
    )
    assert "`request:2`" in rendered[1] and "step: 1 · of: 2 · reason: " in rendered[1]
    assert "for: <@UEMP00001>" in rendered[2]
    assert [b["block_id"] for b in body[1:4]] == ["audit_3", "audit_2", "audit_1"]


def test_a_products_entries_and_an_empty_answer() -> None:
    text, body = check(blocks.audit_log([line(1)], product="figma"))
    assert text == "1 entry of the audit log about `figma`."

    text, body = check(blocks.audit_log([], product="figma"))
    assert text == "No audit entries about `figma` yet."
    assert len(body) == 1


def test_typed_text_is_escaped_and_clipped() -> None:
    evil = [
        line(
            i,
            actor="<!channel>",
            action=EVIL[:64],
            subject=EVIL[:128],
            details={"justification": EVIL, "for": "<@U1>", "nested": {"x": EVIL[:50]}},
        )
        for i in range(20)
    ]
    _, body = check(blocks.audit_log(evil, user="UEMP00001"))

    dumped = json.dumps(body)
    for raw in ("<!channel>", "<!here>", "<@U1>", "<https://evil.example"):
        assert raw not in dumped
    assert "&lt;!channel&gt;" in dumped
    assert all(len(b["text"]["text"]) <= blocks.SECTION_TEXT for b in body if "text" in b)


def test_many_details_are_cut_short() -> None:
    many = line(1, details={f"k{i}": i for i in range(12)})
    _, body = check(blocks.audit_log([many], user="UEMP00001"))
    assert "…4 more" in body[1]["text"]["text"] and "k8" not in body[1]["text"]["text"]


def test_more_entries_than_blocks_say_how_many_were_left_out() -> None:
    entries = [line(i) for i in range(100, 0, -1)]
    _, body = check(blocks.audit_log(entries, user="UEMP00001"))

    assert len(body) <= blocks.MAX_MESSAGE_BLOCKS
    assert body[-1]["block_id"] == "hidden"
    shown = len(body) - 2
    assert f"and {100 - shown} more entries" in body[-1]["elements"][0]["text"]


def test_forty_eight_entries_fit_with_the_footer() -> None:
    _, body = check(blocks.audit_log([line(i) for i in range(48)], user="UEMP00001"))
    assert len(body) == 50 and body[-1]["block_id"] == "more"


def test_usage_and_help_mention_audit() -> None:
    _, usage = check(blocks.audit_usage())
    assert "/license audit @user" in usage[0]["text"]["text"]
    assert "/license audit PRODUCT_ID" in usage[0]["text"]["text"]
    _, help_body = check(blocks.help_text())
    assert "`/license audit @user` or `/license audit PRODUCT_ID`" in json.dumps(
        help_body, ensure_ascii=False
    )
