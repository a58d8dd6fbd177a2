"""billing_outbox: billing events written with their usage records, delivered by a sender.

Revision ID: 0005_telemetry
Revises: 0003_audit
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_telemetry"
down_revision = "0003_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_outbox",
        sa.Column("event_id", sa.String(120), nullable=False),
        sa.Column("sink", sa.String(40), nullable=False),
        sa.Column("trace_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("claim", sa.String(40), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_billing_outbox"),
    )
    op.create_index("ix_billing_outbox_state", "billing_outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("billing_outbox")
