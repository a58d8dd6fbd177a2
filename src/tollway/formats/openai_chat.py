"""OpenAI Chat Completions ⇄ canonical, both directions, plus streaming.

Client side: `request_to_canonical`, `response_from_canonical`, `StreamWriter`.
Provider side: `request_from_canonical`, `response_to_canonical`, `StreamParser`.
The streaming classes live in `openai_chat_stream` and are re-exported here.
`compat=True` on the provider side targets OpenAI-compatible servers (vLLM, Ollama, llama.cpp,
LM Studio): `max_tokens` instead of `max_completion_tokens`, `top_k` passed through.
"""

from __future__ import annotations

import time
from typing import Any

from tollway.formats import stop_reasons
from tollway.formats._util import (
    as_list, data_url, is_neutral, new_id, opt_bool, opt_int, opt_num, opt_str, parse_data_url,
    req_dict, req_list, req_str, stop_list,
)
from tollway.formats.canonical import (
    source_param,
    CanonicalRequest, CanonicalResponse, Document, Image, Message, NamedToolChoice, Reasoning,
    ResponseFormat, Text, Thinking, ToolCall, ToolDef, ToolResult,
)
from tollway.formats.errors import TranslationError
from tollway.usage import CountReader, Usage

FORMAT = "openai_chat"

_MODELLED = frozenset((
    "model", "messages", "tools", "functions", "tool_choice", "function_call", "parallel_tool_calls",
    "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "response_format",
    "stream", "stream_options", "reasoning_effort", "metadata", "user",
))
# Extras an OpenAI-family source may carry that an OpenAI chat target understands as is.
CHAT_PASSTHROUGH = frozenset((
    "seed", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "n",
    "service_tier", "prompt_cache_key", "prompt_cache_retention", "safety_identifier", "prediction",
    "modalities", "audio", "verbosity", "web_search_options", "store",
))
EFFORT_FOR_BUDGET = ((2048, "low"), (8192, "medium"))  # budget ≤ n → effort; above: "high"


# --- request: client → canonical ---------------------------------------------------------------

def _text_parts(content: Any, param: str) -> list[Text]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    if content is None:
        return []
    out = []
    for i, p in enumerate(req_list(content, param)):
        p = req_dict(p, f"{param}[{i}]")
        t = p.get("type")
        if t == "text":
            out.append(Text(req_str(p.get("text"), f"{param}[{i}].text")))
        elif t == "refusal":
            out.append(Text(req_str(p.get("refusal"), f"{param}[{i}].refusal")))
        else:
            raise TranslationError(f"unsupported content part type {t!r} here", f"{param}[{i}].type")
    return out


def _user_parts(content: Any, param: str) -> list:
    if isinstance(content, str):
        return [Text(content)]
    out: list = []
    for i, p in enumerate(req_list(content, param)):
        pp = f"{param}[{i}]"
        p = req_dict(p, pp)
        t = p.get("type")
        if t == "text":
            out.append(Text(req_str(p.get("text"), pp + ".text")))
        elif t == "image_url":
            iu = p.get("image_url")
            url = iu if isinstance(iu, str) else req_dict(iu, pp + ".image_url").get("url")
            url = req_str(url, pp + ".image_url.url")
            detail = iu.get("detail") if isinstance(iu, dict) else None
            parsed = parse_data_url(url)
            if parsed:
                out.append(Image(data=parsed[1], media_type=parsed[0], detail=detail))
            else:
                out.append(Image(url=url, detail=detail))
        elif t == "file":
            f = req_dict(p.get("file"), pp + ".file")
            fd = opt_str(f.get("file_data"), pp + ".file.file_data")
            filename = opt_str(f.get("filename"), pp + ".file.filename")
            if fd:
                parsed = parse_data_url(fd)
                if parsed:
                    out.append(Document(data=parsed[1], media_type=parsed[0], filename=filename))
                else:  # bare base64; OpenAI only takes PDFs this way
                    out.append(Document(data=fd, media_type="application/pdf", filename=filename))
            else:
                fid = req_str(f.get("file_id"), pp + ".file.file_id")
                out.append(Document(file_id=fid, filename=filename))
        elif t == "input_audio":
            raise TranslationError("audio input cannot be translated to this provider", pp)
        else:
            raise TranslationError(f"unsupported content part type {t!r}", pp + ".type")
    return out


