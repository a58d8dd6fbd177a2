"""The ASGI application: route table and lifespan. No request logic lives here.

Exact paths are a dict lookup (OpenAI's routes also without `/v1`, and Azure's `/openai/...`
copies); prefixes (`/projects/{slug}/`, `/proxy/<kind>/v1/`, `/v1beta/models/`,
`/openai/deployments/{d}/`, other `/v1/*`) are checked only when no exact route matched.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

import orjson

from tollway.api.admin import AdminRoutes
from tollway.api.admin_api import AdminApi, register_audit
from tollway.api.admin_policy import register_policy
from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, send_bytes
from tollway.api.billing import register_billing
from tollway.api.cors import Cors, is_preflight, origin_of
from tollway.api.gemini import GeminiRoutes
from tollway.api.authz import require_key
from tollway.api.health import HealthRoutes
from tollway.api.metrics import MetricsRoute
from tollway.api.models import ModelRoutes
from tollway.api.openapi import openapi_document
from tollway.api.openapi_surfaces import GEMINI_VERBS
from tollway.api.operator_api import OPERATOR_PATHS, register_operator_routes
from tollway.api.passthrough import PASSTHROUGH_METHODS, PassthroughRoute
from tollway.api.portal import PortalRoute
from tollway.api.probes import ProbeRoutes
from tollway.api.realtime import PATHS as REALTIME_PATHS
from tollway.api.realtime import RealtimeRoute
from tollway.api.routing import ROUTING_PATHS, register_routing
from tollway.api.responses_state import ResponsesStateRoute
from tollway.api.unified import UnifiedRoute
from tollway.ask.service import AskService
from tollway.config import Settings
from tollway.errors import ProxyError, render
from tollway.passthrough.family import client_family
from tollway.providers.base import Endpoint
from tollway.server.limits import ConnectionTracker
from tollway.slugs import SLUG_RULE, is_slug
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
# OpenAI's routes that several clients also send without the /v1 prefix
UNPREFIXED = ("/chat/completions", "/completions", "/embeddings", "/responses")
# Azure OpenAI's surface: (operation, route name, endpoint); the key comes in `api-key`
AZURE: tuple[tuple[str, str, Endpoint], ...] = (
    ("/chat/completions", "azure.chat", Endpoint.CHAT),
    ("/completions", "azure.completions", Endpoint.COMPLETIONS),
    ("/embeddings", "azure.embeddings", Endpoint.EMBEDDINGS),
    ("/responses", "azure.responses", Endpoint.RESPONSES),
)


class Router:
    """Built once the state exists (in lifespan startup).

    `served_routes()` lists what `__call__` answers; /openapi.json and the README list the same
    (tests/proxy/test_openapi.py compares them and probes every route): change them together.
    """

    def __init__(self, state: AppState) -> None:
        self._state = state
        admin, health = AdminRoutes(state), HealthRoutes(state)
        self.admin = admin
        self.admin_api = AdminApi(state)
        register_audit(self.admin_api, state)
        register_policy(self.admin_api, state)
        register_billing(self.admin_api, state)
        self.unified: dict[str, UnifiedRoute] = {
            "/v1" + sub: UnifiedRoute(state, route, fmt, ep) for sub, route, fmt, ep in UNIFIED}
        self.unified.update({sub: self.unified["/v1" + sub] for sub in UNPREFIXED})
        azure = {op: UnifiedRoute(state, route, "openai", ep) for op, route, ep in AZURE}
        # AzureOpenAI sends deployment-less operations (responses) to /openai/..., the v1 API to /openai/v1/...
        self.unified.update({"/openai/v1" + op: r for op, r in azure.items()})
        self.unified["/openai/responses"] = azure["/responses"]
        self.azure_deployment = {op: r for op, r in azure.items() if op != "/responses"}
        self.gemini = GeminiRoutes(state)
        self.models = ModelRoutes(state, self.gemini)
        self.realtime = RealtimeRoute(state)
        self.byok: dict[str, dict[str, UnifiedRoute]] = {
            kind: {"/v1" + sub: UnifiedRoute(state, "proxy." + route, fmt, ep, byok=True)
                   for sub, route, fmt, ep in UNIFIED if fmt == kind}
            for kind in ("openai", "anthropic")}
        self.operator_api = AdminApi(state)
        register_operator_routes(self.operator_api, state, AskService(state, self.unified["/v1/chat/completions"]))
        register_routing(self.operator_api, state)
        self.portal = PortalRoute()
        self.passthrough = {kind: PassthroughRoute(state, kind, byok=True) for kind in ("openai", "anthropic")}
        # by whose client sent it (passthrough.family): Tollway's own credentials for that provider
        self.provider_passthrough = {kind: PassthroughRoute(state, kind, byok=False) for kind in ("openai", "anthropic")}
        self.responses_state = ResponsesStateRoute(state, self.provider_passthrough["openai"])
        probes = ProbeRoutes(state)
        self.get: dict[str, Handler] = {
            "/health": health.health,
            "/health/live": probes.live,
            "/health/ready": probes.ready,
            "/metrics": MetricsRoute(state),
            "/v1/models": self.models.list,
            "/models": self.models.list,
            "/openai/models": self.models.list,
            "/openai/v1/models": self.models.list,
            "/v1/records": admin.records,
            "/v1/stats": admin.stats,
            "/v1/me": admin.me,
            "/v1/projects": admin.projects,
            "/openapi.json": self._openapi,
        }
        self.get.update({p: self._upgrade_required for p in REALTIME_PATHS})
        self._openapi_body = orjson.dumps(openapi_document())

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path.startswith("/projects/"):
            slug, _, rest = path[10:].partition("/")
            if slug and "/" + rest in REALTIME_PATHS:
                return await self.realtime(scope, receive, send, path_project=slug)
        elif path in REALTIME_PATHS:
            return await self.realtime(scope, receive, send)
        await send({"type": "websocket.close", "code": 1008})  # refused at the handshake: HTTP 403

    @staticmethod
    async def _upgrade_required(scope: Scope, receive: Receive, send: Send) -> None:
        body = orjson.dumps({"error": {"message": f"{scope['path']} is a WebSocket endpoint: connect with an "
                                                  "Upgrade: websocket request.", "type": "invalid_request_error",
                                       "param": None, "code": "upgrade_required"}})
        await send_bytes(send, 426, body, [*JSON_HEADERS, (b"upgrade", b"websocket")])
    def served_routes(self) -> list[tuple[str, str]]:
        """Every (method, path template) this router answers, as /openapi.json names them."""
        out = [("POST", path) for path in self.unified]
        out += [(m, path) for path in self.get for m in ("GET", "HEAD")]
        out += [("POST", "/projects/{slug}" + path) for path in self.unified if path.startswith("/v1/")]
        out += [(m, "/projects/{slug}/v1/models") for m in ("GET", "HEAD")]
        out += [(m, f"/proxy/{kind}/v1/{{path}}") for kind in self.passthrough for m in PASSTHROUGH_METHODS]
        out += [(m, "/v1/records/{trace_id}") for m in ("GET", "HEAD")]
        out += [(m, "/v1/responses/{response_id}") for m in ("GET", "HEAD", "DELETE")]
        out += [(m, "/v1/responses/{response_id}/input_items") for m in ("GET", "HEAD")]
        out += [(m, "/v1/{path}") for m in PASSTHROUGH_METHODS]
        # the client surfaces with the model in the path (api.gemini, api.models, Azure's deployments)
        for verb in GEMINI_VERBS:
            out += [("POST", f"{prefix}/models/{{model}}:{verb}") for prefix in ("/v1beta", "/v1")]
            out += [("POST", f"/projects/{{slug}}{prefix}/models/{{model}}:{verb}") for prefix in ("/v1beta", "/v1")]
        out += [(m, p) for p in ("/v1beta/models", "/v1beta/models/{model}", "/v1/models/{model}") for m in ("GET", "HEAD")]
        out += [("POST", f"/openai/deployments/{{deployment}}{op}") for op in self.azure_deployment]
        for method, pattern in [*self.admin_api.routes(), *self.operator_api.routes()]:
            out += [(method, pattern), ("HEAD", pattern)] if method == "GET" else [(method, pattern)]
        out += [(m, "/v1/projects/{slug}/records") for m in ("GET", "HEAD")]
        out += [("GET", "/"), ("HEAD", "/")]  # the portal (and its /assets/ files, not listed one by one)
        return out

    async def _openapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await require_key(self._state, scope, send):
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
                if method == "POST" and rest in self.unified and rest.startswith("/v1/"):
                    return await self.unified[rest](scope, receive, send, path_project=slug)
                if method in ("GET", "HEAD") and rest == "/v1/models":
                    if not is_slug(slug):
                        return await bad_request(send, f"The project slug in /projects/{{slug}}/ must be {SLUG_RULE}.")
                    return await self.get[rest](scope, receive, send)
                if rest.startswith("/v1beta/models"):
                    return await self.gemini(scope, receive, send, rest[14:], path_project=slug)
                if rest.startswith("/v1/models/") and ":" in rest and method == "POST":  # google-genai's default
                    return await self.gemini(scope, receive, send, rest[10:], path_project=slug)
            return await not_found(scope, send)
        if path.startswith("/v1beta/"):
            if path.startswith("/v1beta/models") and (len(path) == 14 or path[14] == "/"):
                return await self.gemini(scope, receive, send, path[14:])
            return await not_found(scope, send, fmt="gemini")
        if path.startswith("/openai/deployments/") and method == "POST":
            deployment, _, op = path[20:].partition("/")
            route = self.azure_deployment.get("/" + op)
            if route is not None and deployment:
                return await route(scope, receive, send, path_model=unquote(deployment))
            return await not_found(scope, send)
        if path.startswith("/proxy/"):
            kind, _, rest = path[7:].partition("/")
            rest = "/" + rest
            if kind in self.byok and rest.startswith("/v1/") and method in PASSTHROUGH_METHODS:
                route = self.byok[kind].get(rest) if method == "POST" else None
                if route is not None:
                    return await route(scope, receive, send)
                return await self.passthrough[kind](scope, receive, send, prefix=f"/proxy/{kind}/v1")
            return await not_found(scope, send)
        if path.startswith("/admin/"):
            return await self.admin_api(scope, receive, send)
        if path.startswith("/v1/records/") and method in ("GET", "HEAD"):
            return await self.admin.record(scope, receive, send, trace_id=path[12:])
        if path in OPERATOR_PATHS or path in ROUTING_PATHS or path.startswith("/v1/providers/"):
            return await self.operator_api(scope, receive, send)
        if path.startswith("/v1/projects/") and method in ("GET", "HEAD"):
            slug, _, rest = path[13:].partition("/")
            if slug and rest == "records":
                return await self.admin.records(scope, receive, send, project=unquote(slug))
            return await not_found(scope, send)
        if path.startswith("/v1/responses/") and method in ("GET", "DELETE", "HEAD"):
            if path.count("/") == 3:
                return await self.responses_state(scope, receive, send, response_id=path[14:])
            if path.count("/") == 4 and path.endswith("/input_items") and method != "DELETE":
                return await self.responses_state(scope, receive, send, response_id=path[14:-12], input_items=True)
        if path.startswith("/v1/models/"):
            if ":" in path and method == "POST":  # google-genai asks Gemini's API under /v1 by default
                return await self.gemini(scope, receive, send, path[10:])
            if method in ("GET", "HEAD") and path.count("/") == 3:
                return await self.models.get(scope, receive, send, path[11:])
        if path.startswith("/v1/") and method in PASSTHROUGH_METHODS:
            family = client_family(path, dict(scope["headers"]))
            if family == "gemini":  # never another provider's: Gemini's own routes live under /v1beta/
                return await not_found(scope, send, fmt="gemini")
            return await self.provider_passthrough[family](scope, receive, send, prefix="/v1")
        return await not_found(scope, send)


async def bad_request(send: Send, message: str) -> None:
    status, body = render(ProxyError("invalid_request", message), "openai")
    await send_bytes(send, status, body, JSON_HEADERS)


async def not_found(scope: Scope, send: Send, fmt: str = "openai") -> None:
    err = ProxyError("not_found", f"No route for {scope['method']} {scope['path']}.")
    status, body = render(err, fmt if fmt in ("anthropic", "gemini") else "openai")  # type: ignore[arg-type]
    await send_bytes(send, status, body, JSON_HEADERS)


class TollwayApp:
    """ASGI entry point: lifespan builds AppState and the Router; http goes to the Router."""

    def __init__(self, settings: Settings, connections: ConnectionTracker | None = None) -> None:
        self.settings = settings
        self.connections = connections
        self.state: AppState | None = None
        self._router: Router | None = None
        self._cors = Cors(settings.server.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            assert self._router is not None, "lifespan did not run"
            if scope["method"] == "OPTIONS" and is_preflight(scope):  # answered here, never forwarded
                return await self._cors.preflight(scope, receive, send)
            if self._cors.enabled:
                origin = origin_of(scope)
                if self._cors.allowed(origin):
                    send = self._cors.wrap(send, origin)  # type: ignore[arg-type]
            return await self._router(scope, receive, send)
        if scope["type"] == "websocket":
            assert self._router is not None, "lifespan did not run"
            if self._cors.enabled and origin_of(scope) and not self._cors.allowed(origin_of(scope)):
                return await send({"type": "websocket.close", "code": 1008})  # a browser page of another origin
            return await self._router.websocket(scope, receive, send)
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg: dict[str, Any] = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    self.state = await AppState.open(self.settings)
                    self.state.connections = self.connections
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


def build_app(settings: Settings, connections: ConnectionTracker | None = None) -> TollwayApp:
    """`connections`: the server's connection tracker, when the server is Tollway's own (for /health)."""
    return TollwayApp(settings, connections)


def app_from_env() -> TollwayApp:
    """The app of one worker of `tollway serve --workers N`: the parent's settings, loaded again."""
    import json
    import os
    from pathlib import Path

    from tollway.config import load_settings
    from tollway.logs import setup_logging

    args = json.loads(os.environ["TOLLWAY_SERVE_ARGS"])
    settings = load_settings(Path(args["config"]) if args["config"] else None, demo=args["demo"])
    settings = settings.model_copy(update={
        "server": settings.server.model_copy(update={"host": args["host"], "port": args["port"]}),
        "logging": settings.logging.model_copy(update={"level": args["log_level"], "format": args["log_format"]})})
    setup_logging(args["log_level"], args["log_format"])
    return TollwayApp(settings, None)
