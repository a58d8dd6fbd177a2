"""OpenAPI operations of the router's routes (api.routing)."""

from __future__ import annotations

from typing import Any

from tollway.api.openapi_admin import OPERATOR_SECURITY

_REF = "#/components/schemas/"
_ERR = {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}
_S = {"type": "string"}
_NUM_OR_NULL = {"type": ["number", "null"]}

_DEPLOYMENT = {"type": "object", "properties": {
    "deployment": {"type": "string", "description": "provider:model"}, "provider": _S, "provider_kind": _S,
    "model": _S, "endpoints": {"type": "array", "items": _S},
    "capabilities": {"type": ["array", "null"], "items": _S, "description": "null: not declared (assumed capable)"},
    "context_window": {"type": ["integer", "null"]},
    "pricing": {"type": ["object", "null"], "properties": {"input_per_mtok": _S, "output_per_mtok": _S}},
    "weight": {"type": "number"}, "priority": {"type": "integer"}, "max_concurrency": {"type": ["integer", "null"]},
    "latency_ms": _NUM_OR_NULL, "ttft_ms": _NUM_OR_NULL, "error_rate": _NUM_OR_NULL,
    "breaker": {"type": ["string", "null"], "enum": ["closed", "open", "half_open", None]},
    "quality": _NUM_OR_NULL, "quality_signals": {"type": "integer"}}}
_CATALOG_ENTRY = {"type": "object", "properties": {
    "id": _S, "object": {"const": "model"}, "policy": _S, "provider": _S, "provider_kind": _S,
    "capabilities": {"type": ["array", "null"]}, "context_window": {"type": ["integer", "null"]},
    "pricing": {"type": ["object", "null"]}, "latency_ms": _NUM_OR_NULL, "ttft_ms": _NUM_OR_NULL,
    "error_rate": _NUM_OR_NULL, "quality": _NUM_OR_NULL,
    "deployments": {"type": "array", "items": _DEPLOYMENT}}}
_VERDICT = {"type": "object", "required": ["deployment"], "properties": {
    "deployment": _S, "score": {"type": "number"}, "reason": _S, "sticky": {"type": "boolean"}}}
_EXPLAIN = {"type": "object", "required": ["model", "policy", "profile", "layers", "plan"], "properties": {
    "model": _S, "policy": {"type": ["string", "null"]}, "profile": {"type": ["string", "null"]},
    "layers": {"type": "array", "items": {"type": "object", "required": ["name", "kept", "removed"], "properties": {
        "name": {"enum": ["candidates", "capabilities", "policy", "health", "scoring"]},
        "kept": {"type": "array", "items": _VERDICT}, "removed": {"type": "array", "items": _VERDICT},
        "request": {"type": "object", "description": "capabilities: what the request needs"},
        "policy": {"type": "string", "description": "scoring: the policy, or \"profile\""}}}},
    "plan": {"type": "array", "items": _S, "description": "deployments in the order they would be tried"},
    "cost_estimate": {"type": ["string", "null"], "description": "USD, the first deployment's"},
    "error": {"type": "object", "description": "the error real routing would answer (no deployment left)"}}}
_HEALTH = {"type": "object", "properties": {
    "deployment": _S, "provider": _S, "model": _S,
    "state": {"enum": ["closed", "open", "half_open"]}, "consecutive_failures": {"type": "integer"},
    "window": {"type": "object"}, "retry_in_s": _NUM_OR_NULL, "opened": {"type": "integer"},
    "last_error": {"type": ["string", "null"]}, "latency_ewma_ms": _NUM_OR_NULL, "ttft_ewma_ms": _NUM_OR_NULL,
    "in_flight": {"type": "integer"}, "requests": {"type": "integer"}, "error_rate": _NUM_OR_NULL}}


def _list(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": items},
                                             **extra}}


def _op(summary: str, role: str, schema: dict[str, Any], ok: str = "200",
        body: dict[str, Any] | None = None) -> dict[str, Any]:
    who = "any Tollway key" if role == "any" else f"{role} role"
    op: dict[str, Any] = {"summary": f"{summary} ({who})", "security": OPERATOR_SECURITY, "responses": {
        ok: {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "401": {"description": "Missing or invalid key", "content": _ERR}}}
    if role != "any":
        op["responses"]["403"] = {"description": f"The key lacks the {role} role", "content": _ERR}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        op["responses"]["400"] = {"description": "Invalid body", "content": _ERR}
    return op


def routing_paths() -> dict[str, Any]:
    return {
        "/v1/route/explain": {"post": _op(
            "How the router would route a request, layer by layer (candidates, capabilities, policy, health, "
            "scoring), without calling a provider: the same code path real routing runs", "any", _EXPLAIN,
            body={"type": "object", "required": ["model"], "description": "A chat / messages / responses body",
                  "properties": {"model": _S, "profile": {**_S, "description": "a routing profile name"},
                                 "endpoint": {"enum": ["chat", "messages", "responses"],
                                              "description": "default: guessed from the body"}}})},
        "/v1/profiles": {"get": _op("Routing profiles ([[routing.profiles]]) and the calling key's own", "any",
                                    _list({"type": "object"}, key_profile={"type": ["string", "null"]}))},
        "/v1/catalog": {"get": _op("Every routable model: provider, capabilities, context window, prices per "
                                   "million tokens, observed latency, TTFT, error rate and quality score", "any",
                                   _list(_CATALOG_ENTRY))},
        "/v1/health/deployments": {"get": _op("Each deployment's breaker state, latency and TTFT EWMAs and calls "
                                              "in flight; credentials cooling down", "viewer",
                                              _list(_HEALTH, credentials={"type": "array"},
                                                    shared={"type": "boolean"}))},
        "/v1/signals": {
            "post": _op("Quality feedback on a call (its x-tollway-trace-id): score 0..1 or thumbs up/down, and "
                        "a label; the quality policy and the catalog use it", "any",
                        {"type": "object"}, ok="201",
                        body={"type": "object", "required": ["trace_id"], "properties": {
                            "trace_id": _S, "score": {"type": "number", "minimum": 0, "maximum": 1},
                            "thumbs": {"enum": ["up", "down"]}, "label": _S}}),
            "get": _op("Feedback summarised per provider and model (mean score, count)", "viewer",
                       _list({"type": "object", "properties": {
                           "provider": _S, "model": _S, "score": {"type": "number"}, "count": {"type": "integer"},
                           "positive": {"type": "integer"}}}, unmatched={"type": "integer"}))},
    }
