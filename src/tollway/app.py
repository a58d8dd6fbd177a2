"""The ASGI application: route table and lifespan. No request logic lives here.

Exact paths are a dict lookup; prefixes (`/projects/{slug}/`, `/proxy/<kind>/v1/`, other
`/v1/*`) are checked only when no exact route matched.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

import orjson

from tollway.api.admin import AdminRoutes
from tollway.api.admin_api import AdminApi, register_audit
from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, send_bytes
from tollway.api.health import HealthRoutes
from tollway.api.openapi import openapi_document
from tollway.api.operator_api import OPERATOR_PATHS, register_operator_routes
from tollway.api.passthrough import PassthroughRoute
from tollway.api.portal import PortalRoute
from tollway.api.responses_state import ResponsesStateRoute
from tollway.api.unified import UnifiedRoute
from tollway.ask.service import AskService
from tollway.config import Settings
from tollway.errors import ProxyError, render
from tollway.providers.base import Endpoint
from tollway.state import AppState

log = logging.getLogger("tollway")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

# (path under /v1, route name, client format, endpoint)
UNIFIED: tuple[tuple[str, str, str, Endpoint], ...] = (
    ("/chat/completions", "openai.chat", "openai", Endpoint.CHAT),
    ("/completions", "openai.completions", "openai", Endpoint.COMPLETIONS),
    ("/embeddings", "openai.embeddings", "openai", Endpoint.EMBEDDINGS),
    ("/responses", "openai.responses", "openai", Endpoint.RESPONSES),
    ("/messages", "anthropic.messages", "anthropic", Endpoint.MESSAGES),
    ("/messages/count_tokens", "anthropic.count_tokens", "anthropic", Endpoint.COUNT_TOKENS),
)


class Router:
    """Built once the state exists (in lifespan startup)."""

    def __init__(self, state: AppState) -> None:
        admin, health = AdminRoutes(state), HealthRoutes(state)
        self.admin = admin
        self.admin_api = AdminApi(state)
        register_audit(self.admin_api, state)
        self.unified: dict[str, UnifiedRoute] = {
            "/v1" + sub: UnifiedRoute(state, route, fmt, ep) for sub, route, fmt, ep in UNIFIED}
        self.byok: dict[str, dict[str, UnifiedRoute]] = {
            kind: {"/v1" + sub: UnifiedRoute(state, "proxy." + route, fmt, ep, byok=True)
                   for sub, route, fmt, ep in UNIFIED if fmt == kind}
            for kind in ("openai", "anthropic")}
        self.operator_api = AdminApi(state)
        register_operator_routes(self.operator_api, state, AskService(state, self.unified["/v1/chat/completions"]))
        self.portal = PortalRoute()
        self.passthrough = {kind: PassthroughRoute(state, kind, byok=True) for kind in ("openai", "anthropic")}
        self.openai_passthrough = PassthroughRoute(state, "openai", byok=False)
        self.responses_state = ResponsesStateRoute(state, self.openai_passthrough)
        self.get: dict[str, Handler] = {
            "/health": health.health,
            "/v1/models": health.models,
            "/v1/records": admin.records,
            "/v1/stats": admin.stats,
            "/v1/me": admin.me,
            "/v1/projects": admin.projects,
            "/openapi.json": self._openapi,
        }
        self._openapi_body = orjson.dumps(openapi_document())

    async def _openapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_bytes(send, 200, self._openapi_body, JSON_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "POST":
            route = self.unified.get(path)
            if route is not None:
                return await route(scope, receive, send)
        elif method in ("GET", "HEAD"):
            handler = self.get.get(path)
            if handler is not None:
                return await handler(scope, receive, send)
            if self.portal.serves(path):
                return await self.portal(scope, receive, send)
        if path.startswith("/projects/"):
            slug, _, rest = path[10:].partition("/")
            rest = "/" + rest
            if slug:
                if method == "POST" and rest in self.unified:
                    return await self.unified[rest](scope, receive, send, path_project=slug)
                if method == "GET" and rest == "/v1/models":
                    return await self.get[rest](scope, receive, send)
            return await not_found(scope, send)
        if path.startswith("/proxy/"):
            kind, _, rest = path[7:].partition("/")
            rest = "/" + rest
            if kind in self.byok and rest.startswith("/v1/"):
                route = self.byok[kind].get(rest) if method == "POST" else None
                if route is not None:
                    return await route(scope, receive, send)
                return await self.passthrough[kind](scope, receive, send, subpath=rest[3:])
            return await not_found(scope, send)
        if path.startswith("/admin/"):
            return await self.admin_api(scope, receive, send)
        if path.startswith("/v1/records/") and method in ("GET", "HEAD"):
            return await self.admin.record(scope, receive, send, trace_id=path[12:])
        if path in OPERATOR_PATHS or path.startswith("/v1/providers/"):
            return await self.operator_api(scope, receive, send)
        if path.startswith("/v1/projects/") and method in ("GET", "HEAD"):
            slug, _, rest = path[13:].partition("/")
            if slug and rest == "records":
                return await self.admin.records(scope, receive, send, project=unquote(slug))
            return await not_found(scope, send)
        if path.startswith("/v1/responses/") and method in ("GET", "DELETE") and path.count("/") == 3:
            return await self.responses_state(scope, receive, send, response_id=path[14:])
        if path.startswith("/v1/"):
            if path.startswith("/v1/messages"):
                return await not_found(scope, send, fmt="anthropic")
            return await self.openai_passthrough(scope, receive, send, subpath=path[3:])
        return await not_found(scope, send)


async def not_found(scope: Scope, send: Send, fmt: str = "openai") -> None:
    err = ProxyError("not_found", f"No route for {scope['method']} {scope['path']}.")
    status, body = render(err, "anthropic" if fmt == "anthropic" else "openai")
    await send_bytes(send, status, body, JSON_HEADERS)


class TollwayApp:
    """ASGI entry point: lifespan builds AppState and the Router; http goes to the Router."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state: AppState | None = None
        self._router: Router | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            assert self._router is not None, "lifespan did not run"
            return await self._router(scope, receive, send)
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg: dict[str, Any] = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    self.state = await AppState.open(self.settings)
                    self._router = Router(self.state)
                except Exception as e:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self.state is not None:
                    await self.state.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(settings: Settings) -> TollwayApp:
    return TollwayApp(settings)
