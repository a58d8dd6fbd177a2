"""The ledger schema: one `usage_records` row per proxied call (SQLAlchemy Core).

This module is the *current* shape of the table, used by the writer and the queries. The
migrations in `tollway/migrations/versions/` are the history that produces it; a change here
needs a new migration there.

Money is `cost_nanousd`, a BIGINT of 1e-9 USD (see `money.py`), so sums are exact on both
engines. Filter indexes lead with the filter column and end with `ts` so "project = X, newest
first" is one index range scan.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    PrimaryKeyConstraint,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

usage_records = Table(
    "usage_records",
    metadata,
    Column("trace_id", String(36), primary_key=True),
    Column("ts", Float, nullable=False),  # unix seconds, request start
    Column("route", String, nullable=False),
    Column("method", String, nullable=False),
    Column("path", String, nullable=False),
    Column("provider", String),
    Column("model_requested", String),
    Column("model_served", String),
    Column("stream", Boolean, nullable=False),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cached_tokens", Integer),
    Column("cache_creation_tokens", Integer),
    Column("reasoning_tokens", Integer),
    Column("total_tokens", Integer),
    Column("tokens_estimated", Boolean, nullable=False),
    Column("cost_nanousd", BigInteger),  # 1e-9 USD; NULL when the price is unknown
    Column("cost_note", String),
    Column("latency_ms", Float),
    Column("ttft_ms", Float),
    Column("status", Integer, nullable=False),
    Column("error_type", String),
    Column("cancelled", Boolean, nullable=False),
    Column("key_id", String),
    Column("project", String),
    Column("source", String),
    Column("customer", String),
    Column("team", String),  # the key's team (0006_keys)
    # Insertion order, for exporters (`GET /v1/records?after_seq=`): unlike `ts` (the call's
    # start) it never goes back, whatever a call's length or a spool replay's delay. Assigned
    # by the store as the row is written, in commit order: a sequence default and one
    # transaction-level advisory lock per batch on Postgres, MAX + 1 inside the writer's
    # serialised insert on SQLite (see ledger.py).
    Column("seq", BigInteger),
    Column("guard_findings", Text),  # JSON: sanitizer finding types and counts, never values
    Column("cache", String),  # response cache outcome (hit, semantic_hit, miss, refresh, skip)
    Column("cost_saved_nanousd", BigInteger),  # a cache hit: the cost of the cached answer
    # the attempt loop (0010_attempts): who served, how many provider calls, and what failed
    Column("deployment", String),
    Column("attempts", Integer),
    Column("failure", String),  # customer | mitigated (NULL: nothing failed)
    Column("attempt_errors", Text),  # JSON list of "deployment: status reason"
)

Index("ix_usage_records_ts", usage_records.c.ts, usage_records.c.trace_id)
Index("ix_usage_records_project", usage_records.c.project, usage_records.c.ts)
Index("ix_usage_records_source", usage_records.c.source, usage_records.c.ts)
Index("ix_usage_records_customer", usage_records.c.customer, usage_records.c.ts)
Index("ix_usage_records_model_requested", usage_records.c.model_requested, usage_records.c.ts)
Index("ix_usage_records_key_id", usage_records.c.key_id, usage_records.c.ts)
Index("ix_usage_records_team", usage_records.c.team, usage_records.c.ts)
Index("ix_usage_records_seq", usage_records.c.seq, unique=True)
Index("ix_usage_records_failure", usage_records.c.failure, usage_records.c.ts)
# the guard page reads only the calls with findings (few): a partial index keeps that off the rest
Index("ix_usage_records_guard", usage_records.c.ts, sqlite_where=usage_records.c.guard_findings.is_not(None),
      postgresql_where=usage_records.c.guard_findings.is_not(None))

# Responses kept for the Responses API on providers that have no state of their own
# (see storage/responses.py). `conversation` is the response's own items (input, then output;
# `input_count` of them input), `previous_id` the response it continues: the history is rebuilt
# by walking the links. Rows older than migration 0004 hold their whole conversation, no link.
responses = Table(
    "responses",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("provider", String),
    Column("project", String),
    Column("key_id", String),
    Column("response", Text, nullable=False),
    Column("conversation", Text, nullable=False),
    Column("previous_id", String(80)),
    Column("input_count", Integer),
    Column("depth", Integer, nullable=False, server_default="1"),  # turns up to and including this one
    Column("chain_bytes", BigInteger, nullable=False, server_default="0"),  # item bytes up to and including it
)

Index("ix_responses_created_at", responses.c.created_at)

# Responses an OpenAI-format provider keeps itself (Tollway passed the call on as it was): only
# whose they are, so that another key's GET, DELETE, input items or previous_response_id never
# reach the provider with Tollway's credentials (see storage/responses.py). Same lifetime as
# the responses Tollway stores.
upstream_responses = Table(
    "upstream_responses",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("key_id", String),
)

Index("ix_upstream_responses_created_at", upstream_responses.c.created_at)

# Billing events waiting for delivery to a webhook sink (see tollway/billing/). One row is a
# batch: the events of one sink from one ledger batch (at most the sink's batch_size), written
# in the same transaction as their usage records. `payload` is the events' JSON, comma-joined
# (the inside of the array a sender posts) and zlib-compressed, `event_ids` their ids
# ("<trace_id>:<sink>") comma-joined, `events` how many; `event_id` names the row (its first
# event's id; rows written before 0011 hold one event, its plain JSON and no event_ids).
# state: pending (due at next_attempt_at; a sender holding it pushed next_attempt_at forward
# as a lease under its `claim`, else outbox.NO_CLAIM), parked (failed max_attempts times; see
# /admin/billing/failed).
# A delivered row is deleted.
billing_outbox = Table(
    "billing_outbox",
    metadata,
    Column("event_id", String(120), primary_key=True),
    Column("sink", String(40), nullable=False),
    Column("state", String(10), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("claim", String(40)),
    Column("events", Integer, nullable=False, server_default="1"),
    Column("created_at", Float, nullable=False),
    Column("trace_id", String(36), nullable=False),
    Column("last_error", String),
    Column("event_ids", Text),
    # zlib-compressed; last: SQLite reads the columns before it without reading its pages
    Column("payload", LargeBinary, nullable=False),
)

# what a sender's claim reads, whole (rows are not visited until claimed)
Index("ix_billing_outbox_due", billing_outbox.c.sink, billing_outbox.c.state, billing_outbox.c.next_attempt_at,
      billing_outbox.c.events, billing_outbox.c.event_id)
Index("ix_billing_outbox_claim", billing_outbox.c.claim)

# Every change made through the admin API or CLI (storage/audit.py). Never holds a secret.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("actor", String, nullable=False),  # key id, "master", or "cli:<user>"
    Column("action", String, nullable=False),  # e.g. "key.create", "provider.delete"
    Column("target", String, nullable=False),  # e.g. "key:tw_ab12", "provider:ollama"
    Column("before", Text),  # JSON, scrubbed
    Column("after", Text),
)
Index("ix_audit_log_target", audit_log.c.target, audit_log.c.id)


# Aggregates of usage_records kept by the ledger writer in the same transaction as the rows
# (storage/rollup.py), read by /v1/stats, the portal and `tollway usage` (storage/stats.py). They
# outlive the raw records (retention). An attribute that was NULL on the record is "" here.
#
# usage_facets: per hour ("h"), UTC day ("d"), week from Monday ("w") and month ("m"), per facet ("total", or one
#   attribute: model, project, source, customer, key, provider, team) and its value, per status:
#   the sums. Small and fast: what unfiltered questions and single-attribute breakdowns read.
#   Pair facets ("project.model", "team.customer", ...: a project or team and one other
#   attribute; days and months only, no histograms) answer "project = X, by customer" the same way; their value
#   is `pair_value(a, b)`.
# usage_daily: per UTC day and every attribute at once: answers filtered questions.
# usage_latency: the latency ("l") and time-to-first-token ("t") histograms of usage_facets
#   (see histogram.py), one row per non-empty bin: per hour, day, week and month for "total", per
#   day, week and month for the attribute facets (their partial days come from the records; pair facets
#   have none: their percentiles come from the records).
ROLLUP_DIMS = ("model", "model_requested", "project", "source", "customer", "key_id", "provider", "team")
ROLLUP_SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens",
               "reasoning_tokens", "total_tokens", "cost_nanousd", "priced", "latency_n", "latency_sum",
               "ttft_n", "ttft_sum", "cache_hits", "cost_saved_nanousd")
ROLLUP_MINS = ("latency_min", "ttft_min")
ROLLUP_MAXES = ("latency_max", "ttft_max", "last_ts")
MEASURES = (*ROLLUP_SUMS, *ROLLUP_MINS, *ROLLUP_MAXES)
_FLOAT_MEASURES = frozenset({"latency_sum", "ttft_sum", "latency_min", "ttft_min", "latency_max", "ttft_max",
                             "last_ts"})
_NULLABLE_MEASURES = frozenset({"latency_min", "ttft_min", "latency_max", "ttft_max"})


def pair_value(a: str, b: str) -> str:
    """A pair facet's value: `a` (a project or team) and `b`, unambiguous whatever they hold
    ("6:searchgpt-4o"); rows of one `a` share the prefix `pair_prefix(a)`."""
    return f"{len(a)}:{a}{b}"


def pair_prefix(a: str) -> str:
    return f"{len(a)}:{a}"


def measure_columns() -> list[Column]:
    # sums are never NULL (a NULL on the record adds 0); min and max are NULL without a value
    return [Column(m, Float if m in _FLOAT_MEASURES else BigInteger, nullable=m in _NULLABLE_MEASURES)
            for m in MEASURES]


usage_facets = Table(
    "usage_facets",
    metadata,
    Column("grain", String(1), nullable=False),
    Column("facet", String(16), nullable=False),
    Column("bucket", BigInteger, nullable=False),  # unix seconds: start of the hour or UTC day
    Column("value", String, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error", Integer, nullable=False),  # 1: status >= 400 or an error_type
    *measure_columns(),
    PrimaryKeyConstraint("grain", "facet", "bucket", "value", "status", "error"),
    sqlite_with_rowid=False,  # SQLite: clustered on the key, so a facet's time range is one contiguous read
)

usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", BigInteger, nullable=False),
    *(Column(d, String, nullable=False) for d in ROLLUP_DIMS),
    Column("status", Integer, nullable=False),
    Column("error", Integer, nullable=False),
    *measure_columns(),
    PrimaryKeyConstraint("day", *ROLLUP_DIMS, "status", "error"),
    sqlite_with_rowid=False,
)

usage_latency = Table(
    "usage_latency",
    metadata,
    Column("grain", String(1), nullable=False),
    Column("facet", String(16), nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("value", String, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error", Integer, nullable=False),
    Column("metric", String(1), nullable=False),  # "l": latency, "t": time to first token
    Column("bin", Integer, nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("grain", "facet", "bucket", "value", "status", "error", "metric", "bin"),
    sqlite_with_rowid=False,
)

# Providers added at run time through POST /v1/providers (providers/runtime.py). `settings` is
# the ProviderSettings JSON without credentials; the key and headers are sealed by SecretBox.
runtime_providers = Table(
    "runtime_providers",
    metadata,
    Column("id", String, primary_key=True),
    Column("kind", String, nullable=False),
    Column("settings", Text, nullable=False),
    Column("api_key_sealed", Text),
    Column("headers_sealed", Text),
    Column("created_at", Float, nullable=False),
    Column("created_by", String, nullable=False),
)

# Change markers: a version number per shared setting, bumped with each change, which every
# instance polls to learn that it must reload (e.g. "providers").
store_markers = Table(
    "store_markers",
    metadata,
    Column("name", String, primary_key=True),
    Column("version", BigInteger, nullable=False),
)

# Keys, teams / projects / customers and budgets managed through the admin API or the CLI
# (policy/store.py). Keys are kept as SHA-256 hashes only; provider credentials sealed
# (secrets.SecretBox). `policy_version` is the change marker every instance polls.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),  # the public id, "k..." (the key is tw-<id>-<secret>)
    Column("name", String, nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),  # hex SHA-256 of the whole key
    Column("prev_hash", String(64)),  # the secret before the last rotation ...
    Column("prev_valid_until", Float),  # ... valid until then (the grace period)
    Column("roles", Text, nullable=False),  # JSON list
    Column("team", String),
    Column("project", String),
    Column("customer", String),
    Column("rpm", Integer),
    Column("tpm", BigInteger),
    Column("max_concurrency", Integer),
    Column("queue_timeout_ms", Integer, nullable=False),
    Column("models", Text),  # JSON list of globs; NULL: every model
    Column("max_tokens", Integer),
    Column("max_body_bytes", BigInteger),
    Column("credentials", Text),  # JSON {provider kind: sealed value}
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

key_groups = Table(
    "key_groups",
    metadata,
    Column("kind", String(16), primary_key=True),  # team | project | customer
    Column("id", String(200), primary_key=True),
    Column("name", String),
    Column("rpm", Integer),
    Column("tpm", BigInteger),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("scope", String(16), nullable=False),  # key | team | project | customer
    Column("target", String(200), nullable=False),
    Column("limit_nanousd", BigInteger, nullable=False),
    Column("window", String(16), nullable=False),  # day | week | month | total
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_budgets_scope_target", budgets.c.scope, budgets.c.target)

policy_version = Table(
    "policy_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Request and response bodies of calls made with [store] log_bodies (storage/bodies.py),
# already redacted; deleted after [store] body_retention_days.
record_bodies = Table(
    "record_bodies",
    metadata,
    Column("trace_id", String(36), primary_key=True),
    Column("ts", Float, nullable=False),
    Column("request", Text, nullable=False),
    Column("response", Text, nullable=False),
    Column("request_truncated", Boolean, nullable=False),
    Column("response_truncated", Boolean, nullable=False),
)
Index("ix_record_bodies_ts", record_bodies.c.ts)

# Quality feedback on a call (POST /v1/signals): a score 0..1 (thumbs up = 1, down = 0) and a
# label. Summarised per model by joining the call's record (routing.quality).
signals = Table(
    "signals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(36), nullable=False),
    Column("ts", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("label", String),
    Column("key_id", String),
)

Index("ix_signals_trace_id", signals.c.trace_id)
Index("ix_signals_ts", signals.c.ts)
