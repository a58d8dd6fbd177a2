"""Portal: usage rollups (facets, daily, latency histograms; the records already stored are rolled
up by 0012_rollups, in the rollups' current shape), runtime providers, change markers, and the
read-only views that Ask may query.

Revision ID: 0007_portal
Revises: 0006_keys
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollway.storage.schema import MEASURES

revision = "0007_portal"
down_revision = "0006_keys"
branch_labels = None
depends_on = None

_FLOATS = {"latency_sum", "ttft_sum", "latency_min", "ttft_min", "latency_max", "ttft_max", "last_ts"}
_NULLABLE = {"latency_min", "ttft_min", "latency_max", "ttft_max"}
# the rollup attributes of this version (0012 adds team)
ROLLUP_DIMS = ("model", "model_requested", "project", "source", "customer", "key_id", "provider")

# What Ask may read (documented in ask/schema.py): the records, and the daily rollups,
# which outlive the records when a retention is set.
_RECORD_COLUMNS = ("trace_id, ts, {time} AS time, route, provider, model_requested, model_served, "
                   "COALESCE(model_served, model_requested) AS model, stream, input_tokens, output_tokens, "
                   "cached_tokens, cache_creation_tokens, reasoning_tokens, total_tokens, tokens_estimated, "
                   "cost_nanousd, cost_nanousd / 1000000000.0 AS cost_usd, cost_note, latency_ms, ttft_ms, status, "
                   "CASE WHEN status >= 400 OR error_type IS NOT NULL THEN 1 ELSE 0 END AS is_error, error_type, "
                   "cancelled, key_id, project, source, customer, cache, cost_saved_nanousd")
_DAILY_COLUMNS = ("day AS day_ts, {time} AS day, model, NULLIF(model_requested, '') AS model_requested, "
                   "NULLIF(project, '') AS project, NULLIF(source, '') AS source, NULLIF(customer, '') AS customer, "
                   "NULLIF(key_id, '') AS key_id, NULLIF(provider, '') AS provider, status, error AS is_error, "
                   "requests, input_tokens, output_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens, "
                   "total_tokens, cost_nanousd, cost_nanousd / 1000000000.0 AS cost_usd, priced AS priced_requests, "
                   "latency_n, latency_sum, ttft_n, ttft_sum, cache_hits, cost_saved_nanousd")
_KEY = ("status", "error")


def _time(dialect: str, col: str) -> str:
    return f"datetime({col}, 'unixepoch')" if dialect == "sqlite" else f"(to_timestamp({col}) AT TIME ZONE 'UTC')"


def _measures() -> list[sa.Column]:
    return [sa.Column(m, sa.Float() if m in _FLOATS else sa.BigInteger(), nullable=m in _NULLABLE) for m in MEASURES]


def upgrade() -> None:
    op.create_table(
        "usage_facets",
        sa.Column("grain", sa.String(1), nullable=False),
        sa.Column("facet", sa.String(16), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error", sa.Integer(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("grain", "facet", "bucket", "value", *_KEY, name="pk_usage_facets"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.BigInteger(), nullable=False),
        *(sa.Column(d, sa.String(), nullable=False) for d in ROLLUP_DIMS),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error", sa.Integer(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("day", *ROLLUP_DIMS, *_KEY, name="pk_usage_daily"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_latency",
        sa.Column("grain", sa.String(1), nullable=False),
        sa.Column("facet", sa.String(16), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(1), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "facet", "bucket", "value", *_KEY, "metric", "bin",
                                name="pk_usage_latency"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "runtime_providers",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("api_key_sealed", sa.Text(), nullable=True),
        sa.Column("headers_sealed", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runtime_providers"),
    )
    markers = op.create_table(
        "store_markers",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_store_markers"),
    )
    op.bulk_insert(markers, [{"name": "providers", "version": 0}])
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.execute(f"CREATE VIEW ask_requests AS SELECT {_RECORD_COLUMNS.format(time=_time(dialect, 'ts'))} "
               "FROM usage_records")
    op.execute(f"CREATE VIEW ask_usage_daily AS SELECT {_DAILY_COLUMNS.format(time=_time(dialect, 'day'))} "
               "FROM usage_daily")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS ask_usage_daily")
    op.execute("DROP VIEW IF EXISTS ask_requests")
    op.drop_table("store_markers")
    op.drop_table("runtime_providers")
    op.drop_table("usage_latency")
    op.drop_table("usage_daily")
    op.drop_table("usage_facets")
