"""Attempts: which deployment served a request, how many provider calls it took, and whether a
failure reached the client ("customer") or was mitigated by a retry or fallback.

Revision ID: 0013_attempts
Revises: 0012_rollups
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_attempts"
down_revision = "0012_rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite has it): a batch copy would trip over the ask_requests view
    op.add_column("usage_records", sa.Column("deployment", sa.String(), nullable=True))
    op.add_column("usage_records", sa.Column("attempts", sa.Integer(), nullable=True))
    op.add_column("usage_records", sa.Column("failure", sa.String(), nullable=True))
    op.add_column("usage_records", sa.Column("attempt_errors", sa.Text(), nullable=True))
    op.create_index("ix_usage_records_failure", "usage_records", ["failure", "ts"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_failure", table_name="usage_records")
    # plain DROP COLUMN (SQLite 3.35+): a batch copy of the table breaks the ask_requests view
    for name in ("attempt_errors", "failure", "attempts", "deployment"):
        op.drop_column("usage_records", name)
