"""A hit, answered in the client's format: a whole JSON body, or a stream event by event.

The cached canonical answer is rendered afresh by the formats package: a new response id, new
tool-call ids and the current time wherever the format carries them, so two hits never look
like the same response. A stream is the canonical deltas of the answer (message start, each
block, finish, usage) through the client format's StreamWriter, the same writer the translated
path uses, so SDKs parse it like any other stream.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from tollway.api.asgi import send_bytes
from tollway.formats import anthropic as f_anthropic
from tollway.formats import gemini as f_gemini
from tollway.formats import openai_chat as f_openai
from tollway.formats import responses as f_responses
from tollway.formats._util import new_id
from tollway.formats.canonical import CanonicalResponse, ToolCall
from tollway.formats.stream import (
    BlockStop, Finish, MessageStart, TextDelta, ThinkingDelta, ToolCallArgsDelta, ToolCallStart, UsageDelta,
)
from tollway.pipeline.context import RequestContext

_ID_PREFIX = {"openai_chat": "chatcmpl-", "anthropic": "msg_", "gemini": "", "responses": "resp_"}


def fresh(resp: CanonicalResponse, client_fmt: str) -> CanonicalResponse:
    """A copy with new ids and the current time."""
    content: list[Any] = []
    for p in resp.content:
        if p.kind == "tool_call":
            prefix = p.id.split("_", 1)[0] + "_" if "_" in p.id else "call_"
            p = ToolCall(new_id(prefix), p.name, p.arguments_json, p.signature)
        content.append(p)
    rid = new_id(_ID_PREFIX.get(client_fmt, ""))
    return CanonicalResponse(id=rid, model=resp.model, content=content, stop_reason=resp.stop_reason,
                             stop_sequence=resp.stop_sequence, usage=resp.usage, created=int(time.time()),
                             refusal=resp.refusal)


def deltas(resp: CanonicalResponse) -> list[Any]:
    out: list[Any] = [MessageStart(resp.id, resp.model, resp.usage, resp.created)]
    for i, p in enumerate(resp.content):
        if p.kind == "text":
            out.append(TextDelta(i, p.text))
        elif p.kind == "thinking":
            out.append(ThinkingDelta(p.text, p.signature, i, p.redacted))
        else:
            out.append(ToolCallStart(i, p.id, p.name, p.signature))
            out.append(ToolCallArgsDelta(i, p.arguments_json))
        out.append(BlockStop(i))
    out.append(Finish(resp.stop_reason or "end_turn", resp.stop_sequence))
    out.append(UsageDelta(resp.usage))
    return out


def whole_body(resp: CanonicalResponse, client_fmt: str, request: dict[str, Any]) -> bytes:
    if client_fmt == "responses":
        return orjson.dumps(f_responses.response_from_canonical(resp, request, response_id=resp.id,
                                                                model=resp.model, created_at=resp.created))
    mod = {"openai_chat": f_openai, "anthropic": f_anthropic, "gemini": f_gemini}[client_fmt]
    return orjson.dumps(mod.response_from_canonical(resp, model=resp.model))


def stream_body(resp: CanonicalResponse, client_fmt: str, request: dict[str, Any]) -> bytes:
    if client_fmt == "responses":
        writer: Any = f_responses.StreamWriter(request, model=resp.model, response_id=resp.id,
                                               created_at=resp.created)
    elif client_fmt == "openai_chat":
        opts = request.get("stream_options")
        include = isinstance(opts, dict) and opts.get("include_usage") is True
        writer = f_openai.StreamWriter(model=resp.model, include_usage=include, id=resp.id, created=resp.created)
    elif client_fmt == "gemini":
        writer = f_gemini.StreamWriter(model=resp.model, id=resp.id)
    else:
        writer = f_anthropic.StreamWriter(model=resp.model, id=resp.id)
    return b"".join(writer.write(d) for d in deltas(resp)) + writer.close()


async def send_answer(ctx: RequestContext, resp: CanonicalResponse, client_fmt: str,
                      headers: list[tuple[bytes, bytes]]) -> None:
    """Send a hit. `headers`: the cache's own (status, age, similarity, cost)."""
    assert ctx.send is not None
    resp = fresh(resp, client_fmt)
    request = ctx.json or {}
    hdrs = [*ctx.response_headers, *headers]
    if ctx.stream:
        body = stream_body(resp, client_fmt, request)
        hdrs += [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                 (b"x-accel-buffering", b"no")]
    else:
        body = whole_body(resp, client_fmt, request)
        hdrs.append((b"content-type", b"application/json"))
    hdrs.append(ctx.overhead_header())
    ctx.status = 200
    ctx.response_started = True
    if not ctx.stream:
        return await send_bytes(ctx.send, 200, body, hdrs)
    # no content-length on a stream: a wrapping send may reshape it (Gemini's JSON-array streams)
    await ctx.send({"type": "http.response.start", "status": 200, "headers": hdrs})
    await ctx.send({"type": "http.response.body", "body": body, "more_body": False})
