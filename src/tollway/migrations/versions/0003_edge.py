"""usage_records.seq: insertion order, the cursor for exporters (`GET /v1/records?after_seq=`).

Revision ID: 0003_edge
Revises: 0004_keyed
Create Date: 2026-11-29

Postgres: a sequence is the column's default, so every insert gets the next number (rows
that exist get theirs when the column is added). SQLite has no sequences: the writer's
INSERT computes MAX(seq) + 1, and existing rows take their rowid, which is their
insertion order.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_edge"
down_revision = "0004_keyed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE usage_records_seq")
        op.add_column("usage_records", sa.Column("seq", sa.BigInteger(), nullable=True,
                                                 server_default=sa.text("nextval('usage_records_seq')")))
        op.execute("ALTER SEQUENCE usage_records_seq OWNED BY usage_records.seq")
    else:
        op.add_column("usage_records", sa.Column("seq", sa.BigInteger(), nullable=True))
        op.execute("UPDATE usage_records SET seq = rowid")
    op.create_index("ix_usage_records_seq", "usage_records", ["seq"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_usage_records_seq", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("seq")
