"""The digest message stays inside Block Kit's limits whatever the catalog holds."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from bot import digest
from bot.renewals import RenewalFigures
from bot.slacksim.blockkit import validate_blocks
from handlers import blocks
from tests.conftest import START


def worst_case(products: int) -> digest.Digest:
    """Every product long-named, idle, over-assigned, renewing, reclaimable and under review."""
    figures = [
        digest.ProductFigures(
            product_id=f"p{n:04d}-" + "x" * 58,
            name=f"Product {n} <!channel> & " + "🧾" * 200,
            vendor="Vendor",
            bought=10,
            assigned=12,
            active=1,
            idle=9,
            new=1,
            no_data=1,
            has_usage_data=n % 2 == 0,
            cost_per_seat=Decimal("1234567.89"),
            waitlist=3,
            reclaimable=2,
            reclaimed_this_week=1,
            renewal_date=date(2026, 12, 1),
            open_reviews=1,
        )
        for n in range(products)
    ]
    return digest.Digest(
        as_of=START,
        products=figures,
        totals=digest._totals(figures),
        pending_count=900,
        pending_oldest=[
            digest.PendingApproval(n, "p", "P" * 300, "U0001", START - timedelta(days=9))
            for n in range(5)
        ],
        renewals=[
            RenewalFigures(
                product_id=p.product_id,
                product_name=p.name,
                vendor=p.vendor,
                renewal_date=date(2026, 12, 1),
                days_left=29,
                seats_bought=10,
                seats_assigned=12,
                used_30_days=2,
                peak_90_days=12,
                waitlist=3,
                buffer=2,
                recommended=16,
                cost_per_seat=p.cost_per_seat,
                yearly_saving=Decimal(0),
                extra_cost=Decimal("9999999.99"),
            )
            for p in figures
        ],
        reviews=[digest.OpenReview(p.product_id, p.name, 1, START) for p in figures],
    )


def test_the_digest_of_500_products_fits_in_one_message() -> None:
    text, body = blocks.it_digest(worst_case(500))
    assert validate_blocks(body) == []
    assert len(body) <= 50
    for block in body:
        assert len(block.get("fields", [])) <= 10
        assert len(block.get("text", {}).get("text", "")) <= 3000
    shown = "\n".join(str(b) for b in body)
    assert "<!channel>" not in shown  # catalog text is escaped
    assert "…and 485 more products with idle seats" in shown
    assert len(text) <= 3000


def test_the_confidence_line() -> None:
    d = worst_case(4)
    assert "4 of 48 held seats (4 products) have no usage data" in blocks.confidence_line(d)
