"""Operator routes under /v1/ that change or ask things: runtime providers and Ask.

Registered on an `AdminApi` table (same matching, roles and error shapes as /admin/):
GET /v1/providers (viewer: never a key), POST /v1/providers and DELETE /v1/providers/{id}
(admin), POST /v1/ask (viewer), GET /v1/guard (viewer: what the guard found, per day).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tollway.api.admin_api import AdminApi, AdminRequest
from tollway.errors import ProxyError

if TYPE_CHECKING:
    from tollway.ask.service import AskService
    from tollway.state import AppState

OPERATOR_PATHS = frozenset({"/v1/providers", "/v1/ask", "/v1/guard"})  # and /v1/providers/{id}


def register_operator_routes(api: AdminApi, state: "AppState", ask: "AskService") -> None:
    def runtime() -> Any:
        assert state.runtime_providers is not None
        return state.runtime_providers

    async def list_providers(req: AdminRequest) -> tuple[int, Any]:
        return 200, {"object": "list", "data": runtime().list(), "secret_key_set": state.secret_box is not None}

    async def add_provider(req: AdminRequest) -> tuple[int, Any]:
        return 201, await runtime().add(await req.json(), req.actor)

    async def delete_provider(req: AdminRequest) -> tuple[int, Any]:
        return 200, await runtime().remove(req.params["id"], req.actor)

    async def ask_question(req: AdminRequest) -> tuple[int, Any]:
        body = await req.json()
        question = body.get("question")
        if not isinstance(question, str):
            raise ProxyError("invalid_request", "Send {\"question\": \"...\"}.", param="question")
        return 200, await ask.ask(question, req.caller)

    async def ask_info(req: AdminRequest) -> tuple[int, Any]:
        from tollway.ask.schema import VIEWS

        return 200, {"model": state.settings.ask.model, "views": VIEWS, "max_rows": state.settings.ask.max_rows,
                     "timeout_secs": state.settings.ask.timeout_secs}

    async def guard_report(req: AdminRequest) -> tuple[int, Any]:
        from tollway.api.admin import parse_since
        from tollway.storage.guard_stats import GUARD_FILTERS, guard_stats

        allowed = ("since", "until", *GUARD_FILTERS)
        for name in req.query:
            if name not in allowed:
                raise ProxyError("invalid_request", f"Unknown query parameter {name[:100]!r}; allowed: "
                                 f"{', '.join(allowed)}.", param=name[:100])
        times = {k: parse_since(req.query[k], k) for k in ("since", "until") if k in req.query}
        await state.ledger.flush()
        return 200, await guard_stats(state.engine, **times, **{k: req.query.get(k) for k in GUARD_FILTERS})

    api.add("GET", "/v1/providers", "viewer", list_providers)
    api.add("POST", "/v1/providers", "admin", add_provider)
    api.add("DELETE", "/v1/providers/{id}", "admin", delete_provider)
    api.add("POST", "/v1/ask", "viewer", ask_question)
    api.add("GET", "/v1/ask", "viewer", ask_info)
    api.add("GET", "/v1/guard", "viewer", guard_report)
