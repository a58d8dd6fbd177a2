"""guard: usage_records.guard_findings, and record_bodies for [store] log_bodies.

Revision ID: 0008_guard
Revises: 0003_edge
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_guard"
down_revision = "0003_edge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("guard_findings", sa.Text(), nullable=True))
    op.create_table(
        "record_bodies",
        sa.Column("trace_id", sa.String(36), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("request_truncated", sa.Boolean(), nullable=False),
        sa.Column("response_truncated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("trace_id", name="pk_record_bodies"),
    )
    op.create_index("ix_record_bodies_ts", "record_bodies", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_record_bodies_ts", table_name="record_bodies")
    op.drop_table("record_bodies")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("guard_findings")
