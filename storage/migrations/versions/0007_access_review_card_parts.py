"""access review card parts

A product with many holders gets several review cards per reviewer (Slack allows 50 blocks a
message), so a card is identified by (review, reviewer, part).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _card_table(name: str, *, with_part: bool) -> None:
    columns: list[sa.schema.SchemaItem] = [
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.String(length=32), nullable=False),
    ]
    if with_part:
        columns.append(sa.Column("part", sa.Integer(), nullable=False))
    op.create_table(
        name,
        *columns,
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("ts", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["review_id"], ["access_review.id"]),
        sa.PrimaryKeyConstraint(
            "review_id", "reviewer_id", *(["part"] if with_part else []), name=f"{name}_pkey"
        ),
    )


def upgrade() -> None:
    # The primary key grows a column: build the new table, copy (cards so far are part 0), swap.
    _card_table("access_review_card_v7", with_part=True)
    op.execute(
        "INSERT INTO access_review_card_v7 (review_id, reviewer_id, part, channel, ts) "
        "SELECT review_id, reviewer_id, 0, channel, ts FROM access_review_card"
    )
    op.drop_table("access_review_card")
    op.rename_table("access_review_card_v7", "access_review_card")


def downgrade() -> None:
    # Only the first card of each reviewer can be kept: the old key has no room for parts.
    _card_table("access_review_card_v6", with_part=False)
    op.execute(
        "INSERT INTO access_review_card_v6 (review_id, reviewer_id, channel, ts) "
        "SELECT review_id, reviewer_id, channel, ts FROM access_review_card WHERE part = 0"
    )
    op.drop_table("access_review_card")
    op.rename_table("access_review_card_v6", "access_review_card")
