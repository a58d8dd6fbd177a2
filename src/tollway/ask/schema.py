"""The views Ask may query (created by migration 0007_portal) and the prompt that documents them."""

from __future__ import annotations

VIEWS: dict[str, str] = {
    "ask_requests": """One row per proxied request (raw records; with [store] retention_days only the recent ones).
  trace_id text, ts real (unix seconds), time (UTC timestamp), route text ('openai.chat', 'anthropic.messages', ...),
  provider text, model_requested text, model_served text, model text (served, else requested), stream boolean,
  input_tokens int, output_tokens int, cached_tokens int, cache_creation_tokens int, reasoning_tokens int,
  total_tokens int, tokens_estimated boolean, cost_nanousd bigint (exact, 1e-9 USD; NULL when unpriced),
  cost_usd real (NULL when unpriced), cost_note text, latency_ms real, ttft_ms real (time to first token),
  status int (HTTP), is_error int (1 when status >= 400 or the call broke), error_type text, cancelled boolean,
  key_id text, project text, source text, customer text, cache text (response cache: hit, semantic_hit, miss,
  refresh, skip; NULL without a cache), cost_saved_nanousd bigint (a cache hit: what the cached answer cost)""",
    "ask_usage_daily": """Usage summed per UTC day and attributes (kept forever, even past retention).
  day_ts bigint (unix seconds, start of the day), day (UTC timestamp), model text, model_requested text,
  project text, source text, customer text, key_id text, provider text, status int, is_error int,
  requests bigint, input_tokens bigint, output_tokens bigint, cached_tokens bigint, cache_creation_tokens bigint,
  reasoning_tokens bigint, total_tokens bigint, cost_nanousd bigint, cost_usd real, priced_requests bigint
  (requests with a known cost), latency_n bigint, latency_sum real (average latency = latency_sum / latency_n),
  ttft_n bigint, ttft_sum real, cache_hits bigint (answered from the response cache), cost_saved_nanousd bigint""",
}

_DIALECT_NOTES = {
    "sqlite": "SQLite: times with datetime(ts, 'unixepoch') / strftime('%Y-%m-%d', time); "
              "now is datetime('now'); 7 days ago is datetime('now', '-7 days').",
    "postgres": "PostgreSQL: times with date_trunc('day', time); now is now() AT TIME ZONE 'UTC'; "
                "7 days ago is (now() AT TIME ZONE 'UTC') - interval '7 days'.",
}


def system_prompt(dialect: str, max_rows: int) -> str:
    views = "\n\n".join(f"VIEW {name}:\n  {doc}" for name, doc in VIEWS.items())
    return (
        "You write one read-only SQL query that answers the user's question about LLM usage recorded by "
        "Tollway, an LLM proxy. Use only these views:\n\n"
        f"{views}\n\n{_DIALECT_NOTES[dialect]}\n"
        "Rules: exactly one SELECT statement (WITH is fine); no other tables; name result columns clearly; "
        f"order the rows usefully; at most {max_rows} rows. For money prefer SUM(cost_nanousd) / 1e9 AS cost_usd. "
        "Reply with the SQL only, in one ```sql block, no explanation."
    )
