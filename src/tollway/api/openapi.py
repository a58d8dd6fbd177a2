"""The OpenAPI 3.1 document of Tollway's own routes, served at GET /openapi.json.

Request and response bodies of proxied routes are the providers' own; this document names
them, the headers Tollway reads and adds, and the error bodies Tollway itself produces.
"""

from __future__ import annotations

from typing import Any

from tollway import __version__
from tollway.api.openapi_routing import routing_paths
from tollway.api.openapi_admin import OPERATOR_SECURITY, admin_paths, admin_schemas
from tollway.api.passthrough import PASSTHROUGH_METHODS
from tollway.slugs import SLUG_RULE

_REF = "#/components/schemas/"


def _hdr(name: str, desc: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": desc, "schema": {"type": "string"}}


_ATTRIBUTION = [
    _hdr("x-tollway-project", "Project to attribute the call to (alias: x-project). A /projects/{slug}/ path wins. "
                              f"A slug is {SLUG_RULE}; any other value is a 400."),
    _hdr("x-tollway-source", "Source (tool, service) to attribute the call to (alias: x-source)."),
    _hdr("x-tollway-customer", "External customer to bill for this call."),
    _hdr("x-tollway-cache", "Response cache, where [cache] turns it on for the call (chat-like endpoints): "
                            "use (default), skip (neither read nor store) or refresh (do not read; store the new "
                            "answer). Anything else is a 400."),
    _hdr("x-tollway-trace", "true: a stream starts with one routing trace event (data: {\"type\": \"trace\", "
                            "model, provider, policy, scores, cost_estimate}) before the provider's events."),
    _hdr("Cache-Control", "no-store = skip, no-cache = refresh, max-age=N: accept only a cached answer at most N "
                          "seconds old (x-tollway-cache wins when both are sent)."),
    _hdr("x-tollway-profile", "Routing profile ([[routing.profiles]] name) for this call; an unknown one is a 400."),
    _hdr("x-tollway-session", "Session id: calls of one session stick to the deployment that served the previous "
                              "one while it is healthy (else the body's prompt_cache_key, else user)."),
]
_TRACE = {"x-tollway-trace-id": {"description": "UUIDv7 of this call; the key of its usage record.",
                                 "schema": {"type": "string", "format": "uuid"}},
          "x-tollway-route": {"description": "Model calls: the deployment (provider:model) that served, or was "
                                             "tried last.", "schema": {"type": "string"}},
          "x-tollway-attempts": {"description": "Model calls: provider calls made (retries and fallbacks included).",
                                 "schema": {"type": "string"}},
          "x-tollway-overhead-ms": {"description": "Milliseconds spent in Tollway itself up to the response start "
                                                   "(time since arrival minus time waiting on the provider).",
                                    "schema": {"type": "string"}}}
_COST = {"x-tollway-cost-usd": {"description": "Cost of this call in USD (non-streaming, when the price is known).",
                                "schema": {"type": "string"}}}
_CACHE = {
    "x-tollway-cache": {"description": "Response cache outcome, when the cache is on for the call: hit, miss, "
                                       "refresh or skip.", "schema": {"type": "string"}},
    "age": {"description": "A cache hit: seconds since the answer was stored.", "schema": {"type": "string"}},
    "x-tollway-cache-similarity": {"description": "A semantic cache hit: cosine similarity of the questions.",
                                   "schema": {"type": "string"}},
    "x-tollway-cache-reason": {"description": "A skip: why (request, temperature, n, responses_store, ...).",
                               "schema": {"type": "string"}},
    "x-tollway-cost-saved-usd": {"description": "A cache hit: what the cached answer cost when it was made.",
                                 "schema": {"type": "string"}},
}
_DROPPED = {"x-tollway-dropped-params": {
    "description": "Request parameters the provider cannot honour, dropped in translation (comma-separated; "
                   "each name at most 64 characters, the value at most 1 KiB, ending in '+N more' past that). "
                   "With translation.strict = true such a request is a 400 instead.",
    "schema": {"type": "string"}}}
_LIMITS = {name: {"description": desc, "schema": {"type": "string"}} for name, desc in (
    ("x-ratelimit-limit-requests", "The tightest requests-per-minute limit that applies (key, team, project, "
                                   "customer)."),
    ("x-ratelimit-remaining-requests", "Requests left under it now."),
    ("x-ratelimit-reset-requests", "Until it is fully replenished, e.g. 1.5s, 6m0s."),
    ("x-ratelimit-limit-tokens", "The tightest tokens-per-minute limit."),
    ("x-ratelimit-remaining-tokens", "Tokens left under it now."),
    ("x-ratelimit-reset-tokens", "Until it is fully replenished."),
    ("x-tollway-budget", "The budget with the least room, as scope:target/window."),
    ("x-tollway-budget-limit", "Its limit, USD (decimal string)."),
    ("x-tollway-budget-spent", "Spent in its current window before this call, USD."),
    ("x-tollway-budget-reset", "When its window ends (RFC 3339 UTC), or never."),
)}
_RETRY = {"retry-after": {"description": "Seconds to wait.", "schema": {"type": "string"}},
          "retry-after-ms": {"description": "Milliseconds to wait (rate limits).", "schema": {"type": "string"}}}
_ESTIMATED = {"x-tollway-tokens-estimated": {
    "description": "count_tokens only: 'true' when the count is a local estimate (no exact tokenizer for the model).",
    "schema": {"type": "string"}}}


def _errors(fmt: str) -> dict[str, Any]:
    schema = {"$ref": _REF + {"anthropic": "AnthropicError", "gemini": "GeminiError"}.get(fmt, "OpenAIError")}
    out = {}
    for code, desc in (("400", "Invalid JSON, no model, or a project slug that breaks the rule."), ("401", "Missing or invalid Tollway key."),
                       ("404", "Unknown model (the message names the routable models) or route."),
                       ("403", "Management key, a model outside the key's allow-list (the message names "
                               "the allowed models), or a project or customer other than the one the key is "
                               "bound to (code project_not_allowed / customer_not_allowed)."),
                       ("413", "Body over server.max_body_bytes or the key's max_body_bytes."),
                       ("429", "A rate, token, concurrency or budget limit (error type budget_exceeded, code "
                               "<scope>_budget_exceeded, naming the budget); the call never reached a provider."),
                       ("502", "Provider unreachable, or its answer over server.max_response_bytes."),
                       ("503", "Tollway is shutting down and cut the call (server.shutdown_grace_secs), or limits "
                               "cannot be checked (Redis unreachable, [redis] on_error = fail_closed)."),
                       ("504", "Provider timed out.")):
        headers = {**_TRACE, **_LIMITS, **_RETRY} if code == "429" else _TRACE
        out[code] = {"description": desc + " Provider errors are relayed unchanged with the provider's status.",
                     "headers": headers, "content": {"application/json": {"schema": schema}}}
    return out


def _proxy_op(summary: str, fmt: str, provider_schema: str, byok: bool = False) -> dict[str, Any]:
    params = list(_ATTRIBUTION)
    if byok:
        params.insert(0, {"name": "X-Tollway-Key", "in": "header", "required": False, "schema": {"type": "string"},
                          "description": "Tollway key (required when keys are configured). Authorization / "
                                         "x-api-key carry YOUR provider key, forwarded untouched and never stored."})
    return {
        "summary": summary,
        "parameters": params,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "description": f"The provider's own request body ({provider_schema}).",
            "required": ["model"], "properties": {"model": {"type": "string"}, "stream": {"type": "boolean"}}}}}},
        "responses": {
            "200": {"description": f"The provider's response ({provider_schema}), unchanged; "
                                   "text/event-stream when stream is true.",
                    "headers": {**_TRACE, **_COST, **_CACHE, **_DROPPED, **_ESTIMATED, **_LIMITS},
                    "content": {"application/json": {"schema": {"type": "object"}},
                                "text/event-stream": {"schema": {"type": "string"}}}},
            **_errors(fmt)},
        "security": _security(fmt, byok),
    }


