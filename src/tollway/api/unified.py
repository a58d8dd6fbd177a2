"""The unified proxy routes: decode, run the stages, route the model, forward.

One `UnifiedRoute` per (surface, endpoint): `/v1/chat/completions` is
`UnifiedRoute(state, "openai.chat", "openai", Endpoint.CHAT)`. The `/proxy/<kind>/v1/...`
copies of these routes set `byok`: the caller's own provider key goes upstream untouched
and the model goes to that provider kind as named, without catalog routing.

Surfaces that name the model in the path (Gemini's `/v1beta/models/{model}:verb`, Azure's
`/openai/deployments/{deployment}/...`) pass it as `path_model`; it wins over the body's.
Gemini says whether to stream in the path too (`stream`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tollway.api.asgi import Receive, Scope, Send, read_body, send_bytes
from tollway.errors import ProxyError, render
from tollway.pipeline.context import RequestContext
from tollway.pipeline.stage import run_stages
from tollway.providers.base import COUNTING_ENDPOINTS, Endpoint

_NEVER_STREAMED = frozenset({Endpoint.EMBEDDINGS, Endpoint.EMBED_CONTENT, *COUNTING_ENDPOINTS})

if TYPE_CHECKING:
    from tollway.state import AppState


def parse_json_body(body: bytes) -> dict[str, Any]:
    if not body:
        raise ProxyError("invalid_request", "Request body is empty; expected a JSON object.")
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ProxyError("invalid_request", f"Request body is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ProxyError("invalid_request", "Request body must be a JSON object.")
    return obj


async def send_error(ctx: RequestContext, send: Send, err: ProxyError) -> None:
    status, body = render(err, ctx.wire_format)
    ctx.response_started = True
    await send_bytes(send, status, body, ((b"content-type", b"application/json"),
                                          (b"x-tollway-trace-id", ctx.trace_id.encode())))


class UnifiedRoute:
    __slots__ = ("_state", "route", "fmt", "endpoint", "byok_kind")

    def __init__(self, state: "AppState", route: str, fmt: str, endpoint: Endpoint,
                 byok_kind: str | None = None) -> None:
        self._state = state
        self.route = route
        self.fmt = fmt
        self.endpoint = endpoint
        self.byok_kind = byok_kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path_project: str | None = None,
                       path_model: str | None = None, stream: bool | None = None) -> None:
        ctx = RequestContext(self.route, self.fmt, self.endpoint, scope["method"], scope["path"],  # type: ignore[arg-type]
                             dict(scope["headers"]))
        ctx.path_project = path_project
        state = self._state

        async def handle(ctx: RequestContext) -> None:
            ctx.body = await read_body(receive, ctx.headers, state.settings.server.max_body_bytes)
            body = ctx.json = parse_json_body(ctx.body)
            model = path_model if path_model is not None else body.get("model")
            if not isinstance(model, str) or not model:
                raise ProxyError("invalid_request", "The request must name a model (a non-empty string).",
                                 param="model")
            ctx.model = model
            ctx.stream = (body.get("stream") is True if stream is None else stream) and (
                self.endpoint not in _NEVER_STREAMED)
            if self.byok_kind is not None:
                ctx.byok = True
                ctx.deployment = state.byok_deployment(self.byok_kind, model)
            else:
                ctx.deployment = state.catalog.require(model, self.endpoint)
            await state.forwarder.forward(ctx, receive, send)

        async def on_error(ctx: RequestContext, err: ProxyError) -> None:
            await send_error(ctx, send, err)

        await run_stages(ctx, state.stages, handle, on_error)

