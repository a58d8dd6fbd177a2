"""OpenAI wire shapes (also Azure OpenAI and local OpenAI-compatible servers), built from fixtures.

Flavours: "openai" (api.openai.com), "azure" (content-filter annotations, a first stream chunk
with empty choices, keys sorted, no obfuscation), "local" (Ollama/vLLM style: no obfuscation,
no service_tier).
"""

from __future__ import annotations

import json
import secrets
import string
import time
from typing import Any

from .fixtures import fixture
from .scenario import (
    THINKING_TEXT,
    Scenario,
    embedding_base64,
    embedding_vector,
    split_json_tokens,
    split_words,
)
from .sse import Sse, compact

P = "openai"
_ALNUM = string.ascii_letters + string.digits


def rand(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _hex(n: int) -> str:
    return secrets.token_hex(n // 2)


def _args_json(args: dict) -> str:
    return json.dumps(args, separators=(",", ":"))


def _obfuscation(text: str) -> str:
    # Real values are random padding that evens out chunk sizes; keep ours deterministic.
    return "x" * (1 + (16 - len(text) % 16) % 16)


def dumps(obj: Any, flavour: str) -> bytes:
    """Non-streamed bodies: OpenAI pretty-prints them; Azure sorts keys."""
    if flavour == "azure":
        return compact(obj, sort_keys=True).encode()
    return json.dumps(obj, indent=2, ensure_ascii=False).encode()


# ---------------------------------------------------------------- errors, headers, models, files


def error_body(status: int, flavour: str = "openai") -> dict:
    if flavour == "azure":
        errors = fixture(P, "azure", "errors")
        body = errors.get(str(status)) or errors["default"]
        if body["error"].get("code") == "{status}":
            body["error"]["code"] = str(status)
        return body
    errors = fixture(P, "error")
    return errors.get(str(status)) or errors["default_5xx" if status >= 500 else "default_4xx"]


def named_error(name: str, flavour: str = "openai") -> dict:
    if flavour == "azure":
        return fixture(P, "azure", "errors")[name]
    return fixture(P, "error", name)


def headers(flavour: str) -> dict[str, str]:
    h = fixture(P, "azure", "headers") if flavour == "azure" else fixture(P, "headers")
    if flavour == "azure":
        h["apim-request-id"] = secrets.token_hex(16)
    h["x-request-id"] = "req_" + _hex(32)
    return h


def model_list(flavour: str) -> dict:
    return fixture(P, "local_model_list" if flavour == "local" else "model_list")


def file_object(file_id: str, filename: str, size: int, purpose: str, created_at: int) -> dict:
    f = fixture(P, "file")
    f.update(id=file_id, filename=filename, bytes=size, purpose=purpose, created_at=created_at)
    return f


def file_list(files: list[dict]) -> dict:
    body = fixture(P, "file_list")
    body["data"] = files
    body["first_id"] = files[0]["id"] if files else None
    body["last_id"] = files[-1]["id"] if files else None
    return body


def new_file_id() -> str:
    return "file-" + rand(22)


# ---------------------------------------------------------------- usage


def chat_usage(sc: Scenario) -> dict:
    u = fixture(P, "chat_completion")["usage"]
    u["prompt_tokens"] = sc.reported_input_tokens
    u["completion_tokens"] = sc.output_tokens
    u["total_tokens"] = sc.input_tokens + sc.output_tokens
    u["prompt_tokens_details"]["cached_tokens"] = sc.cache_read
    u["completion_tokens_details"]["reasoning_tokens"] = sc.reasoning_tokens
    return u


def _finish_reason(sc: Scenario) -> str:
    if sc.tool_calls:
        return "tool_calls"
    return "length" if sc.directives.max_tokens else "stop"


def _apply_flavour_to_completion(body: dict, flavour: str) -> dict:
    if flavour == "azure":
        body.pop("service_tier", None)
        body["prompt_filter_results"] = fixture(P, "azure", "prompt_filter_results")
        for ch in body["choices"]:
            ch["content_filter_results"] = fixture(P, "azure", "content_filter_results")
    elif flavour == "local":
        body.pop("service_tier", None)
    return body


# ---------------------------------------------------------------- chat completions


def chat_completion(sc: Scenario, flavour: str) -> dict:
    model = sc.response_model("openai")
    if sc.tool_calls:
        body = fixture(P, "chat_completion_tool_calls")
        msg = body["choices"][0]["message"]
        template = msg["tool_calls"][0]
        calls = []
        for name, args in sc.tool_calls:
            call = json.loads(json.dumps(template))
            call["id"] = "call_" + rand(24)
            call["function"] = {"name": name, "arguments": _args_json(args)}
            calls.append(call)
        msg["tool_calls"] = calls
    else:
        body = fixture(P, "chat_completion")
        body["choices"][0]["message"]["content"] = sc.text
    if sc.directives.leak_thinking and flavour == "local":  # vLLM / DeepSeek style reasoning
        body["choices"][0]["message"]["reasoning_content"] = sc.thinking_text
    body["choices"][0]["finish_reason"] = _finish_reason(sc)
    body.update(id="chatcmpl-" + rand(29), created=int(time.time()), model=model)
    if sc.directives.no_usage:
        body.pop("usage", None)
    else:
        body["usage"] = chat_usage(sc)
    return _apply_flavour_to_completion(body, flavour)


def chat_stream(sc: Scenario, req: dict, flavour: str) -> list[Sse]:
    chunks_fx = fixture(P, "chat_completion_chunks")
    opts = req.get("stream_options") or {}
    include_usage = bool(opts.get("include_usage")) and not sc.directives.no_usage
    obfuscate = flavour == "openai" and opts.get("include_obfuscation", True) is not False
    cid, created, model = "chatcmpl-" + rand(29), int(time.time()), sc.response_model("openai")

    def chunk(kind: str) -> dict:
        c = json.loads(json.dumps(chunks_fx[kind]))
        c.update(id=cid, created=created, model=model)
        return c

    chunks: list[dict] = []
    if sc.tool_calls:
        for i, (name, args) in enumerate(sc.tool_calls):
            c = chunk("tool_call_start" if i == 0 else "tool_call_next")
            tc = c["choices"][0]["delta"]["tool_calls"][0]
            tc.update(index=i, id="call_" + rand(24))
            tc["function"] = {"name": name, "arguments": ""}
            chunks.append(c)
            for piece in split_json_tokens(_args_json(args)):
                c = chunk("tool_call_arguments")
                tc = c["choices"][0]["delta"]["tool_calls"][0]
                tc["index"] = i
                tc["function"]["arguments"] = piece
                chunks.append(c)
    else:
        chunks.append(chunk("role"))
        if sc.directives.leak_thinking and flavour == "local":  # vLLM / DeepSeek style reasoning deltas
            for piece in sc.thinking_pieces:
                c = chunk("content")
                c["choices"][0]["delta"] = {"reasoning_content": piece}
                chunks.append(c)
        for piece in sc.pieces:
            c = chunk("content")
            c["choices"][0]["delta"]["content"] = piece
            chunks.append(c)
    fin = chunk("finish")
    fin["choices"][0]["finish_reason"] = _finish_reason(sc)
    chunks.append(fin)
    if include_usage:
        u = chunk("usage")
        u["usage"] = chat_usage(sc)
        chunks.append(u)

    for c in chunks:
        if not include_usage:
            c.pop("usage", None)
        if obfuscate:
            delta = c["choices"][0]["delta"] if c["choices"] else {}
            c["obfuscation"] = _obfuscation(str(delta.get("content") or ""))
        else:
            c.pop("obfuscation", None)
        if flavour != "openai":
            c.pop("service_tier", None)
        if flavour == "azure":
            for ch in c["choices"]:
                has_text = bool(ch["delta"].get("content"))
                ch["content_filter_results"] = fixture(P, "azure", "content_filter_results") if has_text else {}
    if flavour == "azure":
        chunks.insert(0, fixture(P, "azure", "prompt_filter_chunk"))
    events = [Sse(compact(c, sort_keys=flavour == "azure")) for c in chunks]
    events.append(Sse("[DONE]"))
    return events


def stream_error_event(kind: str, seq: int = 0) -> Sse:
    if kind == "responses":
        ev = fixture(P, "response_events", "response.failed")
        ev["sequence_number"] = seq
        return Sse(compact(ev), "response.failed")
    return Sse(compact(fixture(P, "error", "stream_error")))


# ---------------------------------------------------------------- legacy completions


def completion(sc: Scenario, flavour: str) -> dict:
    body = fixture(P, "completion")
    body.update(id="cmpl-" + rand(29), created=int(time.time()), model=sc.response_model("openai"))
    body["choices"][0].update(text=sc.text, finish_reason="length" if sc.directives.max_tokens else "stop")
    if sc.directives.no_usage:
        body.pop("usage", None)
    else:
        body["usage"] = {"prompt_tokens": sc.input_tokens, "completion_tokens": sc.output_tokens,
                         "total_tokens": sc.input_tokens + sc.output_tokens}
    return body


def completion_stream(sc: Scenario, req: dict, flavour: str) -> list[Sse]:
    fx = fixture(P, "completion_chunks")
    include_usage = bool((req.get("stream_options") or {}).get("include_usage")) and not sc.directives.no_usage
    cid, created, model = "cmpl-" + rand(29), int(time.time()), sc.response_model("openai")
    chunks = []
    for piece in sc.pieces:
        c = json.loads(json.dumps(fx["content"]))
        c["choices"][0]["text"] = piece
        chunks.append(c)
    fin = json.loads(json.dumps(fx["finish"]))
    fin["choices"][0]["finish_reason"] = "length" if sc.directives.max_tokens else "stop"
    chunks.append(fin)
    if include_usage:
        u = json.loads(json.dumps(fx["usage"]))
        u["usage"] = {"prompt_tokens": sc.input_tokens, "completion_tokens": sc.output_tokens,
                      "total_tokens": sc.input_tokens + sc.output_tokens}
        chunks.append(u)
    for c in chunks:
        c.update(id=cid, created=created, model=model)
        if not include_usage:
            c.pop("usage", None)
    return [Sse(compact(c, sort_keys=flavour == "azure")) for c in chunks] + [Sse("[DONE]")]


# ---------------------------------------------------------------- embeddings


def embeddings(sc: Scenario, req: dict, flavour: str) -> dict:
    body = fixture(P, "embedding")
    template = body["data"][0]
    inputs = req.get("input")
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    data = []
    for i, text in enumerate(inputs or []):
        vec = embedding_vector(text if isinstance(text, str) else json.dumps(text), req.get("dimensions"))
        item = dict(template)
        item.update(index=i, embedding=embedding_base64(vec) if req.get("encoding_format") == "base64" else vec)
        data.append(item)
    body["data"] = data
    body["model"] = sc.response_model("openai")
    if sc.directives.no_usage:
        body.pop("usage", None)
    else:
        body["usage"] = {"prompt_tokens": sc.input_tokens, "total_tokens": sc.input_tokens}
    return body


# ---------------------------------------------------------------- Responses API


def _responses_usage(sc: Scenario) -> dict:
    u = fixture(P, "response")["usage"]
    u["input_tokens"] = sc.reported_input_tokens
    u["input_tokens_details"].update(cached_tokens=sc.cache_read, cache_write_tokens=sc.cache_write)
    u["output_tokens"] = sc.output_tokens
    u["output_tokens_details"]["reasoning_tokens"] = sc.reasoning_tokens
    u["total_tokens"] = sc.input_tokens + sc.output_tokens
    return u


_ECHOED = ("background", "instructions", "max_output_tokens", "max_tool_calls", "metadata", "parallel_tool_calls",
           "previous_response_id", "prompt_cache_key", "safety_identifier", "store", "temperature", "tool_choice",
           "tools", "top_logprobs", "top_p", "truncation", "user")


def _response_shell(sc: Scenario, req: dict) -> dict:
    r = fixture(P, "response")
    r.update(id="resp_" + _hex(48), created_at=int(time.time()), model=sc.response_model("openai"))
    for key in _ECHOED:
        if req.get(key) is not None:
            r[key] = req[key]
    if isinstance(req.get("reasoning"), dict):
        r["reasoning"] = {"effort": req["reasoning"].get("effort"), "summary": req["reasoning"].get("summary")}
    if isinstance(req.get("text"), dict):
        r["text"] = {**r["text"], **req["text"]}
    return r


def _output_items(sc: Scenario) -> list[dict]:
    fx = fixture(P, "response_output_items")
    items = []
    if sc.directives.thinking:
        rs = fx["reasoning"]
        rs["id"] = "rs_" + _hex(48)
        rs["summary"] = [{"type": "summary_text", "text": THINKING_TEXT}]
        items.append(rs)
    if sc.tool_calls:
        for name, args in sc.tool_calls:
            fc = json.loads(json.dumps(fx["function_call"]))
            fc.update(id="fc_" + _hex(48), call_id="call_" + rand(24), name=name, arguments=_args_json(args))
            items.append(fc)
    else:
        msg = fx["message"]
        msg["id"] = "msg_" + _hex(48)
        msg["status"] = "incomplete" if sc.directives.max_tokens else "completed"
        msg["content"][0]["text"] = sc.text
        items.append(msg)
    return items


def _finish_response(r: dict, sc: Scenario, items: list[dict]) -> dict:
    r["output"] = items
    if sc.directives.max_tokens:
        r.update(status="incomplete", completed_at=None, incomplete_details={"reason": "max_output_tokens"})
    else:
        r.update(status="completed", completed_at=int(time.time()), incomplete_details=None)
    if sc.directives.no_usage:
        r.pop("usage", None)
    else:
        r["usage"] = _responses_usage(sc)
    return r


def response(sc: Scenario, req: dict) -> dict:
    return _finish_response(_response_shell(sc, req), sc, _output_items(sc))


def response_stream(sc: Scenario, req: dict) -> list[Sse]:
    fx = fixture(P, "response_events")
    obfuscate = (req.get("stream_options") or {}).get("include_obfuscation", True) is not False
    events: list[Sse] = []

    def emit(kind: str, **fields: Any) -> None:
        ev = json.loads(json.dumps(fx[kind]))
        ev.update(fields)
        ev["sequence_number"] = len(events)
        if "obfuscation" in ev:
            if obfuscate:
                ev["obfuscation"] = _obfuscation(str(fields.get("delta", "")))
            else:
                del ev["obfuscation"]
        events.append(Sse(compact(ev), kind))

    shell = _response_shell(sc, req)
    start = json.loads(json.dumps(shell))
    start.update(status="in_progress", output=[], usage=None, completed_at=None)
    emit("response.created", response=start)
    emit("response.in_progress", response=start)

    items = _output_items(sc)
    for idx, item in enumerate(items):
        iid = item["id"]
        if item["type"] == "reasoning":
            emit("response.output_item.added", output_index=idx, item={**item, "summary": []})
            part = {"type": "summary_text", "text": ""}
            emit("response.reasoning_summary_part.added", item_id=iid, output_index=idx, summary_index=0, part=part)
            for piece in split_words(THINKING_TEXT):
                emit("response.reasoning_summary_text.delta", item_id=iid, output_index=idx, summary_index=0,
                     delta=piece)
            emit("response.reasoning_summary_text.done", item_id=iid, output_index=idx, summary_index=0,
                 text=THINKING_TEXT)
            emit("response.reasoning_summary_part.done", item_id=iid, output_index=idx, summary_index=0,
                 part={"type": "summary_text", "text": THINKING_TEXT})
        elif item["type"] == "function_call":
            emit("response.output_item.added", output_index=idx,
                 item={**item, "arguments": "", "status": "in_progress"})
            for piece in split_json_tokens(item["arguments"]):
                emit("response.function_call_arguments.delta", item_id=iid, output_index=idx, delta=piece)
            emit("response.function_call_arguments.done", item_id=iid, output_index=idx, name=item["name"],
                 arguments=item["arguments"])
        else:
            emit("response.output_item.added", output_index=idx, item={**item, "status": "in_progress", "content": []})
            empty = {**item["content"][0], "text": ""}
            emit("response.content_part.added", item_id=iid, output_index=idx, content_index=0, part=empty)
            for piece in sc.pieces:
                emit("response.output_text.delta", item_id=iid, output_index=idx, content_index=0, delta=piece)
            emit("response.output_text.done", item_id=iid, output_index=idx, content_index=0, text=sc.text)
            emit("response.content_part.done", item_id=iid, output_index=idx, content_index=0,
                 part=item["content"][0])
        emit("response.output_item.done", output_index=idx, item=item)

    final = _finish_response(shell, sc, items)
    emit("response.incomplete" if sc.directives.max_tokens else "response.completed", response=final)
    return events
