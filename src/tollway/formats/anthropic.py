"""Anthropic Messages ⇄ canonical, both directions, plus streaming.

Client side: `request_to_canonical`, `response_from_canonical`, `StreamWriter`.
Provider side: `request_from_canonical`, `response_to_canonical`, `StreamParser`.
The streaming classes live in `anthropic_stream` and are re-exported here.

Usage: Anthropic's `input_tokens` excludes cache reads and writes; canonical `input_tokens` is
the whole prompt, so reads and writes are added on the way in and subtracted on the way out.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from tollway.formats import stop_reasons
from tollway.formats._util import (
    arguments_object,
    dumps_str, is_neutral, new_id, opt_bool, opt_int, opt_num, opt_str, parse_args,
    req_dict, req_list, req_str, stop_list,
)
from tollway.formats.canonical import (
    source_param,
    GEMINI_SIGNATURE_PREFIX, CanonicalRequest, CanonicalResponse, Document, Image, Message,
    NamedToolChoice, Reasoning, ResponseFormat, Text, Thinking, ToolCall, ToolDef, ToolResult,
)
from tollway.formats.errors import TranslationError
from tollway.usage import CountReader, Usage

FORMAT = "anthropic"
DEFAULT_MAX_TOKENS = 4096
# OpenAI-scale effort → thinking budget (tokens). "none" turns thinking off.
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000, "max": 32000}
MIN_BUDGET = 1024
IMAGE_TYPES = frozenset(("image/jpeg", "image/png", "image/gif", "image/webp"))

_MODELLED = frozenset((
    "model", "messages", "system", "max_tokens", "tools", "tool_choice", "temperature", "top_p",
    "top_k", "stop_sequences", "stream", "metadata", "thinking", "output_config",
))
ANTHROPIC_PASSTHROUGH = frozenset((
    "service_tier", "container", "mcp_servers", "context_management", "inference_geo", "cache_control",
))
_ID_OK = re.compile(r"^[a-zA-Z0-9_-]+$")
_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def tool_id(raw: str) -> str:
    """A tool call id Anthropic accepts (^[a-zA-Z0-9_-]+$), stable for the same input."""
    if _ID_OK.match(raw):
        return raw
    return _ID_BAD.sub("_", raw) or "toolu_empty"


# --- request: client → canonical ---------------------------------------------------------------

def _source_part(block: dict, param: str, kind: str):
    src = req_dict(block.get("source"), param + ".source")
    st = src.get("type")
    if st == "base64":
        data = req_str(src.get("data"), param + ".source.data")
        mt = opt_str(src.get("media_type"), param + ".source.media_type")
        return Image(data=data, media_type=mt) if kind == "image" else \
            Document(data=data, media_type=mt or "application/pdf", filename=opt_str(block.get("title"), param))
    if st == "url":
        url = req_str(src.get("url"), param + ".source.url")
        return Image(url=url) if kind == "image" else Document(url=url, filename=opt_str(block.get("title"), param))
    if st == "text" and kind == "document":
        data = req_str(src.get("data"), param + ".source.data")
        return Document(data=base64.b64encode(data.encode()).decode(), media_type=src.get("media_type") or "text/plain",
                        filename=opt_str(block.get("title"), param))
    if st == "file" and kind == "document":
        return Document(file_id=req_str(src.get("file_id"), param + ".source.file_id"))
    raise TranslationError(f"{kind} source type {st!r} cannot be translated", param + ".source.type")


def _blocks(content: Any, param: str, role: str) -> list:
    if isinstance(content, str):
        return [Text(content)] if content else []
    out: list = []
    for i, b in enumerate(req_list(content, param)):
        pb = f"{param}[{i}]"
        b = req_dict(b, pb)
        t = b.get("type")
        if t == "text":
            out.append(Text(req_str(b.get("text"), pb + ".text")))
        elif t == "image":
            out.append(_source_part(b, pb, "image"))
        elif t == "document":
            out.append(_source_part(b, pb, "document"))
        elif t == "tool_use" and role == "assistant":
            inp = b.get("input")
            out.append(ToolCall(req_str(b.get("id"), pb + ".id"), req_str(b.get("name"), pb + ".name"),
                                dumps_str(inp if inp is not None else {})))
        elif t == "tool_result" and role == "user":
            rc = b.get("content")
            parts = _blocks(rc, pb + ".content", "user") if rc is not None else []
            out.append(ToolResult(req_str(b.get("tool_use_id"), pb + ".tool_use_id"), parts,
                                  is_error=bool(b.get("is_error"))))
        elif t == "thinking" and role == "assistant":
            out.append(Thinking(req_str(b.get("thinking"), pb + ".thinking"), opt_str(b.get("signature"), pb)))
        elif t == "redacted_thinking" and role == "assistant":
            out.append(Thinking(req_str(b.get("data"), pb + ".data"), redacted=True))
        else:
            raise TranslationError(f"content block type {t!r} cannot be translated", pb + ".type")
    return out


def request_to_canonical(body: dict) -> CanonicalRequest:
    body = req_dict(body)
    req = CanonicalRequest(model=req_str(body.get("model"), "model"), source_format=FORMAT)
    system = body.get("system")
    if system is not None:
        req.system = [p for p in _blocks(system, "system", "system") if p.kind == "text"]
    names: dict[str, str] = {}
    for i, m in enumerate(req_list(body.get("messages"), "messages")):
        pm = f"messages[{i}]"
        m = req_dict(m, pm)
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise TranslationError(f"unknown message role {role!r}", pm + ".role")
        parts = _blocks(m.get("content"), pm + ".content", role)
        if role == "assistant":
            for p in parts:
                if p.kind == "tool_call":
                    names[p.id] = p.name
            req.messages.append(Message("assistant", parts))
            continue
        results = [p for p in parts if p.kind == "tool_result"]
        for r in results:
            r.name = names.get(r.tool_call_id)
        if results:
            req.messages.append(Message("tool", results))
        rest = [p for p in parts if p.kind != "tool_result"]
        if rest or not results:
            req.messages.append(Message("user", rest))
    for i, t in enumerate(req_list(body.get("tools") or [], "tools")):
        pt = f"tools[{i}]"
        t = req_dict(t, pt)
        if t.get("type") not in (None, "custom"):
            raise TranslationError(f"server tool {t.get('type')!r} cannot be translated", pt + ".type")
        schema = t.get("input_schema")
        req.tools.append(ToolDef(req_str(t.get("name"), pt + ".name"), opt_str(t.get("description"), pt),
                                 req_dict(schema, pt + ".input_schema") if schema is not None
                                 else {"type": "object", "properties": {}},
                                 opt_bool(t.get("strict"), pt + ".strict")))
    tc = body.get("tool_choice")
    if tc is not None:
        tc = req_dict(tc, "tool_choice")
        t = tc.get("type")
        if t == "auto":
            req.tool_choice = "auto"
        elif t == "any":
            req.tool_choice = "required"
        elif t == "none":
            req.tool_choice = "none"
        elif t == "tool":
            req.tool_choice = NamedToolChoice(req_str(tc.get("name"), "tool_choice.name"))
        else:
            raise TranslationError(f"invalid tool_choice type {t!r}", "tool_choice.type")
        if "disable_parallel_tool_use" in tc:
            req.parallel_tool_calls = not opt_bool(tc.get("disable_parallel_tool_use"), "tool_choice")
    req.max_tokens = opt_int(body.get("max_tokens"), "max_tokens")
    req.temperature = opt_num(body.get("temperature"), "temperature")
    req.top_p = opt_num(body.get("top_p"), "top_p")
    req.top_k = opt_int(body.get("top_k"), "top_k")
    req.stop = stop_list(body.get("stop_sequences"), "stop_sequences")
    req.stream = bool(opt_bool(body.get("stream"), "stream"))
    req.include_usage = req.stream
    md = body.get("metadata")
    if md is not None:
        req.user = opt_str(req_dict(md, "metadata").get("user_id"), "metadata.user_id")
    oc = body.get("output_config")
    effort = None
    if oc is not None:
        oc = req_dict(oc, "output_config")
        effort = opt_str(oc.get("effort"), "output_config.effort")
        fmt = oc.get("format")
        if fmt is not None:
            fmt = req_dict(fmt, "output_config.format")
            if fmt.get("type") != "json_schema":
                raise TranslationError("output_config.format.type must be json_schema", "output_config.format.type")
            req.response_format = ResponseFormat("json_schema", schema=req_dict(fmt.get("schema"), "output_config.format.schema"))
    th = body.get("thinking")
    if th is not None:
        th = req_dict(th, "thinking")
        tt = th.get("type")
        if tt == "enabled":
            req.reasoning = Reasoning(effort=effort, budget_tokens=opt_int(th.get("budget_tokens"), "thinking.budget_tokens"))
        elif tt == "disabled":
            req.reasoning = Reasoning(enabled=False)
        elif tt == "adaptive":
            req.reasoning = Reasoning(effort=effort or "medium")
        else:
            raise TranslationError(f"invalid thinking type {tt!r}", "thinking.type")
    elif effort:
        req.reasoning = Reasoning(effort=effort)
    req.extra = {k: v for k, v in body.items() if k not in _MODELLED}
    return req


# --- request: canonical → provider -------------------------------------------------------------

def _media_block(p, param: str) -> dict:
    if p.kind == "text":
        return {"type": "text", "text": p.text}
    if p.kind == "image":
        if p.data is not None:
            mt = p.media_type or "image/png"
            if mt not in IMAGE_TYPES:
                raise TranslationError(f"image type {mt} is not supported by Anthropic", param)
            return {"type": "image", "source": {"type": "base64", "media_type": mt, "data": p.data}}
        if p.url and p.url.startswith(("http://", "https://")):
            return {"type": "image", "source": {"type": "url", "url": p.url}}
        raise TranslationError("image references other than http(s) URLs cannot be sent to Anthropic", param)
    # document
    if p.data is not None:
        mt = p.media_type or "application/pdf"
        if mt == "application/pdf":
            src = {"type": "base64", "media_type": mt, "data": p.data}
        elif mt.startswith("text/"):
            src = {"type": "text", "media_type": "text/plain",
                   "data": base64.b64decode(p.data).decode("utf-8", "replace")}
        else:
            raise TranslationError(f"document type {mt} is not supported by Anthropic", param)
    elif p.url and p.url.startswith(("http://", "https://")):
        src = {"type": "url", "url": p.url}
    else:
        raise TranslationError("file ids cannot be sent to Anthropic", param)
    block: dict = {"type": "document", "source": src}
    if p.filename:
        block["title"] = p.filename
    return block


def _thinking_trails(req: CanonicalRequest) -> bool:
    """False when the last assistant turn called tools without a signed thinking block: Anthropic
    then rejects a request with thinking enabled, so thinking must be turned off."""
    for m in reversed(req.messages):
        if m.role == "assistant":
            if not any(p.kind == "tool_call" for p in m.content):
                return True
            return any(p.kind == "thinking" and (p.redacted or _anthropic_signature(p.signature))
                       for p in m.content)
        if m.role == "user" and not any(p.kind == "tool_result" for p in m.content):
            return True
    return True


def _anthropic_signature(sig: str | None) -> bool:
    return bool(sig) and not sig.startswith(GEMINI_SIGNATURE_PREFIX)


def request_from_canonical(req: CanonicalRequest, model: str, *, default_max_tokens: int = DEFAULT_MAX_TOKENS,
                           effort_budgets: dict[str, int] | None = None) -> tuple[dict, list[str]]:
    """canonical → Messages body for `model`; also the names of params it dropped."""
    dropped: list[str] = []
    msgs: list[dict] = []
    for i, m in enumerate(req.messages):
        pm = f"messages[{i}]"
        blocks: list[dict] = []
        if m.role == "assistant":
            for p in m.content:
                if p.kind == "thinking":
                    if p.redacted:
                        blocks.append({"type": "redacted_thinking", "data": p.text})
                    elif _anthropic_signature(p.signature):
                        blocks.append({"type": "thinking", "thinking": p.text, "signature": p.signature})
                elif p.kind == "text":
                    if p.text:
                        blocks.append({"type": "text", "text": p.text})
                elif p.kind == "tool_call":
                    blocks.append({"type": "tool_use", "id": tool_id(p.id), "name": p.name,
                                   "input": parse_args(p.arguments_json, pm + ".tool_calls.arguments")})
            role = "assistant"
        else:
            for p in m.content:
                if p.kind == "tool_result":
                    b: dict = {"type": "tool_result", "tool_use_id": tool_id(p.tool_call_id)}
                    if p.content:
                        if all(c.kind == "text" for c in p.content):
                            b["content"] = "".join(c.text for c in p.content)
                        else:
                            b["content"] = [_media_block(c, pm) for c in p.content
                                            if c.kind != "text" or c.text]
                    if p.is_error:
                        b["is_error"] = True
                    blocks.append(b)
                elif p.kind == "text":
                    if p.text:
                        blocks.append({"type": "text", "text": p.text})
                elif p.kind in ("image", "document"):
                    blocks.append(_media_block(p, pm))
            role = "user"
        if not blocks:
            continue
        if msgs and msgs[-1]["role"] == role:
            msgs[-1]["content"].extend(blocks)
        else:
            msgs.append({"role": role, "content": blocks})
    for m in msgs:  # tool_result blocks must lead a user message
        if m["role"] == "user" and len(m["content"]) > 1:
            m["content"].sort(key=lambda b: b["type"] != "tool_result")
    body: dict = {"model": model, "messages": msgs}
    if req.system:
        sys_blocks = [{"type": "text", "text": p.text} for p in req.system if p.text]
        if sys_blocks:
            body["system"] = sys_blocks
    max_tokens = req.max_tokens
    thinking_budget = None
    r = req.reasoning
    if r is not None and r.enabled and r.effort != "none":
        budgets = effort_budgets or EFFORT_BUDGETS
        thinking_budget = r.budget_tokens if r.budget_tokens is not None else budgets.get(r.effort or "medium", 8192)
        if max_tokens is None:
            max_tokens = default_max_tokens + thinking_budget
        elif thinking_budget >= max_tokens:
            thinking_budget = max_tokens // 2
        if thinking_budget < MIN_BUDGET or not _thinking_trails(req):
            thinking_budget = None
            dropped.append(source_param(req, "reasoning"))
    body["max_tokens"] = max_tokens if max_tokens is not None else default_max_tokens
    if thinking_budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": thinking_budget}
    elif r is not None and not r.enabled and req.source_format == FORMAT:
        body["thinking"] = {"type": "disabled"}
    if req.tools:
        tools = []
        for t in req.tools:
            d: dict = {"name": t.name}
            if t.description:
                d["description"] = t.description
            d["input_schema"] = t.parameters
            if t.strict:
                d["strict"] = True
            tools.append(d)
        body["tools"] = tools
        tc = req.tool_choice
        choice: dict | None = None
        if isinstance(tc, NamedToolChoice):
            choice = {"type": "tool", "name": tc.name}
        elif tc == "required":
            choice = {"type": "any"}
        elif tc == "none":
            choice = {"type": "none"}
        elif tc == "auto":
            choice = {"type": "auto"}
        if req.parallel_tool_calls is False and (choice is None or choice["type"] != "none"):
            choice = choice or {"type": "auto"}
            choice["disable_parallel_tool_use"] = True
        if thinking_budget is not None and choice and choice["type"] in ("any", "tool"):
            dropped.append(source_param(req, "tool_choice"))  # Anthropic: thinking allows only auto / none
            choice = {"type": "auto", **({"disable_parallel_tool_use": True} if choice.get("disable_parallel_tool_use") else {})}
        if choice is not None:
            body["tool_choice"] = choice
    if req.temperature is not None:
        if thinking_budget is not None and req.temperature != 1:
            dropped.append(source_param(req, "temperature"))
        else:
            body["temperature"] = min(req.temperature, 1.0)
    if req.top_p is not None:
        if thinking_budget is not None and req.top_p < 0.95:
            dropped.append(source_param(req, "top_p"))
        else:
            body["top_p"] = req.top_p
    if req.top_k is not None:
        if thinking_budget is not None:
            dropped.append(source_param(req, "top_k"))
        else:
            body["top_k"] = req.top_k
    if req.stop:
        body["stop_sequences"] = req.stop
    rf = req.response_format
    if rf is not None and rf.type != "text":
        if rf.type == "json_schema" and rf.schema is not None:
            body["output_config"] = {"format": {"type": "json_schema", "schema": rf.schema}}
        else:
            dropped.append(source_param(req, "response_format"))
    if req.stream:
        body["stream"] = True
    user = req.user or req.extra.get("safety_identifier")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    if req.metadata:
        dropped.append("metadata")
    for k, v in req.extra.items():
        if req.source_format == FORMAT and k in ANTHROPIC_PASSTHROUGH:
            body[k] = v
        elif not is_neutral(k, v):
            dropped.append(k)
    return body, dropped


# --- response ---------------------------------------------------------------------------------

def usage_to_canonical(u: Any, base: Usage | None = None) -> Usage:
    """Anthropic usage (message or message_delta) → canonical; fields absent in `u` keep `base`'s.
    Counts are checked (`usage.CountReader`): a refused one keeps what `base` knew, and is noted."""
    out = Usage() if base is None else Usage(base.input_tokens, base.output_tokens, base.cached_tokens,
                                             base.cache_creation_tokens, base.reasoning_tokens, note=base.note)
    if not isinstance(u, dict):
        return out
    read = CountReader()
    raw_in = read(u, "input_tokens")
    cache_read = read(u, "cache_read_input_tokens")
    cache_write = read(u, "cache_creation_input_tokens")
    if cache_read is not None:
        out.cached_tokens = cache_read
    if cache_write is not None:
        out.cache_creation_tokens = cache_write
    if raw_in is not None:
        out.input_tokens = raw_in + out.cached_tokens + out.cache_creation_tokens
    elif base is not None and base.input_tokens is not None and (cache_read is not None or cache_write is not None):
        uncached = max(base.input_tokens - base.cached_tokens - base.cache_creation_tokens, 0)
        out.input_tokens = uncached + out.cached_tokens + out.cache_creation_tokens
    elif u.get("input_tokens") is None and (cache_read is not None or cache_write is not None):
        out.input_tokens = out.cached_tokens + out.cache_creation_tokens  # all of the prompt was cached
    o = read(u, "output_tokens")
    if o is not None:
        out.output_tokens = o
    thinking = read(u.get("output_tokens_details"), "thinking_tokens")
    if thinking is not None:
        out.reasoning_tokens = thinking
    return read.finish(out)


def usage_from_canonical(u: Usage, *, delta: bool = False) -> dict:
    """Canonical usage → a Message `usage` (or, with delta=True, a message_delta `usage`)."""
    inp = u.input_tokens or 0
    d: dict = {
        "input_tokens": max(inp - u.cached_tokens - u.cache_creation_tokens, 0),
        "cache_creation_input_tokens": u.cache_creation_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.output_tokens or 0,
        "server_tool_use": None,
    }
    if not delta:
        d.update(cache_creation=None, inference_geo=None, service_tier=None)
    if u.reasoning_tokens:
        d["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
    return d


def response_to_canonical(body: dict) -> CanonicalResponse:
    body = req_dict(body, "response")
    content = body.get("content")
    if not isinstance(content, list):
        raise TranslationError("provider response has no content", "content")
    parts: list = []
    for b in content:
        if not isinstance(b, dict):
            continue
        t = b.get("type")
        if t == "text" and isinstance(b.get("text"), str):
            parts.append(Text(b["text"]))
        elif t == "tool_use":
            parts.append(ToolCall(str(b.get("id") or new_id("toolu_")), str(b.get("name") or ""),
                                  dumps_str(b.get("input") if b.get("input") is not None else {})))
        elif t == "thinking":
            parts.append(Thinking(str(b.get("thinking") or ""), b.get("signature") or None))
        elif t == "redacted_thinking":
            parts.append(Thinking(str(b.get("data") or ""), redacted=True))
    return CanonicalResponse(
        id=str(body.get("id") or new_id("msg_")),
        model=str(body.get("model") or ""),
        content=parts,
        stop_reason=stop_reasons.from_anthropic(body.get("stop_reason")) or "end_turn",
        stop_sequence=body.get("stop_sequence") if isinstance(body.get("stop_sequence"), str) else None,
        usage=usage_to_canonical(body.get("usage")),
    )


def _msg_id(raw: str | None) -> str:
    if not raw:
        return new_id("msg_")
    return raw if raw.startswith("msg_") else "msg_" + raw



def response_from_canonical(resp: CanonicalResponse, *, model: str | None = None) -> dict:
    content: list[dict] = []
    for p in resp.content:
        if p.kind == "text":
            content.append({"type": "text", "text": p.text})  # no `citations: null`: it breaks clients
        elif p.kind == "tool_call":
            content.append({"type": "tool_use", "id": p.id, "name": p.name, "input": arguments_object(p.arguments_json),
                            "caller": {"type": "direct"}})
        elif p.kind == "thinking":
            if p.redacted:
                content.append({"type": "redacted_thinking", "data": p.text})
            else:
                content.append({"type": "thinking", "thinking": p.text, "signature": p.signature or ""})
    return {
        "id": _msg_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": model or resp.model,
        "content": content,
        "stop_reason": stop_reasons.to_anthropic(resp.stop_reason),
        "stop_sequence": resp.stop_sequence if resp.stop_reason == "stop_sequence" else None,
        "stop_details": None,
        "usage": usage_from_canonical(resp.usage),
        "container": None,
    }


def __getattr__(name: str):  # lazy re-export: anthropic_stream imports this module
    if name in ("StreamParser", "StreamWriter"):
        from tollway.formats import anthropic_stream
        return getattr(anthropic_stream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
