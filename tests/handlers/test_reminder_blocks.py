"""Block Kit for approval reminders, escalation and renewal notices: valid, escaped, in limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from bot.renewals import RenewalFigures
from handlers import blocks, ids
from tests.handlers.test_blocks import (
    EVIL,
    assert_no_injection,
    buttons,
    card,
    check_message,
    dump,
    product,
)


def figures(**over: object) -> RenewalFigures:
    values: dict[str, object] = {
        "product_id": "figma",
        "product_name": "Figma",
        "vendor": "Figma Inc.",
        "renewal_date": date(2027, 3, 1),
        "days_left": 28,
        "seats_bought": 10,
        "seats_assigned": 6,
        "used_30_days": 4,
        "peak_90_days": 6,
        "waitlist": 1,
        "buffer": 1,
        "recommended": 8,
        "cost_per_seat": Decimal("144"),
        "yearly_saving": Decimal("288"),
        "extra_cost": Decimal("0"),
    }
    values.update(over)
    return RenewalFigures(**values)  # type: ignore[arg-type]  # test data by keyword


def test_reminder_is_the_card_with_its_buttons_and_how_long_it_waited() -> None:
    text, body = check_message(blocks.approval_reminder(card(), step=0, waited=timedelta(hours=26)))
    assert [b["action_id"] for b in buttons(body)] == [ids.ACTION_APPROVE, ids.ACTION_DENY]
    assert [b["value"] for b in buttons(body)] == ["7:0", "7:0"]
    assert "<@UREQ> has been waiting 26 hours" in dump(body) and text.startswith("Reminder")
    _, long_wait = blocks.approval_reminder(card(), step=0, waited=timedelta(hours=75))
    assert "3 days 3 hours" in dump(long_wait)


def test_moved_card_keeps_the_facts_without_buttons() -> None:
    _, body = check_message(blocks.approval_card_moved(card(), step=0))
    assert buttons(body) == [] and "newer message below" in dump(body)
    assert "Design reviews for the Q1 launch." in dump(body)


def test_escalation_messages_name_who_was_added() -> None:
    _, body = check_message(
        blocks.request_escalated(card(), step=0, added=["UADM1", "UADM2"], after_hours="72")
    )
    assert "waited 72 hours" in dump(body) and "<@UADM1> or <@UADM2>" in dump(body)
    assert "/license cancel 7" in dump(body)
    _, nobody = check_message(blocks.escalation_nobody(card(), step=0, after_hours="1.5"))
    assert "no it_admin" in dump(nobody) and "<@UMGR>" in dump(nobody)


def test_hostile_names_are_escaped_in_every_new_message() -> None:
    odd = card(product=product(name="AT&T <!here> " + "x" * 400), justification=EVIL)
    for message in (
        blocks.approval_reminder(odd, step=0, waited=timedelta(hours=24)),
        blocks.approval_card_moved(odd, step=0),
        blocks.request_escalated(odd, step=0, added=["UADM1"], after_hours="<!here>"),
        blocks.escalation_nobody(odd, step=0, after_hours="72"),
        blocks.renewal_notice(
            figures(product_name="AT&T <!here> " + "x" * 400, vendor=EVIL), days_before=30
        ),
    ):
        check_message(message)
        assert_no_injection(message, allowed={"<@UREQ>", "<@UMGR>", "<@UADM1>"})


def test_renewal_notice_says_saving_extra_cost_or_match() -> None:
    _, saving = check_message(blocks.renewal_notice(figures(), days_before=30))
    assert "saves *$288.00/yr*" in dump(saving) and "renews in 28 days" in dump(saving)
    more = figures(recommended=12, yearly_saving=Decimal(0), extra_cost=Decimal(288))
    _, extra = check_message(blocks.renewal_notice(more, days_before=30))
    assert "2 more would cost $288.00/yr" in dump(extra)
    even = replace(figures(), recommended=10, yearly_saving=Decimal(0))
    _, match = check_message(blocks.renewal_notice(replace(even, days_left=0), days_before=7))
    assert "match the recommendation" in dump(match) and "renews today" in dump(match)
