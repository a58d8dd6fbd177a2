"""The unified proxy routes: build the request context and run the model-call stages.

One `UnifiedRoute` per (surface, endpoint): `/v1/chat/completions` is
`UnifiedRoute(state, "openai.chat", "openai", Endpoint.CHAT)`. The `/proxy/<kind>/v1/...`
copies of these routes set `byok`: the caller's own provider key goes upstream untouched
and the model goes to that provider kind as named, without catalog routing.
What happens to a call is the stage list `AppState.call_stages` (see `pipeline.stage`).

Surfaces that name the model in the path (Gemini's `/v1beta/models/{model}:verb`, Azure's
`/openai/deployments/{deployment}/...`) pass it as `path_model`; the decode stage prefers it to
the body's. Gemini says whether to stream in the path too (`stream`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.api.asgi import Receive, Scope, Send, send_bytes
from tollway.errors import ProxyError, render
from tollway.pipeline.context import RequestContext
from tollway.pipeline.decode import parse_json_body
from tollway.pipeline.stage import run_stages
from tollway.providers.base import Endpoint

if TYPE_CHECKING:
    from tollway.state import AppState

__all__ = ["UnifiedRoute", "parse_json_body", "send_error"]


async def send_error(ctx: RequestContext, send: Send, err: ProxyError) -> None:
    status, body = render(err, ctx.wire_format)
    ctx.response_started = True
    await send_bytes(send, status, body, [(b"content-type", b"application/json"), *ctx.response_headers,
                                          ctx.overhead_header()])


class UnifiedRoute:
    __slots__ = ("_state", "route", "fmt", "endpoint", "byok")

    def __init__(self, state: "AppState", route: str, fmt: str, endpoint: Endpoint, byok: bool = False) -> None:
        self._state = state
        self.route = route
        self.fmt = fmt
        self.endpoint = endpoint
        self.byok = byok

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path_project: str | None = None,
                       path_model: str | None = None, stream: bool | None = None) -> None:
        ctx = RequestContext(self.route, self.fmt, self.endpoint, scope["method"], scope["path"],  # type: ignore[arg-type]
                             dict(scope["headers"]), receive, send)
        ctx.path_project = path_project
        ctx.path_model, ctx.path_stream = path_model, stream
        ctx.byok = self.byok
        ctx.key = scope.get("tollway.caller")  # set only by Tollway's own in-process calls (Ask)
        state = self._state

        # ctx.send, not send: a stage may wrap it (the guard keeps bodies for the ledger)
        async def handle(ctx: RequestContext) -> None:
            await state.forwarder.forward(ctx, receive, ctx.send)  # type: ignore[arg-type]

        async def on_error(ctx: RequestContext, err: ProxyError) -> None:
            await send_error(ctx, ctx.send, err)  # type: ignore[arg-type]

        await run_stages(ctx, state.call_stages, handle, on_error)
