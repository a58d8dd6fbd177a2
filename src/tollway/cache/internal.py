"""A call Tollway makes to itself on behalf of a client's request (the routed embedding model of
the semantic cache): the same stages as any call (auth with the caller's key, attribution to
the caller's project, routing, limits, accounting: its own ledger row), answered into memory.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

from tollway.errors import ProxyError, render
from tollway.pipeline.auth import presented_key
from tollway.pipeline.context import RequestContext
from tollway.pipeline.stage import run_stages
from tollway.providers.base import Endpoint

if TYPE_CHECKING:
    from tollway.state import AppState

ROUTE = "cache.embedding"


async def internal_call(state: "AppState", origin: RequestContext, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    """POST `body` (an OpenAI embeddings request) through the pipeline; (status, body)."""
    raw = orjson.dumps(body)
    headers: dict[bytes, bytes] = {b"content-type": b"application/json", b"content-length": str(len(raw)).encode()}
    key = presented_key(origin)
    if key:
        headers[b"authorization"] = b"Bearer " + key
    if origin.project:
        headers[b"x-tollway-project"] = origin.project.encode()
    for name in (b"x-tollway-source", b"x-source", b"x-tollway-customer", b"traceparent", b"tracestate"):
        if name in origin.headers:
            headers[name] = origin.headers[name]
    sent = {"body": False}
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not sent["body"]:
            sent["body"] = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    status = 0
    parts: list[bytes] = []

    async def send(msg: dict[str, Any]) -> None:
        nonlocal status
        if msg["type"] == "http.response.start":
            status = msg["status"]
        elif msg["type"] == "http.response.body":
            parts.append(msg.get("body", b""))

    ctx = RequestContext(ROUTE, "openai", Endpoint.EMBEDDINGS.value, "POST", path, headers, receive, send)

    async def handle(c: RequestContext) -> None:
        await state.forwarder.forward(c, receive, send)

    async def on_error(c: RequestContext, err: ProxyError) -> None:
        nonlocal status
        status, b = render(err, "openai")
        parts.append(b)

    await run_stages(ctx, state.call_stages, handle, on_error)
    return status, b"".join(parts)
