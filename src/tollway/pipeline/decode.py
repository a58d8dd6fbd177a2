"""The decode stage of a model call: read the body, parse it, name the model and the stream flag.

It runs after auth (an unauthenticated caller never makes Tollway read a body) and before
every stage that looks at the request (guard, route, policy, cache).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tollway.api.asgi import read_body
from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext
from tollway.providers.base import COUNTING_ENDPOINTS, Endpoint

if TYPE_CHECKING:
    from tollway.state import AppState

_NO_STREAM = frozenset({Endpoint.EMBEDDINGS, Endpoint.EMBED_CONTENT, *COUNTING_ENDPOINTS})


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


class DecodeStage:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    async def before(self, ctx: RequestContext) -> None:
        assert ctx.receive is not None
        ctx.body = await read_body(ctx.receive, ctx.headers, self._state.settings.server.max_body_bytes)
        body = ctx.json = parse_json_body(ctx.body)
        # Gemini's and Azure's surfaces name the model in the path (and Gemini streaming too)
        model = ctx.path_model if ctx.path_model is not None else body.get("model")
        streamed = body.get("stream") is True if ctx.path_stream is None else ctx.path_stream
        ctx.stream = streamed and ctx.endpoint not in _NO_STREAM
        if model is None and ctx.endpoint == Endpoint.RESPONSES and isinstance(body.get("prompt"), dict):
            return self._opened(ctx)  # a stored prompt names the model: the route stage sends it to OpenAI
        if not isinstance(model, str) or not model:
            raise ProxyError("invalid_request", "The request must name a model (a non-empty string).",
                             param="model")
        ctx.model = model
        self._opened(ctx)

    def _opened(self, ctx: RequestContext) -> None:
        if ctx.stream and self._state.metrics is not None:
            self._state.metrics.stream_opened(ctx)

    async def after(self, ctx: RequestContext) -> None:
        return None
