"""Upstream responses: whose each response kept by an OpenAI-format provider is.

Revision ID: 0014_upstream_responses
Revises: 0013_attempts
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_upstream_responses"
down_revision = "0013_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstream_responses",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=True),
    )
    op.create_index("ix_upstream_responses_created_at", "upstream_responses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_upstream_responses_created_at", table_name="upstream_responses")
    op.drop_table("upstream_responses")