def request_to_canonical(body: dict) -> CanonicalRequest:
    body = req_dict(body)
    req = CanonicalRequest(model=req_str(body.get("model"), "model"), source_format=FORMAT)
    messages = req_list(body.get("messages"), "messages")
    if not messages:
        raise TranslationError("messages must not be empty", "messages")
    names: dict[str, str] = {}  # tool call id → function name, for tool results
    legacy_ids: dict[str, str] = {}  # legacy function_call name → synthesized id
    for i, m in enumerate(messages):
        pm = f"messages[{i}]"
        m = req_dict(m, pm)
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            req.system.extend(_text_parts(content, pm + ".content"))
        elif role == "user":
            if content is None:
                raise TranslationError("user message content is required", pm + ".content")
            req.messages.append(Message("user", _user_parts(content, pm + ".content")))
        elif role == "assistant":
            parts: list = []
            rc = m.get("reasoning_content")
            if isinstance(rc, str) and rc:
                parts.append(Thinking(rc))
            parts.extend(_text_parts(content, pm + ".content"))
            refusal = m.get("refusal")
            if isinstance(refusal, str) and refusal:
                parts.append(Text(refusal))
            for j, tc in enumerate(req_list(m.get("tool_calls") or [], pm + ".tool_calls")):
                ptc = f"{pm}.tool_calls[{j}]"
                tc = req_dict(tc, ptc)
                if tc.get("type", "function") != "function":
                    raise TranslationError("only function tool calls can be translated", ptc + ".type")
                fn = req_dict(tc.get("function"), ptc + ".function")
                tid = req_str(tc.get("id"), ptc + ".id")
                name = req_str(fn.get("name"), ptc + ".function.name")
                args = fn.get("arguments")
                args = "{}" if args is None or args == "" else req_str(args, ptc + ".function.arguments")
                names[tid] = name
                parts.append(ToolCall(tid, name, args))
            fc = m.get("function_call")
            if isinstance(fc, dict):
                name = req_str(fc.get("name"), pm + ".function_call.name")
                tid = legacy_ids[name] = f"call_legacy_{i}"
                names[tid] = name
                parts.append(ToolCall(tid, name, fc.get("arguments") or "{}"))
            req.messages.append(Message("assistant", parts))
        elif role == "tool":
            tid = req_str(m.get("tool_call_id"), pm + ".tool_call_id")
            result = ToolResult(tid, _tool_result_parts(content, pm + ".content"), names.get(tid))
            req.messages.append(Message("tool", [result]))
        elif role == "function":
            name = req_str(m.get("name"), pm + ".name")
            tid = legacy_ids.get(name, f"call_legacy_{name}")
            req.messages.append(Message("tool", [ToolResult(tid, _tool_result_parts(content, pm), name)]))
        else:
            raise TranslationError(f"unknown message role {role!r}", pm + ".role")

    tools = body.get("tools")
    if tools is None and body.get("functions") is not None:
        tools = [{"type": "function", "function": f} for f in req_list(body["functions"], "functions")]
    for i, t in enumerate(req_list(tools or [], "tools")):
        pt = f"tools[{i}]"
        t = req_dict(t, pt)
        if t.get("type", "function") != "function":
            raise TranslationError(f"tool type {t.get('type')!r} cannot be translated", pt + ".type")
        fn = req_dict(t.get("function"), pt + ".function")
        params = fn.get("parameters")
        req.tools.append(ToolDef(
            name=req_str(fn.get("name"), pt + ".function.name"),
            description=opt_str(fn.get("description"), pt + ".function.description"),
            parameters=req_dict(params, pt + ".function.parameters") if params is not None
            else {"type": "object", "properties": {}},
            strict=opt_bool(fn.get("strict"), pt + ".function.strict"),
        ))
    tc = body.get("tool_choice", body.get("function_call"))
    req.tool_choice = _tool_choice_in(tc, req)
    req.parallel_tool_calls = opt_bool(body.get("parallel_tool_calls"), "parallel_tool_calls")
    mct = opt_int(body.get("max_completion_tokens"), "max_completion_tokens")
    req.max_tokens = mct if mct is not None else opt_int(body.get("max_tokens"), "max_tokens")
    req.temperature = opt_num(body.get("temperature"), "temperature")
    req.top_p = opt_num(body.get("top_p"), "top_p")
    req.stop = stop_list(body.get("stop"), "stop")
    req.response_format = _response_format_in(body.get("response_format"))
    req.stream = bool(opt_bool(body.get("stream"), "stream"))
    so = body.get("stream_options")
    req.include_usage = bool(req.stream and isinstance(so, dict) and so.get("include_usage"))
    effort = opt_str(body.get("reasoning_effort"), "reasoning_effort")
    if effort:
        req.reasoning = Reasoning(effort=effort, enabled=effort != "none")
    md = body.get("metadata")
    req.metadata = req_dict(md, "metadata") if md is not None else None
    req.user = opt_str(body.get("user"), "user")
    req.extra = {k: v for k, v in body.items() if k not in _MODELLED}
    return req


