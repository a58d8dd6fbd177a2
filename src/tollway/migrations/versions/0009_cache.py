"""response cache: usage_records.cache (the outcome) and cost_saved_nanousd (what a hit saved).

Revision ID: 0009_cache
Revises: 0008_guard
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_cache"
down_revision = "0008_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("cache", sa.String(), nullable=True))
        batch.add_column(sa.Column("cost_saved_nanousd", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("cost_saved_nanousd")
        batch.drop_column("cache")
