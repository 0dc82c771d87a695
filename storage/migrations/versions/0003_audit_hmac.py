"""audit entries signed with an HMAC key; product_id and time indexed for export filters

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:00:00

Entries written before this revision have no key_id/mac: a migration has no audit key, so it
cannot sign them. ``licensebot audit verify`` reports them as unsigned until
``licensebot audit verify --sign-legacy`` signs them (after checking their hash chain).
Their product_id is filled in here from their details.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("product_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_entry_product_id"), ["product_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entry_at"), ["at"], unique=False)
    _fill_product_ids()


def _fill_product_ids() -> None:
    # In Python, not SQL: JSON functions differ between SQLite and PostgreSQL, and the rule must
    # match storage.audit.product_of (a string of at most 64 characters), frozen here as it was.
    conn = op.get_bind()
    entries = sa.table(
        "audit_entry",
        sa.column("id", sa.Integer),
        sa.column("details", sa.Text),
        sa.column("product_id", sa.String),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(entries.c.id, entries.c.details)
            .where(entries.c.id > last)
            .order_by(entries.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        for entry_id, details in rows:
            try:
                product = json.loads(details).get("product")
            except (ValueError, AttributeError):  # not JSON, or not an object
                continue
            if isinstance(product, str) and len(product) <= 64:
                conn.execute(
                    sa.update(entries).where(entries.c.id == entry_id).values(product_id=product)
                )
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entry_at"))
        batch_op.drop_index(batch_op.f("ix_audit_entry_product_id"))
        batch_op.drop_column("product_id")
        batch_op.drop_column("mac")
        batch_op.drop_column("key_id")
