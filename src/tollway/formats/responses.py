"""OpenAI Responses API as a client format: request → canonical, canonical → Response object,
`output_items` for storage (previous_response_id), and the streaming event writer
(`responses_stream.StreamWriter`, re-exported here).

Reasoning items carry thinking across turns. Their `encrypted_content` holds the thinking
block's signature (or an Anthropic redacted block) behind a `tw1:` tag, so a later request
can hand it back to the provider that can verify it; a reasoning item from OpenAI itself (an
untagged blob) is kept as unsigned thinking, which other providers drop cleanly.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from tollway.formats import stop_reasons
from tollway.formats._util import (
    as_dict, as_list, new_id, opt_bool, opt_int, opt_num, opt_str, parse_data_url, req_dict,
    req_list, req_str,
)
from tollway.formats.canonical import (
    CanonicalRequest, CanonicalResponse, Document, Image, Message, NamedToolChoice, Reasoning,
    ResponseFormat, Text, Thinking, ToolCall, ToolDef, ToolResult,
)
from tollway.formats.errors import TranslationError, responses_error_object
from tollway.usage import Usage

FORMAT = "responses"
_SIG_TAG = "tw1:s:"
_REDACTED_TAG = "tw1:r:"
ENCRYPTED_INCLUDE = "reasoning.encrypted_content"

_MODELLED = frozenset((
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "temperature", "top_p", "text", "reasoning", "stream", "stream_options", "metadata", "user",
    # handled by the proxy / this module, never "dropped":
    "previous_response_id", "store", "include",
))


# --- request → canonical -----------------------------------------------------------------------

def _input_parts(content: Any, param: str) -> list:
    if isinstance(content, str):
        return [Text(content)] if content else []
    out: list = []
    for i, p in enumerate(req_list(content, param)):
        pp = f"{param}[{i}]"
        p = req_dict(p, pp)
        t = p.get("type")
        if t in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            out.append(Text(req_str(p.get("text"), pp + ".text")))
        elif t == "refusal":
            out.append(Text(req_str(p.get("refusal"), pp + ".refusal")))
        elif t == "input_image":
            url = opt_str(p.get("image_url"), pp + ".image_url")
            detail = opt_str(p.get("detail"), pp + ".detail")
            if url:
                parsed = parse_data_url(url)
                out.append(Image(data=parsed[1], media_type=parsed[0], detail=detail) if parsed
                           else Image(url=url, detail=detail))
            else:
                raise TranslationError("input_image by file_id cannot be translated", pp + ".file_id")
        elif t == "input_file":
            filename = opt_str(p.get("filename"), pp + ".filename")
            fd = opt_str(p.get("file_data"), pp + ".file_data")
            if fd:
                parsed = parse_data_url(fd)
                out.append(Document(data=parsed[1], media_type=parsed[0], filename=filename) if parsed
                           else Document(data=fd, media_type="application/pdf", filename=filename))
            elif p.get("file_url"):
                out.append(Document(url=req_str(p["file_url"], pp + ".file_url"), filename=filename))
            else:
                out.append(Document(file_id=req_str(p.get("file_id"), pp + ".file_id"), filename=filename))
        else:
            raise TranslationError(f"input content type {t!r} cannot be translated", pp + ".type")
    return out


def _thinking_from_item(item: dict, param: str) -> Thinking:
    enc = item.get("encrypted_content")
    texts = [s.get("text", "") for s in as_list(item.get("summary")) if isinstance(s, dict)]
    if not texts:
        texts = [c.get("text", "") for c in as_list(item.get("content")) if isinstance(c, dict)]
    text = "\n\n".join(t for t in texts if isinstance(t, str))
    if isinstance(enc, str):
        if enc.startswith(_REDACTED_TAG):
            return Thinking(enc[len(_REDACTED_TAG):], redacted=True)
        if enc.startswith(_SIG_TAG):
            return Thinking(text, enc[len(_SIG_TAG):])
    return Thinking(text)


def _items_to_messages(items: Iterable[Any], req: CanonicalRequest, param: str, names: dict[str, str]) -> None:
    msgs = req.messages
    for i, item in enumerate(items):
        pi = f"{param}[{i}]"
        item = req_dict(item, pi)
        t = item.get("type") or ("message" if "role" in item else None)
        if t == "message":
            role = item.get("role")
            parts = _input_parts(item.get("content"), pi + ".content")
            if role in ("system", "developer"):
                req.system.extend(p for p in parts if p.kind == "text")
                continue
            if role not in ("user", "assistant"):
                raise TranslationError(f"unknown message role {role!r}", pi + ".role")
            if role == "assistant" and msgs and msgs[-1].role == "assistant":
                msgs[-1].content.extend(parts)
            else:
                msgs.append(Message(role, parts))
        elif t == "function_call":
            call = ToolCall(req_str(item.get("call_id"), pi + ".call_id"), req_str(item.get("name"), pi + ".name"),
                            opt_str(item.get("arguments"), pi + ".arguments") or "{}")
            names[call.id] = call.name
            if msgs and msgs[-1].role == "assistant":
                msgs[-1].content.append(call)
            else:
                msgs.append(Message("assistant", [call]))
        elif t == "function_call_output":
            cid = req_str(item.get("call_id"), pi + ".call_id")
            out = item.get("output")
            parts = _input_parts(out, pi + ".output") if out is not None else []
            result = ToolResult(cid, parts, names.get(cid) or opt_str(item.get("name"), pi + ".name"))
            if msgs and msgs[-1].role == "tool":
                msgs[-1].content.append(result)
            else:
                msgs.append(Message("tool", [result]))
        elif t == "reasoning":
            th = _thinking_from_item(item, pi)
            if msgs and msgs[-1].role == "assistant":
                msgs[-1].content.append(th)
            else:
                msgs.append(Message("assistant", [th]))
        elif t == "item_reference":
            raise TranslationError("item_reference inputs cannot be translated", pi)
        else:
            raise TranslationError(f"input item type {t!r} cannot be translated", pi + ".type")


def request_to_canonical(body: dict, history: Iterable[dict] = ()) -> CanonicalRequest:
    """`history`: the stored input and output items of the previous responses (oldest first),
    for `previous_response_id`. Their instructions are not carried over (as in the API)."""
    body = req_dict(body)
    req = CanonicalRequest(model=req_str(body.get("model"), "model"), source_format=FORMAT)
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        if instructions:
            req.system.append(Text(instructions))
    elif instructions is not None:
        raise TranslationError("instructions must be a string", "instructions")
    names: dict[str, str] = {}
    _items_to_messages(history, req, "history", names)
    inp = body.get("input")
    if isinstance(inp, str):
        req.messages.append(Message("user", [Text(inp)]))
    elif inp is not None:
        _items_to_messages(req_list(inp, "input"), req, "input", names)
    if not req.messages:
        raise TranslationError("input must not be empty", "input")
    for i, t in enumerate(req_list(body.get("tools") or [], "tools")):
        pt = f"tools[{i}]"
        t = req_dict(t, pt)
        if t.get("type") != "function":
            req.extra[f"tools[{t.get('type')}]"] = t  # hosted tools: the target cannot run them
            continue
        params = t.get("parameters")
        req.tools.append(ToolDef(req_str(t.get("name"), pt + ".name"), opt_str(t.get("description"), pt),
                                 req_dict(params, pt + ".parameters") if params is not None
                                 else {"type": "object", "properties": {}},
                                 opt_bool(t.get("strict"), pt + ".strict")))
    req.tool_choice = _tool_choice_in(body.get("tool_choice"), req)
    req.parallel_tool_calls = opt_bool(body.get("parallel_tool_calls"), "parallel_tool_calls")
    req.max_tokens = opt_int(body.get("max_output_tokens"), "max_output_tokens")
    req.temperature = opt_num(body.get("temperature"), "temperature")
    req.top_p = opt_num(body.get("top_p"), "top_p")
    text = body.get("text")
    if text is not None:
        text = req_dict(text, "text")
        fmt = text.get("format")
        if fmt is not None:
            fmt = req_dict(fmt, "text.format")
            ft = fmt.get("type")
            if ft in ("text", "json_object"):
                req.response_format = ResponseFormat(ft)
            elif ft == "json_schema":
                req.response_format = ResponseFormat(
                    "json_schema", name=opt_str(fmt.get("name"), "text.format.name"),
                    schema=req_dict(fmt.get("schema"), "text.format.schema"),
                    strict=opt_bool(fmt.get("strict"), "text.format.strict"),
                    description=opt_str(fmt.get("description"), "text.format.description"))
            else:
                raise TranslationError(f"text.format type {ft!r} cannot be translated", "text.format.type")
        if text.get("verbosity") not in (None, "medium"):
            req.extra["verbosity"] = text["verbosity"]
    r = body.get("reasoning")
    if r is not None:
        r = req_dict(r, "reasoning")
        effort = opt_str(r.get("effort"), "reasoning.effort")
        summary = opt_str(r.get("summary"), "reasoning.summary") or opt_str(r.get("generate_summary"), "reasoning")
        if effort or summary:
            req.reasoning = Reasoning(effort=effort, summary=summary, enabled=effort != "none")
    req.stream = bool(opt_bool(body.get("stream"), "stream"))
    req.include_usage = req.stream
    md = body.get("metadata")
    req.metadata = req_dict(md, "metadata") if md else None
    req.user = opt_str(body.get("user"), "user")
    include = body.get("include")
    if include:
        other = [x for x in req_list(include, "include") if x != ENCRYPTED_INCLUDE]
        if other:
            req.extra["include"] = other
    for k, v in body.items():
        if k not in _MODELLED and v is not None:
            req.extra[k] = v
    return req


def _tool_choice_in(tc: Any, req: CanonicalRequest):
    if tc is None:
        return None
    if isinstance(tc, str):
        if tc not in ("auto", "none", "required"):
            raise TranslationError(f"invalid tool_choice {tc!r}", "tool_choice")
        return tc
    tc = req_dict(tc, "tool_choice")
    t = tc.get("type")
    if t == "function":
        return NamedToolChoice(req_str(tc.get("name"), "tool_choice.name"))
    if t == "allowed_tools":
        allowed = {x.get("name") for x in req_list(tc.get("tools"), "tool_choice.tools") if isinstance(x, dict)}
        req.tools = [d for d in req.tools if d.name in allowed]
        return "required" if tc.get("mode") == "required" else "auto"
    raise TranslationError(f"tool_choice type {t!r} cannot be translated", "tool_choice.type")


# --- canonical → Response ----------------------------------------------------------------------

def usage_from_canonical(u: Usage) -> dict:
    inp = u.input_tokens or 0
    out = u.output_tokens or 0
    return {"input_tokens": inp,
            "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": u.cache_creation_tokens},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": inp + out}


def new_response_id() -> str:
    return new_id("resp_", 16)


def item_id(response_id: str, prefix: str, output_index: int) -> str:
    """Output item ids derived from the response id, so a stream and its stored items agree."""
    base = response_id[5:] if response_id.startswith("resp_") else response_id
    return f"{prefix}_{base}{output_index:02x}"


def encrypted_content(p: Thinking) -> str | None:
    if p.redacted:
        return _REDACTED_TAG + p.text
    return _SIG_TAG + p.signature if p.signature else None


def reasoning_item(rid: str, n: int, p: Thinking, *, with_encrypted: bool, status: str | None = None) -> dict:
    item: dict = {"id": item_id(rid, "rs", n), "type": "reasoning",
                  "summary": [{"type": "summary_text", "text": p.text}] if p.text and not p.redacted else []}
    enc = encrypted_content(p)
    if with_encrypted and enc is not None:
        item["encrypted_content"] = enc
    if status:
        item["status"] = status
    return item


def message_item(rid: str, n: int, text: str, status: str = "completed", refusal: bool = False) -> dict:
    part = {"type": "refusal", "refusal": text} if refusal else \
        {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"id": item_id(rid, "msg", n), "type": "message", "role": "assistant", "status": status,
            "content": [part]}


def function_call_item(rid: str, n: int, p: ToolCall, status: str = "completed") -> dict:
    return {"id": item_id(rid, "fc", n), "type": "function_call", "status": status,
            "call_id": p.id, "name": p.name, "arguments": p.arguments_json}


def output_items(resp: CanonicalResponse, response_id: str | None = None, *,
                 with_encrypted: bool = True) -> list[dict]:
    """The Response's output items, one per canonical content part, as stored for
    previous_response_id (encrypted reasoning content included by default). Pass the id
    given to `response_from_canonical` so the stored item ids match what the client saw."""
    response_id = response_id or new_response_id()
    items: list[dict] = []
    for p in resp.content:
        n = len(items)
        if p.kind == "text":
            refusal = resp.refusal is not None and resp.stop_reason == "content_filter" and p.text == resp.refusal
            items.append(message_item(response_id, n, p.text, refusal=refusal))
        elif p.kind == "tool_call":
            items.append(function_call_item(response_id, n, p))
        elif p.kind == "thinking":
            items.append(reasoning_item(response_id, n, p, with_encrypted=with_encrypted))
    return items


def wants_encrypted(request_body: dict) -> bool:
    inc = request_body.get("include")
    return isinstance(inc, list) and ENCRYPTED_INCLUDE in inc


def response_shell(request_body: dict, response_id: str, model: str, created_at: float | None = None) -> dict:
    """A Response object echoing the request, with no output yet (status in_progress)."""
    b = request_body if isinstance(request_body, dict) else {}
    r = b.get("reasoning") if isinstance(b.get("reasoning"), dict) else {}
    text = b.get("text") if isinstance(b.get("text"), dict) else {}
    tools = []
    for t in as_list(b.get("tools")):
        if isinstance(t, dict):
            t = dict(t)
            if t.get("type") == "function":
                t.setdefault("strict", True)
                t.setdefault("parameters", {"type": "object", "properties": {}})
            tools.append(t)
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": b.get("instructions"),
        "max_output_tokens": b.get("max_output_tokens"),
        "max_tool_calls": b.get("max_tool_calls"),
        "model": model,
        "output": [],
        "parallel_tool_calls": b.get("parallel_tool_calls") if isinstance(b.get("parallel_tool_calls"), bool) else True,
        "previous_response_id": b.get("previous_response_id"),
        "reasoning": {"effort": r.get("effort"), "summary": r.get("summary")},
        "service_tier": "default",
        "store": b.get("store") if isinstance(b.get("store"), bool) else True,
        "temperature": b.get("temperature") if b.get("temperature") is not None else 1.0,
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity") or "medium"},
        "tool_choice": b.get("tool_choice") if b.get("tool_choice") is not None else "auto",
        "tools": tools,
        "top_p": b.get("top_p") if b.get("top_p") is not None else 1.0,
        "truncation": b.get("truncation") or "disabled",
        "metadata": as_dict(b.get("metadata")),
    } | ({"user": b["user"]} if isinstance(b.get("user"), str) else {})


def finalize(shell: dict, stop_reason: str | None, usage: Usage, output: list[dict]) -> dict:
    status, reason = stop_reasons.to_responses(stop_reason)
    shell["status"] = status
    shell["output"] = output
    shell["usage"] = usage_from_canonical(usage)
    if status == "incomplete":
        shell["incomplete_details"] = {"reason": reason}
    elif status == "failed":
        shell["error"] = responses_error_object("api_error", "the model produced an invalid response")
    if status == "completed":
        shell["completed_at"] = int(time.time())
    return shell


def response_from_canonical(resp: CanonicalResponse, request_body: dict, *, response_id: str | None = None,
                            model: str | None = None, created_at: float | None = None) -> dict:
    """A complete Response object (status completed | incomplete | failed)."""
    rid = response_id or new_response_id()
    shell = response_shell(request_body, rid, model or resp.model, created_at)
    items = output_items(resp, rid, with_encrypted=wants_encrypted(request_body))
    if resp.stop_reason in ("max_tokens", "content_filter") and items and items[-1]["type"] != "reasoning":
        items[-1]["status"] = "incomplete"  # the item cut by the limit, as the API reports it
    return finalize(shell, resp.stop_reason, resp.usage, items)


def input_items(body: dict) -> list[dict]:
    """The request's input as items (a plain string becomes a user message), for storage."""
    inp = body.get("input")
    if isinstance(inp, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": inp}]}]
    return [i for i in inp if isinstance(i, dict)] if isinstance(inp, list) else []


def __getattr__(name: str):  # lazy re-export: responses_stream imports this module
    if name == "StreamWriter":
        from tollway.formats.responses_stream import StreamWriter
        return StreamWriter
    raise AttributeError(name)


__all__ = [  # noqa: F822 (StreamWriter is resolved lazily by __getattr__ above)
    "StreamWriter", "request_to_canonical", "response_from_canonical", "output_items", "input_items",
    "response_shell", "new_response_id", "usage_from_canonical",
]