def _tool_result_parts(content: Any, param: str) -> list:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)] if content else []
    return _user_parts(content, param)


def _tool_choice_in(tc: Any, req: CanonicalRequest):
    if tc is None:
        return None
    if isinstance(tc, str):
        if tc not in ("auto", "none", "required"):
            raise TranslationError(f"invalid tool_choice {tc!r}", "tool_choice")
        return tc
    tc = req_dict(tc, "tool_choice")
    t = tc.get("type")
    if t == "function" or (t is None and "name" in tc):  # legacy function_call {"name": ...}
        fn = tc.get("function", tc)
        return NamedToolChoice(req_str(req_dict(fn, "tool_choice.function").get("name"),
                                       "tool_choice.function.name"))
    if t == "allowed_tools":
        at = req_dict(tc.get("allowed_tools"), "tool_choice.allowed_tools")
        allowed = set()
        for j, x in enumerate(req_list(at.get("tools"), "tool_choice.allowed_tools.tools")):
            x = req_dict(x, f"tool_choice.allowed_tools.tools[{j}]")
            fn = x.get("function") if isinstance(x.get("function"), dict) else x
            allowed.add(req_str(fn.get("name"), f"tool_choice.allowed_tools.tools[{j}].name"))
        req.tools = [t for t in req.tools if t.name in allowed]
        mode = at.get("mode", "auto")
        return "required" if mode == "required" else "auto"
    raise TranslationError(f"tool_choice type {t!r} cannot be translated", "tool_choice.type")


def _response_format_in(rf: Any) -> ResponseFormat | None:
    if rf is None:
        return None
    rf = req_dict(rf, "response_format")
    t = rf.get("type")
    if t == "text":
        return ResponseFormat("text")
    if t == "json_object":
        return ResponseFormat("json_object")
    if t == "json_schema":
        js = req_dict(rf.get("json_schema"), "response_format.json_schema")
        schema = js.get("schema")
        return ResponseFormat(
            "json_schema",
            name=opt_str(js.get("name"), "response_format.json_schema.name"),
            schema=req_dict(schema, "response_format.json_schema.schema") if schema is not None else {},
            strict=opt_bool(js.get("strict"), "response_format.json_schema.strict"),
            description=opt_str(js.get("description"), "response_format.json_schema.description"),
        )
    raise TranslationError(f"response_format type {t!r} cannot be translated", "response_format.type")


# --- request: canonical → provider -------------------------------------------------------------

def _image_out(p: Image) -> dict:
    url = p.url if p.url is not None else data_url(p.media_type or "image/png", p.data or "")
    iu: dict = {"url": url}
    if p.detail:
        iu["detail"] = p.detail
    return {"type": "image_url", "image_url": iu}


def _document_out(p: Document, param: str) -> dict:
    f: dict = {}
    if p.file_id:
        f["file_id"] = p.file_id
    elif p.data is not None:
        f["file_data"] = data_url(p.media_type or "application/pdf", p.data)
        f["filename"] = p.filename or "document.pdf"
    else:
        raise TranslationError("documents by URL cannot be sent to an OpenAI chat provider", param)
    return {"type": "file", "file": f}


def _content_out(parts: list, param: str) -> str | list:
    if all(p.kind == "text" for p in parts):
        if len(parts) == 1:
            return parts[0].text
    out = []
    for p in parts:
        if p.kind == "text":
            out.append({"type": "text", "text": p.text})
        elif p.kind == "image":
            out.append(_image_out(p))
        elif p.kind == "document":
            out.append(_document_out(p, param))
    return out if out else ""


