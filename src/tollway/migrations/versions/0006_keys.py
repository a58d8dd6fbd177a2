"""Keys, teams / projects / customers, budgets and the change marker; usage_records.team.

Revision ID: 0006_keys
Revises: 0009_cache
Create Date: 2026-11-30
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0006_keys"
down_revision = "0009_cache"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=True),
        sa.Column("prev_valid_until", sa.Float(), nullable=True),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("team", sa.String(), nullable=True),
        sa.Column("project", sa.String(), nullable=True),
        sa.Column("customer", sa.String(), nullable=True),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.BigInteger(), nullable=True),
        sa.Column("max_concurrency", sa.Integer(), nullable=True),
        sa.Column("queue_timeout_ms", sa.Integer(), nullable=False),
        sa.Column("models", sa.Text(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("max_body_bytes", sa.BigInteger(), nullable=True),
        sa.Column("credentials", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("secret_hash", name="uq_api_keys_secret_hash"),
    )
    op.create_table(
        "key_groups",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "id", name="pk_key_groups"),
    )
    op.create_table(
        "budgets",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("limit_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("window", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_budgets"),
    )
    op.create_index("ix_budgets_scope_target", "budgets", ["scope", "target"])
    version = op.create_table(
        "policy_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policy_version"),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0, "updated_at": time.time()}])
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("team", sa.String(), nullable=True))
    op.create_index("ix_usage_records_team", "usage_records", ["team", "ts"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_team", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("team")
    op.drop_table("policy_version")
    op.drop_index("ix_budgets_scope_target", table_name="budgets")
    op.drop_table("budgets")
    op.drop_table("key_groups")
    op.drop_table("api_keys")
