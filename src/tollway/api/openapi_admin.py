"""The /openapi.json part for keys, teams, projects, customers and budgets under /admin/.

Request schemas come from the pydantic models the API validates with (policy.schemas), so
the document and the validation cannot disagree; response schemas are written out here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tollway.policy.schemas import BudgetCreate, BudgetUpdate, GroupCreate, GroupUpdate, KeyCreate, KeyRotate, KeyUpdate

_REF = "#/components/schemas/"
# where the operator routes take Tollway's key (api.authz.presented)
OPERATOR_SECURITY = [{"bearer": []}, {"apiKey": []}, {"tollwayKey": []}]
_ERR = {"application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}
_S, _SN, _IN = {"type": "string"}, {"type": ["string", "null"]}, {"type": ["integer", "null"]}

BUDGET = {"type": "object", "required": ["id", "scope", "target", "limit_usd", "window", "source"], "properties": {
    "id": _S, "scope": {"enum": ["key", "team", "project", "customer"]}, "target": _S,
    "limit_usd": {"type": "string", "description": "Decimal string, USD"},
    "window": {"enum": ["day", "week", "month", "total"]}, "source": {"enum": ["config", "store"]},
    "read_only": {"type": "boolean"}, "window_start": _SN, "resets_at": _SN,
    "spent_usd": {"type": "string", "description": "Settled spend in the current window"},
    "reserved_usd": {"type": "string", "description": "Held by calls in flight"},
    "remaining_usd": {"type": "string"}}}

KEY = {"type": "object", "required": ["id", "name", "source", "state", "roles", "limits", "budgets"], "properties": {
    "id": {"type": "string", "description": "Public id; the key is tw-<id>-<secret>"}, "name": _SN,
    "key_prefix": _SN, "source": {"enum": ["config", "store"]}, "read_only": {"type": "boolean"},
    "state": {"enum": ["active", "revoked", "expired"]},
    "roles": {"type": "array", "items": {"enum": ["user", "viewer", "admin"]}},
    "team": _SN, "project": _SN, "customer": _SN,
    "limits": {"type": "object", "properties": {
        "rpm": _IN, "tpm": _IN, "max_concurrency": _IN, "queue_timeout_ms": {"type": "integer"},
        "models": {"type": ["array", "null"], "items": _S}, "max_tokens": _IN, "max_body_bytes": _IN}},
    "budgets": {"type": "array", "items": {"$ref": _REF + "Budget"}},
    "credentials": {"type": "array", "items": _S, "description": "Provider kinds with a credential of their own"},
    "expires_at": _SN, "revoked_at": _SN, "old_secret_valid_until": _SN, "created_at": _SN, "updated_at": _SN,
    "key": {"type": "string", "description": "Only in the answer to create and rotate: the key itself, shown once"}}}

GROUP = {"type": "object", "required": ["id", "kind", "source", "budgets"], "properties": {
    "id": _S, "kind": {"enum": ["team", "project", "customer"]}, "name": _SN, "source": {"enum": ["config", "store"]},
    "read_only": {"type": "boolean"}, "rpm": _IN, "tpm": _IN,
    "budgets": {"type": "array", "items": {"$ref": _REF + "Budget"}}, "created_at": _SN, "updated_at": _SN}}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template=_REF + "{model}")


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"object": {"const": "list"},
                                             "data": {"type": "array", "items": {"$ref": _REF + name}}}}


def _op(summary: str, role: str, ok: str, schema: dict[str, Any], body: str | None = None,
        params: list[str] = (), query: list[str] = ()) -> dict[str, Any]:
    responses: dict[str, Any] = {
        ok: {"description": "OK" if ok == "200" else "Created", "content": {"application/json": {"schema": schema}}},
        "401": {"description": "Missing or invalid key", "content": _ERR},
        "403": {"description": f"The key lacks the {role} role", "content": _ERR},
    }
    if params:
        responses["404"] = {"description": "No such id", "content": _ERR}
    if body is not None:
        responses["400"] = {"description": "Body is not a JSON object", "content": _ERR}
        responses["422"] = {"description": "Invalid input (param: the field path); nothing changed", "content": _ERR}
        responses["409"] = {"description": "Defined in config (read-only), exists already, or revoked",
                            "content": _ERR}
    elif ok == "200" and role == "admin":
        responses["409"] = {"description": "Defined in config (read-only) or still in use", "content": _ERR}
    op: dict[str, Any] = {"summary": summary + f" ({role} role)", "security": OPERATOR_SECURITY,
                          "parameters": [{"name": p, "in": "path", "required": True, "schema": _S} for p in params]
                          + [{"name": q, "in": "query", "required": False, "schema": _S} for q in query],
                          "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": body != "KeyRotate",
                             "content": {"application/json": {"schema": {"$ref": _REF + body}}}}
    return op


def admin_paths() -> dict[str, Any]:
    key, budget, group = {"$ref": _REF + "Key"}, {"$ref": _REF + "Budget"}, {"$ref": _REF + "Group"}
    deleted = {"type": "object", "properties": {"id": _S, "deleted": {"const": True}}}
    paths: dict[str, Any] = {
        "/admin/keys": {
            "get": _op("Every key with its limits, budgets (spend, window, reset) and state", "viewer", "200",
                       _list_of("Key"), query=["state"]),
            "post": _op("Create a key; the answer holds it once", "admin", "201", key, "KeyCreate")},
        "/admin/keys/{id}": {
            "get": _op("One key", "viewer", "200", key, params=["id"]),
            "patch": _op("Change a key (only the fields given; null clears)", "admin", "200", key, "KeyUpdate",
                         params=["id"]),
            "delete": _op("Revoke a key", "admin", "200", key, params=["id"])},
        "/admin/keys/{id}/revoke": {"post": _op("Revoke a key", "admin", "200", key, params=["id"])},
        "/admin/keys/{id}/rotate": {"post": _op("New secret, same id; the old one works for `grace`", "admin", "200",
                                                key, "KeyRotate", params=["id"])},
        "/admin/budgets": {
            "get": _op("Every budget with its spend in the current window", "viewer", "200", _list_of("Budget"),
                       query=["scope", "target"]),
            "post": _op("Create a budget", "admin", "201", budget, "BudgetCreate")},
        "/admin/budgets/{id}": {
            "get": _op("One budget", "viewer", "200", budget, params=["id"]),
            "patch": _op("Change a budget's amount or window", "admin", "200", budget, "BudgetUpdate", params=["id"]),
            "delete": _op("Delete a budget", "admin", "200", deleted, params=["id"])},
    }
    for plural in ("teams", "projects", "customers"):
        paths[f"/admin/{plural}"] = {
            "get": _op(f"Every {plural[:-1]} with its limits and budgets", "viewer", "200", _list_of("Group")),
            "post": _op(f"Create a {plural[:-1]}", "admin", "201", group, "GroupCreate")}
        paths[f"/admin/{plural}/{{id}}"] = {
            "get": _op(f"One {plural[:-1]}", "viewer", "200", group, params=["id"]),
            "patch": _op(f"Change a {plural[:-1]}", "admin", "200", group, "GroupUpdate", params=["id"]),
            "delete": _op(f"Delete a {plural[:-1]} and its budgets", "admin", "200", deleted, params=["id"])}
    return paths


def admin_schemas() -> dict[str, Any]:
    out: dict[str, Any] = {"Key": KEY, "Budget": BUDGET, "Group": GROUP}
    for model in (KeyCreate, KeyUpdate, KeyRotate, GroupCreate, GroupUpdate, BudgetCreate, BudgetUpdate):
        out[model.__name__] = _schema(model)
    return out