def request_from_canonical(req: CanonicalRequest, model: str, *, compat: bool = False,
                           max_tokens_field: str | None = None,
                           reasoning_field: str | None = None) -> tuple[dict, list[str]]:
    """canonical → Chat Completions body for `model`; also the names of params it dropped.
    `reasoning_field`: send assistant thinking back as this message field (e.g.
    "reasoning_content" for DeepSeek/vLLM); by default thinking history is left out."""
    dropped: list[str] = []
    msgs: list[dict] = []
    if req.system:
        msgs.append({"role": "system", "content": "\n\n".join(p.text for p in req.system)})
    for i, m in enumerate(req.messages):
        pm = f"messages[{i}]"
        if m.role == "assistant":
            texts = [p.text for p in m.content if p.kind == "text"]
            calls = [{"id": p.id, "type": "function",
                      "function": {"name": p.name, "arguments": p.arguments_json or "{}"}}
                     for p in m.content if p.kind == "tool_call"]
            out: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
            if calls:
                out["tool_calls"] = calls
            if reasoning_field:
                thinking = "".join(p.text for p in m.content if p.kind == "thinking" and not p.redacted)
                if thinking:
                    out[reasoning_field] = thinking
            msgs.append(out)
            continue
        rest = []
        leftover_media: list = []
        for p in m.content:
            if p.kind == "tool_result":
                texts = [c.text for c in p.content if c.kind == "text"]
                media = [c for c in p.content if c.kind != "text"]
                msgs.append({"role": "tool", "tool_call_id": p.tool_call_id, "content": "".join(texts)})
                leftover_media.extend(media)  # tool messages are text-only in OpenAI chat
            elif p.kind != "thinking" and p.kind != "tool_call":
                rest.append(p)
        rest = leftover_media + rest
        if rest:
            msgs.append({"role": "user", "content": _content_out(rest, pm + ".content")})
    body: dict = {"model": model, "messages": msgs}
    if req.tools:
        tools = []
        for t in req.tools:
            fn: dict = {"name": t.name}
            if t.description:
                fn["description"] = t.description
            fn["parameters"] = t.parameters
            if t.strict is not None:
                fn["strict"] = t.strict
            tools.append({"type": "function", "function": fn})
        body["tools"] = tools
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.tool_choice is not None:
        tc = req.tool_choice
        body["tool_choice"] = {"type": "function", "function": {"name": tc.name}} \
            if isinstance(tc, NamedToolChoice) else tc
    if req.max_tokens is not None:
        body[max_tokens_field or ("max_tokens" if compat else "max_completion_tokens")] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.top_k is not None:
        if compat:
            body["top_k"] = req.top_k
        else:
            dropped.append(source_param(req, "top_k"))
    if req.stop:
        if len(req.stop) > 4 and not compat:
            dropped.append(source_param(req, "stop"))
        body["stop"] = req.stop if compat else req.stop[:4]
    rf = req.response_format
    if rf is not None:
        if rf.type == "json_schema":
            js: dict = {"name": rf.name or "response", "schema": rf.schema or {}}
            if rf.strict is not None:
                js["strict"] = rf.strict
            if rf.description:
                js["description"] = rf.description
            body["response_format"] = {"type": "json_schema", "json_schema": js}
        else:
            body["response_format"] = {"type": rf.type}
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # the proxy always needs usage
    r = req.reasoning
    if r is not None:
        if r.effort:
            body["reasoning_effort"] = r.effort
        elif r.enabled and r.budget_tokens is not None:
            body["reasoning_effort"] = next((e for n, e in EFFORT_FOR_BUDGET if r.budget_tokens <= n), "high")
        if r.summary and req.source_format == "responses":
            dropped.append("reasoning.summary")
    if req.metadata:
        body["metadata"] = req.metadata
    if req.user:
        body["user"] = req.user
    family = req.source_format in ("openai_chat", "responses")
    for k, v in req.extra.items():
        if family and k in CHAT_PASSTHROUGH and not (k == "store" and req.source_format == "responses"):
            body[k] = v
        elif not is_neutral(k, v) and not (k == "store" and req.source_format == "responses"):
            dropped.append(k)
    return body, dropped


# --- response ---------------------------------------------------------------------------------

def usage_to_canonical(u: Any) -> Usage:
    """OpenAI usage → canonical: Chat / Completions / Embeddings (`prompt_tokens`…) or the Responses
    shape (`input_tokens`…, also what images and transcriptions report). Counts are checked
    (`usage.CountReader`): a refused one is unknown, and noted."""
    if not isinstance(u, dict):
        return Usage()
    read = CountReader()
    if "input_tokens" in u:  # Responses API
        details = u.get("input_tokens_details")
        return read.finish(Usage(
            input_tokens=read(u, "input_tokens"),
            output_tokens=read(u, "output_tokens"),
            cached_tokens=read.count(details, "cached_tokens"),
            cache_creation_tokens=read.count(details, "cache_write_tokens"),
            reasoning_tokens=read.count(u.get("output_tokens_details"), "reasoning_tokens"),
        ))
    prompt = read(u, "prompt_tokens")
    completion = read(u, "completion_tokens")
    if u.get("completion_tokens") is None and prompt is not None and u.get("total_tokens") is not None:
        total = read(u, "total_tokens")  # embeddings: total == prompt, no completion_tokens
        completion = None if total is None else max(total - prompt, 0)
    details = u.get("prompt_tokens_details")
    return read.finish(Usage(
        input_tokens=prompt,
        output_tokens=completion,
        cached_tokens=read.count(details, "cached_tokens"),
        cache_creation_tokens=read.count(details, "cache_write_tokens"),
        reasoning_tokens=read.count(u.get("completion_tokens_details"), "reasoning_tokens"),
    ))


