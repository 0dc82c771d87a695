"""license keys record when they were handed out; a partial index of the free ones

A free key was "no assignment points at it", found by probing assignment for each of the
product's keys in order: every hand-out and every seat count walked past all the keys given
before (10 ms per Approve once 3,000 keys were out). Now a key carries ``handed_out_at`` and the
free ones are an index range.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("license_key", sa.Column("handed_out_at", sa.DateTime(timezone=True)))
    # One statement whatever the number of keys: each handed-out key takes its seat's start.
    op.execute(
        "UPDATE license_key SET handed_out_at = ("
        "SELECT a.assigned_at FROM assignment a WHERE a.key_id = license_key.id) "
        "WHERE EXISTS (SELECT 1 FROM assignment a WHERE a.key_id = license_key.id)"
    )
    op.create_index(
        "ix_license_key_free",
        "license_key",
        ["product_id", "id"],
        sqlite_where=sa.text("handed_out_at IS NULL"),
        postgresql_where=sa.text("handed_out_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_license_key_free", table_name="license_key")
    # A plain DROP COLUMN (SQLite 3.35+): a batch rebuild would drop license_key, which
    # assignment's foreign key forbids.
    op.drop_column("license_key", "handed_out_at")
