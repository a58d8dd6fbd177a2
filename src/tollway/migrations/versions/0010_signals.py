"""Routing: quality feedback signals (POST /v1/signals).

Revision ID: 0010_signals
Revises: 0007_portal
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_signals"
down_revision = "0007_portal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("trace_id", sa.String(36), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("label", sa.String()),
        sa.Column("key_id", sa.String()),
    )
    op.create_index("ix_signals_trace_id", "signals", ["trace_id"])
    op.create_index("ix_signals_ts", "signals", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_signals_ts", table_name="signals")
    op.drop_index("ix_signals_trace_id", table_name="signals")
    op.drop_table("signals")