def usage_from_canonical(u: Usage) -> dict:
    inp = u.input_tokens or 0
    out = u.output_tokens or 0
    return {
        "prompt_tokens": inp,
        "completion_tokens": out,
        "total_tokens": inp + out,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": u.cache_creation_tokens,
                                  "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def response_to_canonical(body: dict) -> CanonicalResponse:
    body = req_dict(body, "response")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise TranslationError("provider response has no choices", "choices")
    choice = choices[0]
    msg = choice.get("message")
    msg = msg if isinstance(msg, dict) else {}
    content: list = []
    for key in ("reasoning_content", "reasoning"):
        rc = msg.get(key)
        if isinstance(rc, str) and rc:
            content.append(Thinking(rc))
            break
    text = msg.get("content")
    if isinstance(text, str) and text:
        content.append(Text(text))
    elif isinstance(text, list):  # some compatible servers return content parts
        content.extend(Text(p["text"]) for p in text if isinstance(p, dict) and isinstance(p.get("text"), str))
    refusal = msg.get("refusal") if isinstance(msg.get("refusal"), str) else None
    if refusal:
        content.append(Text(refusal))
    for tc in as_list(msg.get("tool_calls")):
        if not isinstance(tc, dict) or not isinstance(tc.get("function"), dict):
            continue
        fn = tc["function"]
        args = fn.get("arguments")
        content.append(ToolCall(str(tc.get("id") or new_id("call_")), str(fn.get("name") or ""),
                                args if isinstance(args, str) and args else "{}"))
    fc = msg.get("function_call")
    if isinstance(fc, dict):
        content.append(ToolCall(new_id("call_"), str(fc.get("name") or ""), fc.get("arguments") or "{}"))
    stop = stop_reasons.from_openai(choice.get("finish_reason"))
    if stop == "end_turn" and any(p.kind == "tool_call" for p in content):
        stop = "tool_use"
    elif stop == "end_turn" and refusal and not (isinstance(text, str) and text):
        stop = "content_filter"  # a structured-output refusal: the model declined
    created = body.get("created")
    return CanonicalResponse(
        id=str(body.get("id") or new_id("chatcmpl-")),
        model=str(body.get("model") or ""),
        content=content,
        stop_reason=stop or "end_turn",
        usage=usage_to_canonical(body.get("usage")),
        created=created if isinstance(created, int) else None,
        refusal=refusal,
    )


def response_from_canonical(resp: CanonicalResponse, *, model: str | None = None,
                            reasoning_field: str | None = None) -> dict:
    texts = [p.text for p in resp.content if p.kind == "text"]
    calls = [{"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments_json}}
             for p in resp.content if p.kind == "tool_call"]
    msg: dict = {"role": "assistant", "content": "".join(texts) if texts else None,
                 "refusal": None, "annotations": []}
    if resp.refusal and resp.stop_reason == "content_filter":
        msg["refusal"] = resp.refusal
        if msg["content"] == resp.refusal:
            msg["content"] = None
    if calls:
        msg["tool_calls"] = calls
    if reasoning_field:
        thinking = "".join(p.text for p in resp.content if p.kind == "thinking" and not p.redacted)
        if thinking:
            msg[reasoning_field] = thinking
    return {
        "id": resp.id if resp.id.startswith("chatcmpl") else "chatcmpl-" + resp.id,
        "object": "chat.completion",
        "created": resp.created or int(time.time()),
        "model": model or resp.model,
        "choices": [{"index": 0, "message": msg, "logprobs": None,
                     "finish_reason": stop_reasons.to_openai(resp.stop_reason)}],
        "usage": usage_from_canonical(resp.usage),
    }


def __getattr__(name: str):  # lazy re-export: openai_chat_stream imports this module
    if name in ("StreamParser", "StreamWriter"):
        from tollway.formats import openai_chat_stream
        return getattr(openai_chat_stream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
