"""The router's own routes (registered on an `AdminApi` table: same roles and error shapes):

- `POST /v1/route/explain` (any key): a chat / messages / responses body (+ optional `profile`,
  `endpoint`): per layer what was kept, removed and why, the scores and the plan. It runs
  `Router.plan` itself, the code real routing runs, without calling a provider.
- `GET /v1/profiles` (any key): the routing profiles.
- `GET /v1/catalog` (any key): every routable model with provider, capabilities, context window,
  prices, observed latency, TTFT, error rate and quality score.
- `GET /v1/health/deployments` (viewer): each deployment's breaker, EWMAs and in-flight calls.
- `POST /v1/signals` (any key): quality feedback on a call; `GET /v1/signals` (viewer): per model.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import orjson

from tollway.api.admin_api import AdminApi, AdminRequest
from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext
from tollway.providers.base import Endpoint

if TYPE_CHECKING:
    from tollway.routing.catalog import Deployment
    from tollway.routing.table import ModelRoute
    from tollway.state import AppState

ROUTING_PATHS = frozenset({"/v1/route/explain", "/v1/profiles", "/v1/catalog", "/v1/health/deployments",
                           "/v1/signals"})
_ENDPOINTS = {"chat": (Endpoint.CHAT, "openai", "openai.chat"), "messages": (Endpoint.MESSAGES, "anthropic",
              "anthropic.messages"), "responses": (Endpoint.RESPONSES, "openai", "openai.responses")}


def _money(x: Any) -> str | None:
    return None if x is None else f"{x:f}"


def deployment_view(state: "AppState", d: "Deployment") -> dict[str, Any]:
    router = state.router
    info = router.table.info_of(d)
    health = state.health.view(d.name, time.time()) if hasattr(state.health, "view") else {}
    return {
        "deployment": d.name, "provider": d.provider.id, "provider_kind": d.provider.kind, "model": d.model,
        "endpoints": sorted(str(e.value) for e in d.provider.endpoints),
        "capabilities": sorted(info.capabilities) if info.capabilities is not None else None,
        "context_window": info.context_window,
        "pricing": None if info.input_per_mtok is None else {
            "input_per_mtok": _money(info.input_per_mtok), "output_per_mtok": _money(info.output_per_mtok)},
        "weight": d.weight, "priority": d.priority, "max_concurrency": d.max_concurrency,
        "latency_ms": health.get("latency_ewma_ms"), "ttft_ms": health.get("ttft_ewma_ms"),
        "error_rate": health.get("error_rate"), "breaker": health.get("state"),
        "quality": router.quality.score(d), "quality_signals": router.quality.count(d),
    }


def catalog_entry(state: "AppState", name: str, route: "ModelRoute") -> dict[str, Any]:
    deps = [deployment_view(state, d) for d in route.deployments]
    first = deps[0] if deps else {}
    keys = ("provider", "provider_kind", "capabilities", "context_window", "pricing", "latency_ms", "ttft_ms",
            "error_rate", "quality")
    return {"id": name, "object": "model", "policy": route.policy, **{k: first.get(k) for k in keys},
            "deployments": deps}


def catalog(state: "AppState") -> list[dict[str, Any]]:
    table = state.router.table
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, route in table.models.items():
        out.append(catalog_entry(state, name, route))
        seen.add(name)
    if table.auto is not None:
        out.append(catalog_entry(state, "auto", table.auto))
        seen.add("auto")
    for mid, _ in table.catalog.listed_models():
        if mid in seen:
            continue
        dep = table.catalog.resolve(mid)
        if dep is not None:
            out.append(catalog_entry(state, mid, table.for_plain(dep)))
            seen.add(mid)
    return out


def explain_context(req: AdminRequest, body: dict[str, Any]) -> RequestContext:
    asked = body.get("endpoint")
    if asked is None:
        h = dict(req.scope["headers"])
        asked = ("responses" if "input" in body and "messages" not in body else
                 "messages" if b"anthropic-version" in h or isinstance(body.get("system"), (str, list)) else "chat")
    if asked not in _ENDPOINTS:
        raise ProxyError("invalid_request", f"endpoint must be one of {', '.join(_ENDPOINTS)}.", param="endpoint")
    endpoint, fmt, route = _ENDPOINTS[asked]
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ProxyError("invalid_request", "The body needs a model (a name, an alias or auto).", param="model")
    call = {k: v for k, v in body.items() if k not in ("profile", "endpoint")}
    headers = {k.lower(): v for k, v in req.scope["headers"]}
    ctx = RequestContext(route=route, wire_format=fmt, endpoint=endpoint.value, method="POST",  # type: ignore[arg-type]
                         path="/v1/route/explain", headers=headers)
    ctx.body = orjson.dumps(call)
    ctx.json = call
    ctx.model = model
    ctx.key = req.caller
    ctx.key_id = req.caller.id if req.caller is not None else None
    return ctx


def register_routing(api: AdminApi, state: "AppState") -> None:
    async def explain(req: AdminRequest) -> tuple[int, Any]:
        body = await req.json()
        profile = body.get("profile")
        if profile is not None and not isinstance(profile, str):
            raise ProxyError("invalid_request", "profile is a profile name.", param="profile")
        ctx = explain_context(req, body)
        trace: list[dict[str, Any]] = []
        router = state.router
        out: dict[str, Any] = {"model": ctx.model, "policy": None, "profile": None, "layers": trace, "plan": []}
        try:
            plan = router.plan(ctx, trace, profile_name=profile)
        except ProxyError as e:
            out["error"] = {"status": e.status, "message": e.message, "code": e.code}
            return 200, out
        rt = ctx.route_trace or {}
        out.update(policy=rt.get("policy"), profile=rt.get("profile"), plan=[d.name for d in plan],
                   cost_estimate=rt.get("cost_estimate"))
        return 200, out

    async def profiles(req: AdminRequest) -> tuple[int, Any]:
        data = [p.model_dump(mode="json") for p in state.settings.routing.profiles]
        mine = state.router.key_profiles.get(req.caller.id) if req.caller is not None else None
        return 200, {"object": "list", "data": data, "key_profile": mine}

    async def get_catalog(req: AdminRequest) -> tuple[int, Any]:
        return 200, {"object": "list", "data": catalog(state)}

    async def health(req: AdminRequest) -> tuple[int, Any]:
        board = state.health
        now = time.time()
        deps = state.router.table.every_deployment()
        names = {d.name for d in deps}
        data = [{"deployment": d.name, "provider": d.provider.id, "model": d.model, **board.view(d.name, now)}  # type: ignore[attr-defined]
                for d in deps]
        for name in sorted(set(getattr(board, "stats", {})) | {k for k in getattr(board, "breakers", {}) if "|" not in k}):
            if name not in names:
                provider, _, model = name.partition(":")
                data.append({"deployment": name, "provider": provider, "model": model, **board.view(name, now)})  # type: ignore[attr-defined]
        sync = getattr(board, "sync", None)
        return 200, {"object": "list", "data": data, "credentials": board.credentials_view(now),  # type: ignore[attr-defined]
                     "shared": sync is not None, "breaker": state.settings.routing.breaker.model_dump()}

    async def add_signal(req: AdminRequest) -> tuple[int, Any]:
        body = await req.json()
        trace_id = body.get("trace_id")
        if not isinstance(trace_id, str) or not 1 <= len(trace_id) <= 36:
            raise ProxyError("invalid_request", "trace_id is the x-tollway-trace-id of a call.", param="trace_id")
        score = body.get("score")
        thumbs = body.get("thumbs")
        if score is None and thumbs is not None:
            if thumbs not in ("up", "down"):
                raise ProxyError("invalid_request", "thumbs is \"up\" or \"down\".", param="thumbs")
            score = 1.0 if thumbs == "up" else 0.0
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score) \
                or not 0 <= score <= 1:
            raise ProxyError("invalid_request", "Send a score from 0 to 1, or thumbs \"up\" / \"down\".", param="score")
        label = body.get("label")
        if label is not None and (not isinstance(label, str) or len(label) > 200):
            raise ProxyError("invalid_request", "label is a string of at most 200 characters.", param="label")
        from tollway.storage.signals import add_signal as store

        row = await store(state.engine, trace_id, float(score), label, req.caller.id if req.caller else None)
        return 201, {"object": "signal", **row}

    async def list_signals(req: AdminRequest) -> tuple[int, Any]:
        from tollway.storage.signals import pending_count, quality_by_model

        return 200, {"object": "list", "data": await quality_by_model(state.engine),
                     "unmatched": await pending_count(state.engine)}

    api.add("POST", "/v1/route/explain", "any", explain)
    api.add("GET", "/v1/profiles", "any", profiles)
    api.add("GET", "/v1/catalog", "any", get_catalog)
    api.add("GET", "/v1/health/deployments", "viewer", health)
    api.add("POST", "/v1/signals", "any", add_signal)
    api.add("GET", "/v1/signals", "viewer", list_signals)
