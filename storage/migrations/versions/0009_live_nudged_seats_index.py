"""an index of the held seats that were nudged; fewer indexes for a nudge to update

The digest counts, and IT's list shows, nudges left unanswered past their grace period on every
product at once: with the per-product nudge index PostgreSQL still read the whole table (60 ms
for a million seats; 6 ms now). Partial, so it holds only the nudged seats still held, with
every column the unanswered test reads; it replaces the per-product nudge index. The plain
product index goes too (three others start with the product), and the grant end index keeps
only seats that end: a reclaim scan marking 10,000 seats nudged rewrites every index of each
seat, so each index less is a tenth less of its writing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

LIVE_NUDGED = "released_at IS NULL AND nudged_at IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_assignment_live_nudged",
        "assignment",
        ["product_id", "released_at", "nudged_at", "last_used_at", "assigned_at", "snoozed_until"],
        sqlite_where=sa.text(LIVE_NUDGED),
        postgresql_where=sa.text(LIVE_NUDGED),
    )
    op.drop_index("ix_assignment_product_nudged", table_name="assignment")
    op.drop_index("ix_assignment_product_id", table_name="assignment")
    op.drop_index("ix_assignment_expires_at", table_name="assignment")
    op.create_index(
        "ix_assignment_expires_at",
        "assignment",
        ["expires_at"],
        sqlite_where=sa.text("expires_at IS NOT NULL"),
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_assignment_expires_at", table_name="assignment")
    op.create_index("ix_assignment_expires_at", "assignment", ["expires_at"])
    op.create_index("ix_assignment_product_id", "assignment", ["product_id"])
    op.create_index(
        "ix_assignment_product_nudged", "assignment", ["product_id", "released_at", "nudged_at"]
    )
    op.drop_index("ix_assignment_live_nudged", table_name="assignment")
