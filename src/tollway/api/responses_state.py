"""GET / DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items.

Responses Tollway stored (translated providers) are answered from its store, for the key that
created them only (`pipeline.responses_history.owner_of`): another key's, or an expired one, is
a 404 and goes nowhere else. A response the OpenAI provider keeps goes there, for the key whose
call created it only (`ResponseStore.upstream_owner`); an id Tollway never saw goes there only
for the master key, or when no keys are configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from tollway.api.asgi import Receive, Scope, Send, send_json
from tollway.api.passthrough import PassthroughRoute
from tollway.api.unified import send_error
from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext
from tollway.pipeline.responses_history import owner_of
from tollway.pipeline.stage import run_stages
from tollway.storage.responses import Found

if TYPE_CHECKING:
    from tollway.state import AppState


def page_of_items(items: list[dict[str, Any]], query: bytes) -> dict[str, Any]:
    """An OpenAI list of input items, honouring `limit` (1–100, default 20), `order` (`asc` |
    `desc`, default `desc`) and `after` (an item id); `include` is accepted and changes nothing."""
    limit, order, after = 20, "desc", None
    for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if k == "limit":
            if not v.isdigit() or not 1 <= int(v) <= 100:
                raise ProxyError("invalid_request", "limit must be an integer from 1 to 100.", param="limit")
            limit = int(v)
        elif k == "order":
            if v not in ("asc", "desc"):
                raise ProxyError("invalid_request", "order must be 'asc' or 'desc'.", param="order")
            order = v
        elif k == "after":
            after = v
        elif k not in ("include", "include[]"):
            raise ProxyError("invalid_request", f"Unknown query parameter {k!r}.", param=k)
    ordered = items if order == "asc" else items[::-1]
    start = 0
    if after is not None:
        ids = [it.get("id") for it in ordered]
        if after not in ids:
            raise ProxyError("invalid_request", f"after: no input item with id {after!r}.", param="after")
        start = ids.index(after) + 1
    page = ordered[start:start + limit]
    return {"object": "list", "data": page, "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None, "has_more": start + limit < len(ordered)}


class ResponsesStateRoute:
    def __init__(self, state: "AppState", passthrough: PassthroughRoute) -> None:
        self._state = state
        self._passthrough = passthrough

    async def __call__(self, scope: Scope, receive: Receive, send: Send, response_id: str,
                       input_items: bool = False) -> None:
        ctx = RequestContext("openai.responses_state", "openai", "passthrough", scope["method"], scope["path"],
                             dict(scope["headers"]), receive, send)
        state = self._state

        async def answer(obj: dict[str, Any]) -> None:
            ctx.status = 200
            ctx.response_started = True
            await send_json(send, 200, obj, [*ctx.response_headers, ctx.overhead_header()])

        async def handle(ctx: RequestContext) -> None:
            store, owner = state.responses, owner_of(state, ctx)
            ctx.metered, ctx.cost_note = True, "stored response: no new call"
            if input_items:
                found, items = await store.input_items(response_id, owner)
                if found is Found.MINE:
                    return await answer(page_of_items(items, scope.get("query_string", b"")))
            elif ctx.method == "DELETE":
                found = await store.delete(response_id, owner)
                if found is Found.MINE:
                    return await answer({"id": response_id, "object": "response", "deleted": True})
            else:
                found, response = await store.find(response_id, owner)
                if found is Found.MINE and response is not None:
                    return await answer(response)
            if found is Found.ABSENT:  # not Tollway's: the provider's, if it is the caller's
                found = await store.upstream_owner(response_id, owner)
                if found is Found.ABSENT and owner.sees_all:
                    found = Found.MINE  # open proxy or master key: any id goes on, as before
            upstream = state.catalog.first_of_kind("openai") if found is Found.MINE else None
            if upstream is None:
                raise ProxyError("not_found", f"No response found with id '{response_id}'.")
            ctx.route = "passthrough.openai"
            ctx.metered, ctx.cost_note = False, None
            relay = send
            if ctx.method == "DELETE" and not input_items:
                async def forget_then_send(message: Any) -> None:  # forgotten before the client hears it is gone
                    if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                        await store.forget_upstream(response_id)
                    await send(message)

                relay = forget_then_send
            await self._passthrough.forward(ctx, scope, receive, relay, "/v1", *upstream)

        async def on_error(ctx: RequestContext, err: ProxyError) -> None:
            await send_error(ctx, send, err)

        await run_stages(ctx, state.stages, handle, on_error)
