"""GET and DELETE /v1/responses/{id}: responses Tollway stored (translated providers) first;
any other id goes to the OpenAI provider, which keeps its own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.api.asgi import Receive, Scope, Send, send_json
from tollway.api.passthrough import PassthroughRoute
from tollway.api.unified import send_error
from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext
from tollway.pipeline.stage import run_stages

if TYPE_CHECKING:
    from tollway.state import AppState


class ResponsesStateRoute:
    def __init__(self, state: "AppState", passthrough: PassthroughRoute) -> None:
        self._state = state
        self._passthrough = passthrough

    async def __call__(self, scope: Scope, receive: Receive, send: Send, response_id: str) -> None:
        ctx = RequestContext("openai.responses_state", "openai", "passthrough", scope["method"], scope["path"],
                             dict(scope["headers"]), receive, send)
        state = self._state

        async def handle(ctx: RequestContext) -> None:
            store = state.responses
            if ctx.method == "DELETE":
                deleted = await store.delete(response_id)
                if deleted:
                    ctx.status = 200
                    ctx.response_started = True
                    await send_json(send, 200, {"id": response_id, "object": "response", "deleted": True},
                                    [*ctx.response_headers, ctx.overhead_header()])
                    return
            else:
                found = await store.get(response_id)
                if found is not None:
                    ctx.status = 200
                    ctx.response_started = True
                    await send_json(send, 200, found[0], [*ctx.response_headers, ctx.overhead_header()])
                    return
            upstream = state.catalog.first_of_kind("openai")
            if upstream is None:
                raise ProxyError("not_found", f"No response found with id '{response_id}'.")
            ctx.route = "passthrough.openai"
            await self._passthrough.forward(ctx, scope, receive, send, "/responses/" + response_id, *upstream)

        async def on_error(ctx: RequestContext, err: ProxyError) -> None:
            await send_error(ctx, send, err)

        await run_stages(ctx, state.stages, handle, on_error)
