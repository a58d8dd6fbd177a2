"""responses: each stored response keeps its own items once, linked to the one it continues.

Before, a row held the whole conversation up to it, so a chain of N turns stored O(N²) items.
Now `conversation` holds only the response's own input and output items (`input_count` of them
input); `previous_id` links to the response it continues, and the history is rebuilt by walking
those links. `depth` and `chain_bytes` (turns and item bytes up to and including the row) let a
continuation be refused before anything is loaded when the chain is over its bounds. Older rows
keep their whole conversation and no link: the walk ends at them with the same history as before.
`created_at` is indexed for expiry (`[responses] ttl_days`).

Revision ID: 0004_keyed
Revises: 0005_telemetry
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_keyed"
down_revision = "0005_telemetry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("previous_id", sa.String(80), nullable=True))
        batch.add_column(sa.Column("input_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("depth", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("chain_bytes", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index("ix_responses_created_at", "responses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_created_at", table_name="responses")
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("chain_bytes")
        batch.drop_column("depth")
        batch.drop_column("input_count")
        batch.drop_column("previous_id")