_QUERY_DOCS = {
    "project": "Only this project (exact).", "source": "Only this source (exact).",
    "customer": "Only this customer (exact).", "model": "Requested or served model (exact).",
    "status": "An HTTP status code (up to 3 digits), 'ok' or 'error'.",
    "since": "Calls that started at or after this time: unix seconds, ISO 8601, 'now', or a time ago (30m, 24h, "
             "7d, 2w). A call is recorded when it ends, so a poller should use after_seq instead.",
    "until": "Calls that started before this time (exclusive), in the forms of since.",
    "provider": "Only calls served by this provider id.",
    "key_id": "Only calls made with this key id.",
    "team": "Only calls made with keys of this team.",
    "limit": "Records per page, 1 to 1000 (default 50; more is capped).",
    "cursor": "next_cursor of the previous page (newest-first order).",
    "kind": "customer (the client got an error) or mitigated (a retry or fallback served it); default both.",
    "deployment": "Only calls served by (or last tried on) this deployment, provider:model (exact).",
    "after_seq": "Insertion order for exporters: records stored after the one with this seq, oldest first. "
                 "Poll with the last next_after_seq to see every record exactly once, long calls and replayed "
                 "records included. Not with cursor.",
}


def _security(fmt: str, byok: bool = False) -> list[dict[str, list[str]]]:
    """Where Tollway's key may travel: X-Tollway-Key is accepted everywhere; on /proxy/ routes only there."""
    if byok:
        return [{"tollwayKey": []}]
    if fmt == "anthropic":
        return [{"apiKey": []}, {"bearer": []}, {"tollwayKey": []}]
    return [{"bearer": []}, {"tollwayKey": []}]


