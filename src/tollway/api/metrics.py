"""GET /metrics: Prometheus text format (a viewer or admin key, or open with `[metrics] public = true`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST

from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, send_bytes
from tollway.api.authz import authorize
from tollway.errors import ProxyError, render

if TYPE_CHECKING:
    from tollway.state import AppState

_HEADERS = ((b"content-type", CONTENT_TYPE_LATEST.encode()), (b"cache-control", b"no-store"))


class MetricsRoute:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self._state.metrics
        if metrics is None:
            status, body = render(ProxyError("not_found", "Metrics are off ([metrics] enabled = false)."), "openai")
            return await send_bytes(send, status, body, JSON_HEADERS)
        if not metrics.settings.public:
            try:
                authorize(self._state, scope, "viewer")
            except ProxyError as e:
                status, body = render(e, "openai")
                return await send_bytes(send, status, body, JSON_HEADERS)
        tracing = self._state.tracing
        body = await metrics.scrape(self._state.ledger, tracing.exporter if tracing is not None else None)
        await send_bytes(send, 200, body, _HEADERS)
