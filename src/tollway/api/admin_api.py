"""Everything under `/admin/`: a small table of (method, path pattern) → handler.

Operators' JSON API (keys, teams, customers, budgets, providers, audit, ...). Each feature
registers its routes with `add()` when the Router is built; patterns are `/admin/keys/{id}`
style, matched segment by segment (no regular expressions, no framework). Errors are
OpenAI-shaped JSON: 401/403 by role (api.authz), 404, 405, 422 with the field path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import orjson

from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, read_body, send_bytes, send_json
from tollway.api.authz import actor, authorize
from tollway.errors import ProxyError, render
from tollway.pipeline.auth import KeyInfo

if TYPE_CHECKING:
    from tollway.state import AppState

ADMIN_BODY_LIMIT = 1024 * 1024


class AdminRequest:
    """What an admin handler gets: the caller (already authorised), path params, query, body."""

    __slots__ = ("scope", "receive", "caller", "params", "query")

    def __init__(self, scope: Scope, receive: Receive, caller: KeyInfo | None, params: dict[str, str]) -> None:
        self.scope = scope
        self.receive = receive
        self.caller = caller
        self.params = params
        self.query: dict[str, str] = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))

    @property
    def actor(self) -> str:
        return actor(self.caller)

    async def json(self) -> dict[str, Any]:
        raw = await read_body(self.receive, dict(self.scope["headers"]), ADMIN_BODY_LIMIT)
        try:
            obj = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as e:
            raise ProxyError("invalid_request", f"Request body is not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise ProxyError("invalid_request", "Request body must be a JSON object.")
        return obj

    def int_param(self, name: str, default: int, lo: int = 1, hi: int = 1000) -> int:
        v = self.query.get(name)
        if v is None:
            return default
        if not v.isascii() or not v.isdigit() or not lo <= int(v) <= hi:
            raise ProxyError("invalid_request", f"{name} must be an integer from {lo} to {hi}.", param=name)
        return int(v)


# returns (status, JSON-serialisable body)
AdminHandler = Callable[[AdminRequest], Awaitable[tuple[int, Any]]]


class AdminApi:
    def __init__(self, state: "AppState") -> None:
        self._state = state
        self._routes: list[tuple[str, tuple[str, ...], str, AdminHandler]] = []

    def add(self, method: str, pattern: str, role: str, handler: AdminHandler) -> None:
        """`role` is what the caller needs: "viewer" (reads) or "admin" (changes)."""
        self._routes.append((method, tuple(pattern.strip("/").split("/")), role, handler))

    def routes(self) -> list[tuple[str, str]]:
        """(method, path pattern) of every registered route (GET routes answer HEAD too)."""
        return [(m, "/" + "/".join(pat)) for m, pat, _, _ in self._routes]

    def _match(self, method: str, path: str) -> tuple[str, AdminHandler, dict[str, str]] | None | bool:
        parts = path.strip("/").split("/")
        path_known = False
        for m, pat, role, handler in self._routes:
            if len(pat) != len(parts):
                continue
            params: dict[str, str] = {}
            for p, got in zip(pat, parts, strict=True):
                if p.startswith("{"):
                    if not got:
                        break
                    params[p[1:-1]] = unquote(got)
                elif p != got:
                    break
            else:
                if m == method or (m == "GET" and method == "HEAD"):
                    return role, handler, params
                path_known = True
        return path_known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            found = self._match(scope["method"], scope["path"])
            if found is True:
                raise _MethodNotAllowed()
            if not found:
                raise ProxyError("not_found", f"No admin route for {scope['method']} {scope['path'][:200]}.")
            role, handler, params = found  # type: ignore[misc]
            caller = authorize(self._state, scope, role)
            status, body = await handler(AdminRequest(scope, receive, caller, params))
        except ProxyError as e:
            status, err = render(e, "openai")
            await send_bytes(send, status, err, JSON_HEADERS)
            return
        except _MethodNotAllowed:
            await send_json(send, 405, {"error": {"message": f"{scope['method']} is not allowed here.",
                                                  "type": "invalid_request_error", "param": None,
                                                  "code": "method_not_allowed"}})
            return
        await send_json(send, status, body)


class _MethodNotAllowed(Exception):
    pass


def register_audit(api: AdminApi, state: "AppState") -> None:
    async def list_audit(req: AdminRequest) -> tuple[int, Any]:
        cursor = req.query.get("cursor")
        if cursor is not None and not (cursor.isascii() and cursor.isdigit()):
            raise ProxyError("invalid_request", "cursor must be the next_cursor of a previous page.", param="cursor")
        return 200, await state.audit.list(limit=req.int_param("limit", 100), before_id=int(cursor) if cursor else None,
                                           action=req.query.get("action"), target=req.query.get("target"),
                                           actor=req.query.get("actor"))

    api.add("GET", "/admin/audit", "viewer", list_audit)
