"""Anthropic Messages wire shapes, built from fixtures."""

from __future__ import annotations

import json
from typing import Any

from .fixtures import fixture
from .openai_wire import rand
from .scenario import Scenario
from .sse import Sse, compact

P = "anthropic"


def error_body(status: int, request_id: str | None = None) -> dict:
    errors = fixture(P, "error")
    body = errors.get(str(status)) or errors["default_5xx" if status >= 500 else "default_4xx"]
    body["request_id"] = request_id
    return body


def named_error(name: str, request_id: str | None = None) -> dict:
    body = fixture(P, "error", name)
    body["request_id"] = request_id
    return body


def headers() -> dict[str, str]:
    h = fixture(P, "headers")
    h["request-id"] = "req_011C" + rand(20)
    return h


def model_list() -> dict:
    return fixture(P, "model_list")


def usage(sc: Scenario, *, output_tokens: int | None = None) -> dict:
    u = fixture(P, "message")["usage"]
    u["input_tokens"] = sc.reported_input_tokens
    u["cache_read_input_tokens"] = sc.cache_read
    u["cache_creation_input_tokens"] = sc.cache_write
    u["cache_creation"]["ephemeral_5m_input_tokens"] = sc.cache_write
    u["output_tokens"] = sc.output_tokens if output_tokens is None else output_tokens
    if sc.directives.thinking:
        u["output_tokens_details"] = {"thinking_tokens": sc.reasoning_tokens}
    return u


def _stop_reason(sc: Scenario) -> str:
    if sc.tool_calls:
        return "tool_use"
    return "max_tokens" if sc.directives.max_tokens else "end_turn"


def _blocks(sc: Scenario) -> list[dict]:
    fx = fixture(P, "content_blocks")
    blocks = []
    if sc.directives.thinking:
        th = fx["thinking"]
        th["thinking"] = sc.thinking_text
        blocks.append(th)
    if sc.tool_calls:
        for name, args in sc.tool_calls:
            tu = json.loads(json.dumps(fx["tool_use"]))
            tu.update(id="toolu_01" + rand(22), name=name, input=args)
            blocks.append(tu)
    else:
        tx = fx["text"]
        tx["text"] = sc.text
        blocks.append(tx)
    return blocks


def message(sc: Scenario) -> dict:
    m = fixture(P, "message")
    m.update(id="msg_01" + rand(22), model=sc.response_model("anthropic"), content=_blocks(sc),
             stop_reason=_stop_reason(sc), usage=usage(sc))
    if sc.directives.no_usage:
        m.pop("usage", None)
    return m


def count_tokens(sc: Scenario) -> dict:
    body = fixture(P, "count_tokens")
    body["input_tokens"] = sc.input_tokens
    return body


def _tool_json_pieces(args: dict) -> list[str]:
    s = json.dumps(args)  # Anthropic's partial_json has ", " and ": " separators
    mid = len(s) // 2
    return ["", s[:mid], s[mid:]]


def stream(sc: Scenario) -> list[Sse]:
    fx = fixture(P, "stream_events")
    events: list[Sse] = []

    def emit(kind: str, ev: dict) -> None:
        events.append(Sse(compact(ev), kind))

    def delta(index: int, kind: str, **fields: Any) -> None:
        ev = json.loads(json.dumps(fx[f"content_block_delta.{kind}"]))
        ev["index"] = index
        ev["delta"].update(fields)
        emit("content_block_delta", ev)

    start = fx["message_start"]
    start["message"].update(id="msg_01" + rand(22), model=sc.response_model("anthropic"),
                            usage=usage(sc, output_tokens=1))
    start["message"]["usage"].pop("output_tokens_details", None)
    if sc.directives.no_usage:
        start["message"].pop("usage")
    emit("message_start", start)

    for index, block in enumerate(_blocks(sc)):
        cbs = json.loads(json.dumps(fx["content_block_start"]))
        cbs["index"] = index
        if block["type"] == "thinking":
            cbs["content_block"] = {"type": "thinking", "thinking": "", "signature": ""}
        elif block["type"] == "tool_use":
            cbs["content_block"] = {**block, "input": {}}
        else:
            cbs["content_block"] = {**block, "text": ""}
        emit("content_block_start", cbs)
        if index == 0:
            emit("ping", fx["ping"])
        if block["type"] == "thinking":
            for piece in sc.thinking_pieces:
                delta(index, "thinking_delta", thinking=piece)
            delta(index, "signature_delta", signature=block["signature"])
        elif block["type"] == "tool_use":
            for piece in _tool_json_pieces(block["input"]):
                delta(index, "input_json_delta", partial_json=piece)
        else:
            for piece in sc.pieces:
                delta(index, "text_delta", text=piece)
        stop = json.loads(json.dumps(fx["content_block_stop"]))
        stop["index"] = index
        emit("content_block_stop", stop)

    md = fx["message_delta"]
    md["delta"]["stop_reason"] = _stop_reason(sc)
    full = usage(sc)
    md["usage"] = {k: full.get(k) for k in md["usage"]}
    if sc.directives.thinking:
        md["usage"]["output_tokens_details"] = full["output_tokens_details"]
    if sc.directives.no_usage:
        md.pop("usage")
    emit("message_delta", md)
    emit("message_stop", fx["message_stop"])
    return events


def stream_error_event(request_id: str | None = None) -> Sse:
    ev = fixture(P, "stream_events", "error")
    ev["request_id"] = request_id
    return Sse(compact(ev), "error")
