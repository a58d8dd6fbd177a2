"""Operator endpoints: GET /v1/records and GET /v1/stats (viewer role when keys are set)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, send_bytes, send_json
from tollway.api.authz import authorize, caller
from tollway.errors import ProxyError, render
from tollway.storage import queries

if TYPE_CHECKING:
    from tollway.state import AppState


def parse_since(value: str) -> float:
    """Unix seconds, or an ISO 8601 time (a date alone means midnight UTC)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ProxyError("invalid_request", f"since: expected unix seconds or ISO 8601, got {value!r}",
                         param="since") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


class AdminRoutes:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    def _authorize(self, scope: Scope) -> None:
        authorize(self._state, scope, "viewer")

    @staticmethod
    def _filters(scope: Scope, allowed: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if k not in allowed:
                raise ProxyError("invalid_request", f"Unknown query parameter {k!r}; allowed: {', '.join(allowed)}.",
                                 param=k)
            if k == "since":
                out[k] = parse_since(v)
            elif k == "limit":
                if not v.isdigit():
                    raise ProxyError("invalid_request", "limit must be a positive integer.", param="limit")
                out[k] = int(v)
            elif k == "status":
                out[k] = int(v) if v.isdigit() else v
            else:
                out[k] = v
        return out

    async def _answer(self, scope: Scope, send: Send, produce) -> None:
        try:
            self._authorize(scope)
            result = await produce()
        except (ProxyError, queries.InvalidQuery) as e:
            err = e if isinstance(e, ProxyError) else ProxyError("invalid_request", str(e))
            status, body = render(err, "openai")
            await send_bytes(send, status, body, JSON_HEADERS)
            return
        await send_json(send, 200, result)

    async def me(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Who the presented key is: its id and roles (the portal shows or hides controls by them)."""
        async def produce() -> dict[str, Any]:
            info = caller(self._state, scope)
            if info is None:
                return {"open": True, "key_id": None, "roles": ["admin", "user", "viewer"]}
            return {"open": False, "key_id": info.id, "roles": sorted(info.roles), "name": info.name,
                    "team": info.team, "project": info.project, "customer": info.customer, "source": info.source}
        try:
            result = await produce()
        except ProxyError as e:
            status, body = render(e, "openai")
            await send_bytes(send, status, body, JSON_HEADERS)
            return
        await send_json(send, 200, result)

    async def records(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def produce() -> dict[str, Any]:
            f = self._filters(scope, ("project", "source", "customer", "model", "status", "since", "key_id",
                                      "team", "limit", "cursor"))
            await self._state.ledger.flush()
            return await queries.list_records(self._state.engine, **f)
        await self._answer(scope, send, produce)

    async def record(self, scope: Scope, receive: Receive, send: Send, trace_id: str) -> None:
        async def produce() -> dict[str, Any]:
            await self._state.ledger.flush()
            found = await queries.get_record(self._state.engine, trace_id)
            if found is None:
                raise ProxyError("not_found", f"No record with trace id {trace_id!r}.")
            return found
        await self._answer(scope, send, produce)

    async def stats(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def produce() -> dict[str, Any]:
            f = self._filters(scope, ("project", "source", "customer", "model", "since"))
            await self._state.ledger.flush()
            return await queries.stats(self._state.engine, **f)
        await self._answer(scope, send, produce)

