"""Rollups for long ranges and teams: week ("w") and month ("m") rows in usage_facets / usage_latency, `team`
as a rollup attribute (a facet, and a column of usage_daily), pair facets (a project or team and
one other attribute, per day and month), and a partial index on the records with guard findings.

Existing rollups are extended from what they hold: week and month rows are the sums of their day rows;
pairs come from usage_daily (sums exact; pairs keep no histograms: their percentiles come from
the records); usage rolled up before this version has no team (it counts as "no team"). A store whose
records were never rolled up (upgraded from before 0007 in the same run) is rolled up whole.

Revision ID: 0012_rollups
Revises: 0011_billing_batches
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_rollups"
down_revision = "0011_billing_batches"
branch_labels = None
depends_on = None

_OLD_DIMS = ("model", "model_requested", "project", "source", "customer", "key_id", "provider")
_SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens",
         "total_tokens", "cost_nanousd", "priced", "latency_n", "latency_sum", "ttft_n", "ttft_sum", "cache_hits",
         "cost_saved_nanousd")
_MINS = ("latency_min", "ttft_min")
_MAXES = ("latency_max", "ttft_max", "last_ts")
_MEASURES = (*_SUMS, *_MINS, *_MAXES)
_FLOATS = {"latency_sum", "ttft_sum", "latency_min", "ttft_min", "latency_max", "ttft_max", "last_ts"}
_NULLABLE = {"latency_min", "ttft_min", "latency_max", "ttft_max"}
# facet name of each usage_daily column a pair facet can use
_FACET = {"model": "model", "project": "project", "source": "source", "customer": "customer", "key_id": "key",
          "provider": "provider", "team": "team"}
_DAILY_VIEW = ("day AS day_ts, {time} AS day, model, NULLIF(model_requested, '') AS model_requested, "
               "NULLIF(project, '') AS project, NULLIF(source, '') AS source, NULLIF(customer, '') AS customer, "
               "NULLIF(key_id, '') AS key_id, NULLIF(provider, '') AS provider, status, error AS is_error, "
               "requests, input_tokens, output_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens, "
               "total_tokens, cost_nanousd, cost_nanousd / 1000000000.0 AS cost_usd, priced AS priced_requests, "
               "latency_n, latency_sum, ttft_n, ttft_sum, cache_hits, cost_saved_nanousd")


def _time(dialect: str, col: str) -> str:
    return f"datetime({col}, 'unixepoch')" if dialect == "sqlite" else f"(to_timestamp({col}) AT TIME ZONE 'UTC')"


def _month(dialect: str, col: str) -> str:
    if dialect == "sqlite":
        return f"CAST(strftime('%s', {col}, 'unixepoch', 'start of month') AS INTEGER)"
    return f"CAST(EXTRACT(EPOCH FROM date_trunc('month', to_timestamp({col}) AT TIME ZONE 'UTC')) AS BIGINT)"


def _pair(dialect: str, a: str, b: str) -> str:
    """schema.pair_value in SQL: '<len(a)>:<a><b>'."""
    return f"CAST(length({a}) AS VARCHAR) || ':' || {a} || {b}" if dialect == "postgresql" \
        else f"CAST(length({a}) AS TEXT) || ':' || {a} || {b}"


_AGG = ", ".join([*(f"SUM({m})" for m in _SUMS), *(f"MIN({m})" for m in _MINS), *(f"MAX({m})" for m in _MAXES)])
_FACET_COLS = "grain, facet, bucket, value, status, error, " + ", ".join(_MEASURES)
_LAT_COLS = "grain, facet, bucket, value, status, error, metric, bin, n"


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.execute("DROP VIEW IF EXISTS ask_usage_daily")
    _daily_with_team(dialect)
    op.execute(f"CREATE VIEW ask_usage_daily AS SELECT {_DAILY_VIEW.format(time=_time(dialect, 'day'))} "
               "FROM usage_daily")
    op.create_index("ix_usage_records_guard", "usage_records", ["ts"],
                    sqlite_where=sa.text("guard_findings IS NOT NULL"),
                    postgresql_where=sa.text("guard_findings IS NOT NULL"))
    rolled = bind.execute(sa.text("SELECT 1 FROM usage_facets LIMIT 1")).first() is not None
    if not rolled:
        if bind.execute(sa.text("SELECT 1 FROM usage_records LIMIT 1")).first() is not None:
            _roll_up_records(bind)
        return
    # team: everything rolled up so far had none (the "total" rows, as the team facet's "")
    op.execute(f"INSERT INTO usage_facets ({_FACET_COLS}) SELECT grain, 'team', bucket, '', status, error, "
               f"{', '.join(_MEASURES)} FROM usage_facets WHERE facet = 'total'")
    op.execute(f"INSERT INTO usage_latency ({_LAT_COLS}) SELECT grain, 'team', bucket, '', status, error, metric, "
               "bin, n FROM usage_latency WHERE facet = 'total' AND grain = 'd'")
    # pair facets per day, from the daily table
    for scope in ("project", "team"):
        for other, fname in _FACET.items():
            if other == scope:
                continue
            op.execute(f"INSERT INTO usage_facets ({_FACET_COLS}) SELECT 'd', '{_FACET[scope]}.{fname}', day, "
                       f"{_pair(dialect, scope, other)}, status, error, {_AGG} FROM usage_daily "
                       f"GROUP BY day, {scope}, {other}, status, error")
    # weeks (from Monday; not for pairs) and months, from the days
    week = "(bucket - ((bucket / 86400 + 3) % 7) * 86400)"
    op.execute(f"INSERT INTO usage_facets ({_FACET_COLS}) SELECT 'w', facet, {week}, value, status, error, {_AGG} "
               f"FROM usage_facets WHERE grain = 'd' AND facet NOT LIKE '%.%' "
               f"GROUP BY facet, {week}, value, status, error")
    op.execute(f"INSERT INTO usage_latency ({_LAT_COLS}) SELECT 'w', facet, {week}, value, status, error, metric, "
               f"bin, SUM(n) FROM usage_latency WHERE grain = 'd' "
               f"GROUP BY facet, {week}, value, status, error, metric, bin")
    month = _month(dialect, "bucket")
    op.execute(f"INSERT INTO usage_facets ({_FACET_COLS}) SELECT 'm', facet, {month}, value, status, error, {_AGG} "
               f"FROM usage_facets WHERE grain = 'd' GROUP BY facet, {month}, value, status, error")
    op.execute(f"INSERT INTO usage_latency ({_LAT_COLS}) SELECT 'm', facet, {month}, value, status, error, metric, "
               f"bin, SUM(n) FROM usage_latency WHERE grain = 'd' "
               f"GROUP BY facet, {month}, value, status, error, metric, bin")


def _measures() -> list[sa.Column]:
    return [sa.Column(m, sa.Float() if m in _FLOATS else sa.BigInteger(), nullable=m in _NULLABLE)
            for m in _MEASURES]


def _daily_with_team(dialect: str) -> None:
    dims = (*_OLD_DIMS, "team")
    if dialect == "postgresql":
        op.execute("ALTER TABLE usage_daily ADD COLUMN team VARCHAR NOT NULL DEFAULT ''")
        op.execute("ALTER TABLE usage_daily ALTER COLUMN team DROP DEFAULT")
        op.execute("ALTER TABLE usage_daily DROP CONSTRAINT pk_usage_daily")
        op.execute(f"ALTER TABLE usage_daily ADD CONSTRAINT pk_usage_daily PRIMARY KEY (day, {', '.join(dims)}, "
                   "status, error)")
        return
    # SQLite cannot change a primary key: a new table (clustered on the key, WITHOUT ROWID) takes the rows
    op.create_table(
        "usage_daily_new",
        sa.Column("day", sa.BigInteger(), nullable=False),
        *(sa.Column(d, sa.String(), nullable=False) for d in dims),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error", sa.Integer(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("day", *dims, "status", "error", name="pk_usage_daily"),
        sqlite_with_rowid=False,
    )
    cols = ", ".join(("day", *_OLD_DIMS, "status", "error", *_MEASURES))
    op.execute(f"INSERT INTO usage_daily_new ({cols}, team) SELECT {cols}, '' FROM usage_daily")
    op.drop_table("usage_daily")
    op.rename_table("usage_daily_new", "usage_daily")


def _roll_up_records(bind: sa.Connection) -> None:
    """Roll up the records already stored, a chunk at a time (keyset order: ts, trace_id), with
    the current rollup code (these tables are in the current shape now)."""
    from tollway.storage.rollup import COLUMNS, aggregate, upsert_statement
    from tollway.storage.schema import usage_daily, usage_facets, usage_latency

    tables = (("facets", usage_facets), ("daily", usage_daily), ("latency", usage_latency))
    stmts = {name: upsert_statement(table, bind.dialect) for name, table in tables}
    for rows in _record_chunks(bind):
        batch = aggregate(rows)
        for name, table in tables:
            got = getattr(batch, name)
            if got:
                bind.execute(stmts[name], [dict(zip(COLUMNS[table.name], r, strict=True)) for r in got])


def _record_chunks(bind: sa.Connection):  # type: ignore[no-untyped-def]
    """The stored records, 20,000 at a time (keyset order: ts, trace_id)."""
    from tollway.storage.schema import usage_records as t

    # the columns this revision's table has (later migrations add more to schema.py's)
    present = {c["name"] for c in sa.inspect(bind).get_columns("usage_records")}
    columns = [c for c in t.columns if c.name in present]
    cols = [c.name for c in columns]
    after: tuple[float, str] | None = None
    while True:
        q = sa.select(*columns).order_by(t.c.ts, t.c.trace_id).limit(20_000)
        if after is not None:
            q = q.where(sa.or_(t.c.ts > after[0], sa.and_(t.c.ts == after[0], t.c.trace_id > after[1])))
        rows = [dict(zip(cols, r, strict=True)) for r in bind.execute(q)]
        if not rows:
            return
        yield rows
        after = (rows[-1]["ts"], rows[-1]["trace_id"])


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.drop_index("ix_usage_records_guard", "usage_records")
    op.execute("DELETE FROM usage_latency WHERE grain IN ('w', 'm') OR facet = 'team' OR facet LIKE '%.%'")
    op.execute("DELETE FROM usage_facets WHERE grain IN ('w', 'm') OR facet = 'team' OR facet LIKE '%.%'")
    op.execute("DROP VIEW IF EXISTS ask_usage_daily")
    op.create_table(
        "usage_daily_old",
        sa.Column("day", sa.BigInteger(), nullable=False),
        *(sa.Column(d, sa.String(), nullable=False) for d in _OLD_DIMS),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error", sa.Integer(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("day", *_OLD_DIMS, "status", "error", name="pk_usage_daily_old"),
        sqlite_with_rowid=False,
    )
    keys = ", ".join(("day", *_OLD_DIMS, "status", "error"))
    op.execute(f"INSERT INTO usage_daily_old ({keys}, {', '.join(_MEASURES)}) SELECT {keys}, {_AGG} "
               f"FROM usage_daily GROUP BY {keys}")
    op.drop_table("usage_daily")
    op.rename_table("usage_daily_old", "usage_daily")
    if dialect == "postgresql":
        op.execute("ALTER TABLE usage_daily RENAME CONSTRAINT pk_usage_daily_old TO pk_usage_daily")
    op.execute(f"CREATE VIEW ask_usage_daily AS SELECT {_DAILY_VIEW.format(time=_time(dialect, 'day'))} "
               "FROM usage_daily")
