"""A router over real settings, catalog, price book and health board, without a server: for
ranking and health tests that drive the board directly (the attempt loop's side)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from tollway.config import build_settings
from tollway.pipeline.context import RequestContext
from tollway.pricing import PriceBook
from tollway.providers.registry import build_provider
from tollway.providers.transport import HttpTransport
from tollway.routing.catalog import Catalog
from tollway.routing.health import MemoryHealth
from tollway.routing.outcome import Outcome
from tollway.routing.router import Router
from tollway.state import price_overrides
from tollway.tokens import TokenCounter

PROVIDERS = [
    {"id": "openai", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-x",
     "models": ["gpt-4o", "gpt-4o-mini", "gpt-4.1*", "text-embedding-3-small"]},
    {"id": "anthropic", "kind": "anthropic", "base_url": "http://127.0.0.1:9", "api_key": "sk-y",
     "models": ["claude-*"]},
]


def make_router(**config: Any) -> Router:
    settings = build_settings({"providers": PROVIDERS, **config}, env={})
    http = HttpTransport(1.0, 1.0)
    tokens = TokenCounter()
    prices = PriceBook(price_overrides(settings))
    catalog = Catalog([build_provider(ps, http, tokens) for ps in settings.providers], settings.aliases,
                      known_models=prices.known_models)
    health = MemoryHealth(settings.routing.breaker, settings.routing.ewma_alpha)
    state = SimpleNamespace(settings=settings, catalog=catalog, prices=prices, tokens=tokens, health=health,
                            engine=None)
    return Router(state)  # type: ignore[arg-type]


def request(model: str, body: dict[str, Any] | None = None, headers: dict[bytes, bytes] | None = None,
            endpoint: str = "chat") -> RequestContext:
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], **(body or {})}
    ctx = RequestContext(route="openai.chat", wire_format="openai", endpoint=endpoint, method="POST",
                         path="/v1/chat/completions", headers=headers or {})
    ctx.json = payload
    ctx.body = orjson.dumps(payload)
    ctx.model = model
    return ctx


def plan(router: Router, model: str, **kw: Any) -> list[str]:
    return [d.name for d in router.plan(request(model, **kw))]


def fail(router: Router, name: str, times: int = 1, status: int | None = 503, credential: str | None = None) -> None:
    dep = next(d for d in router.table.every_deployment() if d.name == name)
    for _ in range(times):
        router.health.started(dep, credential)
        router.health.finished(dep, credential, Outcome(ok=False, status=status, error_type="upstream_error",
                                                        latency_s=0.01))


def succeed(router: Router, name: str, latency: float = 0.1, times: int = 1, credential: str | None = None) -> None:
    dep = next(d for d in router.table.every_deployment() if d.name == name)
    for _ in range(times):
        router.health.started(dep, credential)
        router.health.finished(dep, credential, Outcome(ok=True, status=200, error_type=None, latency_s=latency,
                                                        ttft_s=latency / 2))
