"""the seat's last use on the seat, and indexes for the seat scans

``assignment.last_used_at`` copies the holder's ``usage_signal.last_used_at`` (kept in step
by bot/usage.py), so the reclaim scans, the digest and the renewal figures read one table
through an index instead of joining every seat to every signal.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "assignment", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True)
    )
    # One statement for every seat, whatever the number of rows: the signal of its holder.
    op.execute(
        "UPDATE assignment SET last_used_at = ("
        "SELECT u.last_used_at FROM usage_signal u "
        "WHERE u.product_id = assignment.product_id AND u.user_id = assignment.user_id)"
    )
    op.create_index(
        "ix_assignment_product_last_use",
        "assignment",
        ["product_id", "released_at", "last_used_at", "assigned_at", "user_id"],
    )
    op.create_index(
        "ix_assignment_product_assigned",
        "assignment",
        ["product_id", "assigned_at", "released_at"],
    )
    op.create_index(
        "ix_assignment_product_nudged", "assignment", ["product_id", "released_at", "nudged_at"]
    )
    op.create_index(
        "ix_assignment_released_at",
        "assignment",
        ["released_at"],
        sqlite_where=sa.text("released_at IS NOT NULL"),
        postgresql_where=sa.text("released_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_assignment_released_at", table_name="assignment")
    op.drop_index("ix_assignment_product_nudged", table_name="assignment")
    op.drop_index("ix_assignment_product_assigned", table_name="assignment")
    op.drop_index("ix_assignment_product_last_use", table_name="assignment")
    with op.batch_alter_table("assignment") as batch_op:  # SQLite rebuilds the table
        batch_op.drop_column("last_used_at")
