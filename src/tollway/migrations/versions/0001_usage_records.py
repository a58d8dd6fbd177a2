"""usage_records: the ledger table.

Revision ID: 0001
Revises:
Create Date: 2024-11-22

Written out in full rather than imported from `tollway.storage.schema`: a migration is
history and must not change when the current schema does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("trace_id", sa.String(36), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=True),
        sa.Column("model_requested", sa.String(), nullable=True),
        sa.Column("model_served", sa.String(), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("cache_creation_tokens", sa.Integer(), nullable=True),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=True),
        sa.Column("cost_note", sa.String(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.String(), nullable=True),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=True),
        sa.Column("project", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("customer", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("trace_id", name="pk_usage_records"),
    )
    op.create_index("ix_usage_records_ts", "usage_records", ["ts", "trace_id"])
    op.create_index("ix_usage_records_project", "usage_records", ["project", "ts"])
    op.create_index("ix_usage_records_source", "usage_records", ["source", "ts"])
    op.create_index("ix_usage_records_customer", "usage_records", ["customer", "ts"])
    op.create_index("ix_usage_records_model_requested", "usage_records", ["model_requested", "ts"])
    op.create_index("ix_usage_records_key_id", "usage_records", ["key_id", "ts"])


def downgrade() -> None:
    op.drop_table("usage_records")