def _passthrough_ops(summary: str, fmt: str, byok: bool) -> dict[str, Any]:
    """Every method of a pass-through route (POST on /proxy/ is documented by _proxy_op)."""
    params = list(_ATTRIBUTION)
    if byok:
        params.insert(0, {"name": "X-Tollway-Key", "in": "header", "required": False, "schema": {"type": "string"},
                          "description": "Tollway key (required when keys are configured)."})
    return {m.lower(): {"summary": f"{summary} ({m})", "parameters": params, "security": _security(fmt, byok),
                        "responses": {"default": {"description": "The provider's response, unchanged",
                                                  "headers": _TRACE},
                                      **{k: v for k, v in _errors(fmt).items() if k in ("400", "401", "404")}}}
            for m in PASSTHROUGH_METHODS if not (byok and m == "POST")}


def _list_op(summary: str, params: list[str], schema: str) -> dict[str, Any]:
    return {"summary": summary, "security": _ADMIN_SECURITY,
            "parameters": [{"name": p, "in": "query", "required": False, "description": _QUERY_DOCS[p],
                            "schema": {"type": "string"}} for p in params],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": _REF + schema}}}},
                          "400": {"description": "Bad filter", "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}},
                          "401": {"description": "No master key", "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}},
                          "403": {"description": "Not the master key", "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}}}}


_ADMIN_SECURITY = OPERATOR_SECURITY
# what only key holders may read (the model lists, this document): a key wherever any SDK puts its own
ANY_KEY_SECURITY = [*_ADMIN_SECURITY, {"googApiKey": []}, {"googKeyQuery": []}, {"azureApiKey": []}]

_GROUP = {"type": "object", "properties": {
    "requests": {"type": "integer"}, "errors": {"type": "integer", "description": "status >= 400 or a broken call"},
    "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"}, "cached_tokens": {"type": "integer"},
    "cache_creation_tokens": {"type": "integer"}, "reasoning_tokens": {"type": "integer"},
    "total_tokens": {"type": "integer"},
    "cost_usd": {"type": "string", "description": "Exact decimal string: the sum of the known costs"},
    "unpriced": {"type": "integer", "description": "Calls without a known price (not counted in cost_usd)"},
    "cache_hits": {"type": "integer", "description": "Answered from the response cache (at cost 0)"},
    "cost_saved_usd": {"type": "string", "description": "Decimal string: what the cached answers cost when made"},
    **{f"{m}_p{p}": {"type": ["number", "null"], "description": "ms, from log-scale histograms (within ~12 %)"}
       for m in ("latency_ms", "ttft_ms") for p in (50, 95)},
    "latency_ms_avg": {"type": ["number", "null"]},
    "last_seen": {"type": ["string", "null"], "description": "ISO time of the latest call"}}}

_TIME_PARAM = ("Unix seconds, ISO 8601, 'now', or a time ago: 30m, 24h, 7d, 2w")
_STATS_PARAMS = [
    *({"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in
      ("project", "source", "customer", "model", "key_id", "provider", "team")),
    {"name": "status", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "An HTTP status code, 'ok' or 'error'"},
    {"name": "since", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Inclusive. " + _TIME_PARAM},
    {"name": "until", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Exclusive. " + _TIME_PARAM},
    {"name": "group_by", "in": "query", "required": False, "schema": {"enum": [
        "model", "project", "source", "customer", "key", "provider", "team", "hour", "day", "week", "month",
        "status"]},
     "description": "One breakdown in `groups` (by cost, most first; time groups in time order, UTC). Without "
                    "it: by_model, by_project and by_source."},
    {"name": "percentiles", "in": "query", "required": False, "schema": {"type": "boolean", "default": True},
     "description": "false: leave out the latency and TTFT percentiles (cheaper, e.g. for a list of top spenders)"},
]

_PROVIDER = {"type": "object", "properties": {
    "id": {"type": "string"}, "kind": {"type": "string"}, "base_url": {"type": "string"},
    "models": {"type": "array", "items": {"type": "string"}}, "has_key": {"type": "boolean"},
    "headers": {"type": "array", "items": {"type": "string"}, "description": "header names only"},
    "source": {"enum": ["config", "runtime"]}, "read_only": {"type": "boolean"},
    "created_at": {"type": "number"}, "created_by": {"type": "string"}}}


def _json(schema: dict[str, Any], desc: str = "OK") -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": schema}}}


_ERR = {"$ref": _REF + "OpenAIError"}

_RECORD = {"type": "object", "properties": {
    **{k: {"type": t} for k, t in (
        ("trace_id", "string"), ("time", "string"), ("ts", "number"), ("route", "string"), ("method", "string"),
        ("path", "string"), ("provider", ["string", "null"]), ("model_requested", ["string", "null"]),
        ("model_served", ["string", "null"]), ("stream", "boolean"), ("input_tokens", ["integer", "null"]),
        ("output_tokens", ["integer", "null"]), ("cached_tokens", ["integer", "null"]),
        ("cache_creation_tokens", ["integer", "null"]), ("reasoning_tokens", ["integer", "null"]),
        ("total_tokens", ["integer", "null"]), ("tokens_estimated", "boolean"), ("cost_usd", ["string", "null"]),
        ("cost_note", ["string", "null"]), ("latency_ms", ["number", "null"]), ("ttft_ms", ["number", "null"]),
        ("status", "integer"), ("error_type", ["string", "null"]), ("cancelled", "boolean"),
        ("key_id", ["string", "null"]), ("project", ["string", "null"]), ("source", ["string", "null"]),
        ("customer", ["string", "null"]), ("team", ["string", "null"]), ("cache", ["string", "null"]), ("cost_saved_usd", ["string", "null"]))},
    "seq": {"type": ["integer", "null"], "description": "Insertion order in the store (see after_seq)."},
    "deployment": {"type": ["string", "null"], "description": "provider:model that served (or was tried last)."},
    "attempts": {"type": ["integer", "null"], "description": "Provider calls made (retries and fallbacks included)."},
    "failure": {"type": ["string", "null"], "enum": ["customer", "mitigated", None],
                "description": "customer: the client got a provider failure; mitigated: a retry or fallback "
                               "served it after a failed attempt."},
    "attempt_errors": {"type": "array", "items": {"type": "string"},
                       "description": "Each failed attempt: 'deployment: status reason'."},
    "guard_findings": {"type": ["object", "null"], "description":
                       "Sanitizer findings by type and count (never values): request, request_action "
                       "(redacted | forwarded | refused), response, response_action (logged | redacted | blocked)"}}}
_RECORD_DETAIL = {"allOf": [{"$ref": "#/components/schemas/Record"}, {"type": "object", "properties": {
    "bodies": {"type": "object", "description": "Present for calls made with [store] log_bodies: the request and "
               "response bodies, redacted (credentials always, PII when the call redacts PII)",
               "properties": {"request": {"type": "string"}, "response": {"type": "string"},
                              "request_truncated": {"type": "boolean"},
                              "response_truncated": {"type": "boolean"}}}}}]}


def _ints(*names: str) -> dict[str, Any]:
    return {n: {"type": "integer"} for n in names}


_HEALTH = {"type": "object", "required": ["status", "version", "uptime_secs", "providers"], "properties": {
    "status": {"enum": ["ok", "degraded"]},
    "problems": {"type": "array", "items": {"type": "string"}, "description": "Why degraded; empty when ok."},
    "version": {"type": "string"}, "uptime_secs": {"type": "integer"},
    "providers": {"type": "array", "items": {"type": "string"}},
    "ledger": {"type": "object", "description": "Counts are since start.", "properties": {
        "pending": {"type": "integer", "description": "Records queued or being written."},
        "store_ok": {"type": "boolean"},
        "last_write": {"type": ["string", "null"], "description": "Time of the last successful store write."},
        "last_write_age_secs": {"type": ["number", "null"]},
        "write_in_flight_secs": {"type": "number", "description": "How long the write in progress has run."},
        "spool_bytes": {"type": "integer", "description": "Waiting in data_dir/spool/ for the store."},
        **_ints("written", "spooled", "replayed", "rejected", "lost", "dead_letter_bytes"),
        "batch_fallbacks": {"type": "integer",
                            "description": "Batches the store refused whole, retried row by row."},
        "unreplayable": {"type": "integer",
                         "description": "Spool lines that could not be read back (e.g. cut by a crash)."}}},
    "requests": {"type": "object", "properties": _ints("unauthenticated")},
    "realtime": {"type": "object", "description": "Realtime WebSocket sessions open, and [server] max_realtime_sessions.",
                 "properties": _ints("sessions", "max")},
    "counters": {"type": "object", "description": "Where limits and budgets are counted (memory or redis): ok, "
                                                  "down_since, last_error, on_error when Redis is down."},
    "keys": {"type": "object", "description": "The key directory's store version and whether the store answers."},
    "connections": {"type": "object", "description": "The HTTP server's client connections (see [server] limits).",
                    "properties": _ints("open", "max", "header_too_large", "header_timeouts", "body_timeouts",
                                        "evicted", "refused")},
}}


def _models_op(summary: str) -> dict[str, Any]:
    return {"summary": summary, "security": ANY_KEY_SECURITY,
            "responses": {"200": {"description": "OK", "content": {"application/json": {
                "schema": {"$ref": _REF + "ModelList"}}}},
                          "401": {"description": "Keys are configured and none was sent",
                                  "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}},
                          "400": {"description": "Bad project slug",
                                  "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}}}}


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/health": {"get": {"summary": "Liveness, configured providers (listed only to a caller with a key when keys are configured), "
                                       "and whether records reach the store",
                            "security": [], "responses": {
                                "200": {"description": "OK", "content": {"application/json": {
                                    "schema": {"$ref": _REF + "Health"}}}},
                                "503": {"description": "Degraded: `problems` says why (store failing, backlog or "
                                                       "spool over its [store] degraded_* threshold, a write hung). "
                                                       "Tollway still proxies.",
                                        "content": {"application/json": {"schema": {"$ref": _REF + "Health"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document (any Tollway key, when keys are configured)",
                                  "security": ANY_KEY_SECURITY, "responses": {"200": {
            "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}},
            "401": {"description": "Keys are configured and none was sent",
                    "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}}}}},
        "/v1/models": {"get": _models_op("Models Tollway can route (OpenAI's list; Anthropic's with anthropic-version, "
                                           "paged by limit / after_id / before_id; Gemini's with x-goog-api-key); "
                                           "any Tollway key")},
        "/projects/{slug}/v1/models": {"get": {
            **_models_op("The same list, under a project's path (the slug is checked: a bad one is a 400)"),
            "parameters": [{"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}]}},
        "/health/live": {"get": {"summary": "Liveness probe: 200 while the process serves", "security": [],
                                 "responses": {"200": {"description": "Alive"}}}},
        "/health/ready": {"get": {"summary": "Readiness probe: the store (or its spool) takes records and every "
                                             "configured shared service answers", "security": [],
                                  "responses": {"200": {"description": "Ready; `checks` per service"},
                                                "503": {"description": "Not ready; `checks` name the failure"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (text format); open with [metrics] public = true",
                             "security": _ADMIN_SECURITY,
                             "responses": {"200": {"description": "Prometheus text exposition",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}},
                                           "401": {"description": "No or wrong key"}}}},
        "/admin/billing/failed": {"get": {
            "summary": "Parked billing events (failed max_attempts times), oldest first",
            "security": _ADMIN_SECURITY,
            "parameters": [{"name": "sink", "in": "query", "schema": {"type": "string"}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                        "maximum": 1000}}],
            "responses": {"200": {"description": "`data`: event_id, sink, trace_id, created_at, failed_at, "
                                                 "attempts, last_error, event",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/admin/billing/retry": {"post": {
            "summary": "Send parked billing events again (all, or by event_ids and/or sink)",
            "security": _ADMIN_SECURITY,
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"event_ids": {"type": "array", "items": {"type": "string"}},
                                                 "sink": {"type": "string"}}}}}},
            "responses": {"200": {"description": "How many were queued again", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"retried": {"type": "integer"}}}}}}}}},
        "/v1/records": {"get": _list_op("Usage records, newest first (or in insertion order with after_seq)",
                                        ["project", "source", "customer", "model", "status", "since", "until",
                                         "key_id", "team", "provider", "limit", "cursor", "after_seq"],
                                        "RecordPage")},
        "/v1/errors": {"get": _list_op("Requests a provider failure touched, newest first: customer-impacting "
                                       "(the client got an error) and mitigated (a retry or fallback served it)",
                                       ["kind", "model", "provider", "deployment", "project", "since", "until",
                                        "limit", "cursor"], "ErrorPage")},
        "/v1/projects": {"get": {
            "summary": "Projects active in the last N minutes (all without N) with their usage over that window "
                       "(the numbers of /v1/stats?group_by=project&since=Nm) and last_seen",
            "security": _ADMIN_SECURITY,
            "parameters": [{"name": "active_since_mins", "in": "query", "required": False,
                            "schema": {"type": "number", "exclusiveMinimum": 0}}],
            "responses": {"200": _json({"type": "object", "properties": {
                "object": {"const": "list"}, "since": {"type": ["number", "null"]},
                "data": {"type": "array", "items": {**_GROUP, "properties": {
                    **_GROUP["properties"], "slug": {"type": ["string", "null"]}}}},
                "totals": _GROUP}}), "400": _json(_ERR, "Bad parameter")}}},
        "/v1/projects/{slug}/records": {"get": {
            "summary": "The records of one project, newest first (the filters of /v1/records, project aside)",
            "security": _ADMIN_SECURITY,
            "parameters": [{"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}},
                           *({"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                             for n in ("source", "customer", "model", "status", "since", "until", "key_id",
                                       "team", "provider", "limit", "cursor"))],
            "responses": {"200": _json({"$ref": _REF + "RecordPage"})}}},
        "/v1/providers": {
            "get": {"summary": "Providers: the config file's (read-only) and those added at run time; never a key "
                               "(viewer role)", "security": _ADMIN_SECURITY,
                    "responses": {"200": _json({"type": "object", "properties": {
                        "object": {"const": "list"}, "data": {"type": "array", "items": _PROVIDER},
                        "secret_key_set": {"type": "boolean"}}})}},
            "post": {"summary": "Add a provider at run time (admin role): validated like a [[providers]] entry of "
                                "the config file; the key and headers are encrypted at rest (TOLLWAY_SECRET_KEY); "
                                "stored, audited, and picked up by every instance within seconds",
                     "security": _ADMIN_SECURITY,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["id", "kind"], "description": "A [[providers]] entry",
                         "properties": {"id": {"type": "string"}, "kind": {"type": "string"},
                                        "base_url": {"type": "string"}, "api_key": {"type": "string"},
                                        "models": {"type": "array", "items": {"type": "string"}},
                                        "headers": {"type": "object"}}}}}},
                     "responses": {"201": _json(_PROVIDER, "Added"), "400": _json(_ERR, "No TOLLWAY_SECRET_KEY"),
                                   "403": _json(_ERR, "Not an admin key"),
                                   "409": _json(_ERR, "The id exists (or is a config provider)"),
                                   "422": _json(_ERR, "Invalid provider")}}},
        "/v1/providers/{id}": {"delete": {
            "summary": "Remove a runtime provider (admin role; config-file providers are read-only)",
            "security": _ADMIN_SECURITY,
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object", "properties": {"id": {"type": "string"},
                                                                        "deleted": {"type": "boolean"}}}),
                          "404": _json(_ERR, "No such runtime provider"), "409": _json(_ERR, "A config provider")}}},
        "/v1/ask": {
            "get": {"summary": "Ask's model and the views it may query", "security": _ADMIN_SECURITY,
                    "responses": {"200": _json({"type": "object"})}},
            "post": {"summary": "A question in plain language, answered with one read-only SQL query written by "
                                "[ask] model (called through Tollway, source tollway-ask). Refused SQL comes back "
                                "with `refused` set and nothing run.",
                     "security": _ADMIN_SECURITY,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["question"], "properties": {"question": {"type": "string"}}}}}},
                     "responses": {"200": _json({"type": "object", "properties": {
                         "sql": {"type": "string"}, "executed_sql": {"type": "string"},
                         "refused": {"type": ["string", "null"]},
                         "columns": {"type": "array", "items": {"type": "string"}},
                         "rows": {"type": "array", "items": {"type": "array"}},
                         "chart": {"type": ["object", "null"]}, "trace_id": {"type": ["string", "null"]}}}),
                                   "400": _json(_ERR, "No [ask] model configured, or no question"),
                                   "502": _json(_ERR, "The Ask model failed")}}},
        "/v1/guard": {"get": {
            "summary": "What the guard found, per UTC day: finding types and counts in requests and answers, and "
                       "what was done (blocked, redacted); from the stored records (never a value)",
            "security": _ADMIN_SECURITY,
            "parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"},
                            **({"description": _TIME_PARAM} if n in ("since", "until") else {})}
                           for n in ("since", "until", "project", "source", "customer", "key_id", "team")],
            "responses": {"200": _json({"type": "object", "properties": {
                "totals": {"type": "object"}, "days": {"type": "array", "items": {"type": "object"}}}}),
                          "400": _json(_ERR, "A bad filter")}}},
        "/": {"get": {"summary": "The portal (a single-page app; its assets are under /assets/)", "security": [],
                      "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
        "/v1/records/{trace_id}": {"get": {
            "summary": "One usage record by the trace id a client got in x-tollway-trace-id",
            "security": _ADMIN_SECURITY,
            "parameters": [{"name": "trace_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": _REF + "RecordDetail"}}}},
                          "404": {"description": "No such record", "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}}}}},
        "/v1/responses/{response_id}": {
            "parameters": [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "A stored Response: Tollway's own (non-OpenAI providers), else the OpenAI "
                               "provider's; either only for the key whose call created it, or the master key",
                    "security": _security("openai"),
                    "responses": {"200": {"description": "The Response object", "headers": _TRACE,
                                          "content": {"application/json": {"schema": {"type": "object"}}}},
                                  "404": {"description": "Unknown id, or another key's",
                                          "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}}}},
            "delete": {"summary": "Delete a stored Response (the key's own)", "security": _security("openai"),
                       "responses": {"200": {"description": "Deleted", "content": {"application/json": {"schema": {
                           "type": "object", "properties": {"id": {"type": "string"}, "object": {"const": "response"},
                                                            "deleted": {"type": "boolean"}}}}}},
                                     "404": {"description": "Unknown id, or another key's",
                                             "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}}}}},
        "/v1/me": {"get": {
            "summary": "Who the presented key is: its id and roles (open: no keys configured)",
            "security": _ADMIN_SECURITY,
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "required": ["open", "key_id", "roles"], "properties": {
                    "open": {"type": "boolean"}, "key_id": {"type": ["string", "null"]},
                    "name": {"type": ["string", "null"]}, "team": {"type": ["string", "null"]},
                    "project": {"type": ["string", "null"]}, "customer": {"type": ["string", "null"]},
                    "source": {"enum": ["master", "config", "store"]},
                    "roles": {"type": "array", "items": {"enum": ["user", "viewer", "admin"]}}}}}}},
                          "401": {"description": "Missing or invalid key",
                                  "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}}}}},
        "/admin/audit": {"get": {
            "summary": "Every change made through the admin API or CLI, newest first (viewer role)",
            "security": _ADMIN_SECURITY,
            "parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                           for n in ("action", "target", "actor", "limit", "cursor")],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "properties": {
                    "object": {"const": "list"}, "next_cursor": {"type": ["string", "null"]},
                    "data": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "integer"}, "ts": {"type": "number"}, "actor": {"type": "string"},
                        "action": {"type": "string"}, "target": {"type": "string"},
                        "before": {}, "after": {}}}}}}}}},
                          "401": {"description": "Missing or invalid key",
                                  "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}},
                          "403": {"description": "The key lacks the viewer role",
                                  "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}}}}},
        "/v1/responses/{response_id}/input_items": {
            "parameters": [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "Input items of a stored Response (its conversation before it, then its own input); "
                               "Tollway's own, else the OpenAI provider's; only the key's own",
                    "security": _security("openai"),
                    "parameters": [
                        {"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                        {"name": "order", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": ["asc", "desc"], "default": "desc"}},
                        {"name": "after", "in": "query", "required": False, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "OpenAI list: data, first_id, last_id, has_more",
                                          "headers": _TRACE,
                                          "content": {"application/json": {"schema": {"type": "object"}}}},
                                  "400": {"description": "Bad limit, order or after",
                                          "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}},
                                  "404": {"description": "Unknown id, or another key's",
                                          "content": {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}}}}},
        "/v1/stats": {"get": {**_list_op("Totals and one breakdown (group_by), or by model, project and source; "
                                         "read from rollups, exact to the record and the nano-dollar", [], "Stats"),
                              "parameters": _STATS_PARAMS}},
        "/v1/chat/completions": {"post": _proxy_op("OpenAI Chat Completions", "openai", "CreateChatCompletionRequest")},
        "/v1/completions": {"post": _proxy_op("OpenAI Completions (legacy)", "openai", "CreateCompletionRequest")},
        "/v1/embeddings": {"post": _proxy_op("OpenAI Embeddings", "openai", "CreateEmbeddingRequest")},
        "/v1/responses": {"post": _proxy_op("OpenAI Responses", "openai", "CreateResponse")},
        "/v1/messages": {"post": _proxy_op("Anthropic Messages", "anthropic", "CreateMessageParams")},
        "/v1/messages/count_tokens": {"post": _proxy_op("Anthropic token counting", "anthropic",
                                                        "CountMessageTokensParams")},
        "/v1/{path}": {"summary": "Any other path, passed through to the provider whose client sent it, with "
                                  "Tollway's credentials: Anthropic for requests with anthropic-version (or under "
                                  "/v1/messages/, /v1/complete), else OpenAI (files, batches, audio, images, "
                                  "moderations, …); Gemini-style models/{m}:verb paths are 404 in Gemini's shape. "
                                  "A path leaving /v1/ or holding a space or control character is a 400.",
                       "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
                       **_passthrough_ops("Pass-through to the provider whose client sent it", "openai", byok=False)},
        "/proxy/openai/v1/{path}": {
            "summary": "OpenAI with the caller's own key (Authorization), metered; Tollway key in X-Tollway-Key.",
            "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": _proxy_op("Any OpenAI endpoint, caller's key", "openai", "OpenAI API", byok=True),
            **_passthrough_ops("Any OpenAI endpoint, caller's key", "openai", byok=True)},
        "/proxy/anthropic/v1/{path}": {
            "summary": "Anthropic with the caller's own key (x-api-key), metered; Tollway key in X-Tollway-Key.",
            "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": _proxy_op("Any Anthropic endpoint, caller's key", "anthropic", "Anthropic API", byok=True),
            **_passthrough_ops("Any Anthropic endpoint, caller's key", "anthropic", byok=True)},
    }
    for sub, fmt, schema in (("chat/completions", "openai", "CreateChatCompletionRequest"),
                             ("completions", "openai", "CreateCompletionRequest"),
                             ("embeddings", "openai", "CreateEmbeddingRequest"),
                             ("responses", "openai", "CreateResponse"),
                             ("messages", "anthropic", "CreateMessageParams"),
                             ("messages/count_tokens", "anthropic", "CountMessageTokensParams")):
        op = _proxy_op(f"Project-scoped /v1/{sub} (the slug wins over project headers)", fmt, schema)
        op["parameters"] = [{"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}},
                            *op["parameters"]]
        paths[f"/projects/{{slug}}/v1/{sub}"] = {"post": op}
    from tollway.api.openapi_surfaces import GEMINI_ERROR, SECURITY_SCHEMES, surface_paths

    paths.update(surface_paths(_proxy_op, paths["/v1/models"]["get"]))
    paths.update(admin_paths())
    paths.update(routing_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tollway", "version": __version__,
                 "description": "Self-hosted LLM proxy. Proxied bodies are the providers' own; this document "
                                "describes Tollway's routes, headers and its own error bodies."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Master key or a configured key."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                           "description": "Master key or a configured key (Anthropic routes, operator routes, model lists)."},
                "tollwayKey": {"type": "apiKey", "in": "header", "name": "X-Tollway-Key",
                               "description": "Master key or a configured key; accepted on every route, and the "
                                              "only place for it on /proxy/ routes."},
                **SECURITY_SCHEMES},
            "schemas": {
                "OpenAIError": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["message", "type"], "properties": {
                        "message": {"type": "string"}, "type": {"type": "string"},
                        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}},
                "AnthropicError": {"type": "object", "required": ["type", "error"], "properties": {
                    "type": {"const": "error"}, "error": {"type": "object", "required": ["type", "message"],
                                                          "properties": {"type": {"type": "string"},
                                                                         "message": {"type": "string"}}}}},
                "GeminiError": GEMINI_ERROR,
                "Health": _HEALTH,
                "ModelList": {"type": "object", "properties": {"object": {"const": "list"}, "data": {
                    "type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"},
                        "owned_by": {"type": "string"}}}}}},
                **admin_schemas(),
                "Record": _RECORD,
                "RecordDetail": _RECORD_DETAIL,
                "ErrorPage": {"type": "object", "properties": {
                    "object": {"const": "list"},
                    "data": {"type": "array", "items": {"type": "object", "properties": {
                        **{k: {"type": ["string", "null"]} for k in (
                            "trace_id", "time", "kind", "route", "model_requested", "provider", "deployment",
                            "error_type", "project", "key_id")},
                        "attempts": {"type": ["integer", "null"]}, "status": {"type": "integer"},
                        "attempt_errors": {"type": "array", "items": {"type": "string"}}}}},
                    "next_cursor": {"type": ["string", "null"]}}},
                "RecordPage": {"type": "object", "properties": {
                    "data": {"type": "array", "items": {"$ref": _REF + "Record"}},
                    "next_cursor": {"type": ["string", "null"]},
                    "next_after_seq": {"type": ["integer", "null"],
                                       "description": "With after_seq: pass it as after_seq next time."}}},
                "Stats": {"type": "object", "properties": {
                    "since": {"type": ["number", "null"]}, "until": {"type": ["number", "null"]},
                    "group_by": {"type": "string"},
                    "groups": {"type": "array", "items": {**_GROUP, "properties": {
                        **_GROUP["properties"], "time": {"type": "string"}, "ts": {"type": "integer"}},
                        "additionalProperties": True}},
                    "totals": _GROUP,
                    "by_model": {"type": "array", "items": {**_GROUP, "properties": {
                        **_GROUP["properties"], "model": {"type": ["string", "null"]}}}},
                    "by_project": {"type": "array", "items": {**_GROUP, "properties": {
                        **_GROUP["properties"], "project": {"type": ["string", "null"]}}}},
                    "by_source": {"type": "array", "items": {**_GROUP, "properties": {
                        **_GROUP["properties"], "source": {"type": ["string", "null"]}}}}}},
            },
        },
    }
