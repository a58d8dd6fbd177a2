"""Pass-through: any other `/v1/*` path to the OpenAI provider, and `/proxy/<kind>/v1/*`.

Method, query, headers and body go upstream intact (multipart included); the answer comes
back as it is, streams unbuffered. On `/v1/*` Tollway's provider key replaces the caller's
credentials; on `/proxy/<kind>/v1/*` the caller's own key goes through untouched.
Every call is still recorded, with usage when the answer carries any.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import orjson

from tollway.api.asgi import DisconnectWatch, Receive, Scope, Send, read_body, relay_headers
from tollway.api.unified import send_error
from tollway.errors import ProxyError
from tollway.pipeline import upstream
from tollway.pipeline.attribution import ATTRIBUTION_HEADERS
from tollway.pipeline.context import RequestContext
from tollway.pipeline.stage import run_stages
from tollway.providers.anthropic import usage_from_anthropic
from tollway.providers.base import UpstreamRequest
from tollway.providers.openai import usage_from_openai
from tollway.routing.catalog import Deployment

if TYPE_CHECKING:
    from tollway.state import AppState

# methods passed through on /v1/{path} and /proxy/<kind>/v1/{path} (TRACE, CONNECT and others: 404)
PASSTHROUGH_METHODS: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

_HOP = frozenset({b"host", b"connection", b"keep-alive", b"content-length", b"transfer-encoding", b"te",
                  b"upgrade", b"proxy-authorization", b"proxy-connection", b"accept-encoding", b"trailer"})
_CREDENTIALS = frozenset({b"authorization", b"x-api-key", b"api-key"})


def upstream_headers(client: list[tuple[bytes, bytes]], keep_credentials: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in client:
        k = k.lower()
        if k in _HOP or k in ATTRIBUTION_HEADERS or k.startswith(b"x-tollway-"):
            continue
        if not keep_credentials and k in _CREDENTIALS:
            continue
        out[k.decode("latin-1")] = v.decode("latin-1")
    return out


class PassthroughRoute:
    """`kind` is the provider kind; `byok` says whose credentials go upstream."""

    def __init__(self, state: "AppState", kind: str, byok: bool) -> None:
        self._state = state
        self.kind = kind
        self.byok = byok
        self.route = f"proxy.{kind}.passthrough" if byok else f"passthrough.{kind}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send, subpath: str) -> None:
        fmt = "anthropic" if self.kind == "anthropic" else "openai"
        ctx = RequestContext(self.route, fmt, "passthrough", scope["method"], scope["path"],  # type: ignore[arg-type]
                             dict(scope["headers"]), receive, send)
        ctx.byok = self.byok
        state = self._state

        async def handle(ctx: RequestContext) -> None:
            if self.byok:
                provider, transport = state.byok_provider(self.kind)
            else:
                found = state.catalog.first_of_kind(self.kind)
                if found is None:
                    raise ProxyError("not_found", f"No {self.kind} provider is configured, so {ctx.path} "
                                                  "cannot be passed through.")
                provider, transport = found
            await self.forward(ctx, scope, receive, send, subpath, provider, transport)

        async def on_error(ctx: RequestContext, err: ProxyError) -> None:
            await send_error(ctx, send, err)

        await run_stages(ctx, state.stages, handle, on_error)

    async def forward(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send, subpath: str,
                      provider, transport) -> None:
        state = self._state
        ctx.provider = provider
        ctx.body = await read_body(receive, ctx.headers, state.settings.server.max_body_bytes)
        ctype = ctx.headers.get(b"content-type", b"")
        if ctype.startswith(b"application/json") and ctx.body:
            try:
                obj = orjson.loads(ctx.body)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                ctx.json = obj
                if isinstance(obj.get("model"), str):
                    ctx.model = obj["model"]
                    ctx.deployment = Deployment(provider, transport, ctx.model)
                ctx.stream = obj.get("stream") is True
                if ctx.stream and state.metrics is not None:
                    state.metrics.stream_opened(ctx)
        headers = upstream_headers(scope["headers"], keep_credentials=self.byok)
        if not self.byok:
            headers.update(provider.auth_headers())
        url = provider.passthrough_url(subpath, scope.get("query_string", b""))
        resp = await upstream.send(ctx, transport, UpstreamRequest(ctx.method, url, headers, ctx.body or None),
                                   provider.id, provider.kind, ctx.model or "")
        try:
            await self._relay(ctx, resp, receive, send)
        finally:
            resp.release()
            upstream.finish(ctx)

    async def _relay(self, ctx: RequestContext, resp, receive: Receive, send: Send) -> None:
        ctx.status = resp.status
        hdrs = relay_headers(resp.raw_headers)
        hdrs.extend(ctx.response_headers)
        streaming = any(k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                        for k, v in resp.raw_headers)
        if not streaming:
            body = await upstream.read(ctx, resp)
            if resp.status >= 400:
                ctx.error_type = "provider_error"
            elif body[:1] == b"{":
                try:
                    obj = orjson.loads(body)
                except orjson.JSONDecodeError:
                    obj = None
                if isinstance(obj, dict) and isinstance(obj.get("usage"), dict):
                    u = obj["usage"]
                    ctx.usage = usage_from_anthropic(u) if self.kind == "anthropic" else usage_from_openai(u)
                    if isinstance(obj.get("model"), str):
                        ctx.model_served = obj["model"]
            hdrs.append((b"content-length", str(len(body)).encode()))
            hdrs.append(ctx.overhead_header())
            ctx.response_started = True
            await send({"type": "http.response.start", "status": resp.status, "headers": hdrs})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        hdrs.append(ctx.overhead_header())
        ctx.response_started = True
        await send({"type": "http.response.start", "status": resp.status, "headers": hdrs})
        watch = DisconnectWatch(receive).start()
        try:
            async for chunk in resp.iter_chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            ctx.client_went_away()
            return
        except ProxyError as e:
            ctx.incomplete = True
            ctx.error_type = e.error_type
        finally:
            watch.stop()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
