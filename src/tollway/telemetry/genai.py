"""OpenTelemetry GenAI semantic conventions, as plain data: names and values read from
Tollway's requests and responses. No OpenTelemetry import here (see `tracing`).

Conventions followed: the GenAI client spans of the OpenTelemetry semantic conventions
(development status): `gen_ai.operation.name`, `gen_ai.provider.name` (well-known values
`openai`, `anthropic`, `azure.ai.openai`, `gcp.gemini`), `gen_ai.request.*`,
`gen_ai.response.*`, `gen_ai.usage.*` (cache reads and writes as
`gen_ai.usage.cache_read.input_tokens` / `gen_ai.usage.cache_creation.input_tokens`), and the
opt-in content attributes `gen_ai.input.messages`, `gen_ai.output.messages` and
`gen_ai.system_instructions` (JSON strings in the conventions' message schema).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

# client endpoint -> gen_ai.operation.name
OPERATIONS = {
    "chat": "chat", "messages": "chat", "responses": "chat", "completions": "text_completion",
    "embeddings": "embeddings", "count_tokens": "count_tokens",
}
# provider kind -> gen_ai.provider.name (OpenAI-compatible servers speak OpenAI's flavour)
PROVIDER_NAMES = {
    "openai": "openai", "azure_openai": "azure.ai.openai", "anthropic": "anthropic", "gemini": "gcp.gemini",
    "openai_compatible": "openai", "demo": "tollway.demo",
}

_ID = re.compile(rb'"(?:id|responseId)"\s*:\s*"([^"]{1,200})"')
# A finish reason: `"finish_reason"`, `"stop_reason"` or `"finishReason"` with a string value.
# Stream blocks are scanned for the keys' common tail (`eason"`, a literal the regex engine
# finds fast) and a match is kept when the key before it is one of the three; a small block
# where every such key is `null` (most chunks of an OpenAI stream, relayed one by one) is
# skipped with two counts (on a large block they would cost more than the scan).
_FINISH_TAIL = re.compile(rb'eason"\s*:\s*"([^"]{1,60})"')
_FINISH_KEYS = (b'"finish_r', b'"stop_r', b'"finishR')
# Client endpoints whose streams can hold Responses API status events: the Responses API's
# own, and passthrough routes (the provider's bytes as they came). The others relay their
# own format (Chat Completions, Messages, Gemini), whose events have no such type.
STATUS_ENDPOINTS = frozenset(("responses", "passthrough"))
_RESPONSE_STATUS = re.compile(rb'"type"\s*:\s*"response\.(completed|incomplete|failed)"')


def operation(endpoint: str) -> str | None:
    return OPERATIONS.get(endpoint)


def provider_name(kind: str) -> str:
    return PROVIDER_NAMES.get(kind, kind)


def request_attributes(body: dict[str, Any] | None) -> dict[str, Any]:
    """gen_ai.request.max_tokens / temperature / top_p from a client body in any format."""
    if not body:
        return {}
    out: dict[str, Any] = {}
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        v = body.get(name)
        if isinstance(v, int) and not isinstance(v, bool):
            out["gen_ai.request.max_tokens"] = v
            break
    for key, attr in (("temperature", "gen_ai.request.temperature"), ("top_p", "gen_ai.request.top_p")):
        v = body.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[attr] = float(v)
    if body.get("stream") is True:
        out["gen_ai.request.stream"] = True
    return out


class ResponseMeta:
    """Response id and finish reasons, from a parsed body or from relayed stream bytes."""

    __slots__ = ("id", "finish_reasons", "body", "stream_bytes", "keep_bytes", "statuses")

    def __init__(self, keep_bytes: int = 0, statuses: bool = True) -> None:
        self.id: str | None = None
        self.finish_reasons: list[str] = []
        self.body: dict[str, Any] | None = None  # kept only when content is captured
        self.stream_bytes: list[bytes] = []
        self.keep_bytes = keep_bytes  # > 0: keep up to this many stream bytes for content capture
        # look for Responses API status events (`"type":"response.completed"`, ...): only a
        # stream that can carry them needs the scan (see STATUS_ENDPOINTS)
        self.statuses = statuses

    def from_body(self, body: dict[str, Any]) -> None:
        rid = body.get("id") or body.get("responseId")
        if isinstance(rid, str):
            self.id = rid
        reasons: list[str] = []
        for choice in body.get("choices") or body.get("candidates") or ():
            if isinstance(choice, dict):
                r = choice.get("finish_reason") or choice.get("finishReason")
                if isinstance(r, str):
                    reasons.append(r)
        if isinstance(body.get("stop_reason"), str):
            reasons.append(body["stop_reason"])
        if body.get("object") == "response" and isinstance(body.get("status"), str):
            reasons.append(body["status"])
        self.finish_reasons = reasons
        if self.keep_bytes:
            self.body = body

    def from_stream(self, block: bytes) -> None:
        if self.id is None:
            m = _ID.search(block)
            if m:
                self.id = m.group(1).decode("utf-8", "replace")
        if len(block) > 1024 or ((n := block.count(b'eason"')) and n != block.count(b'eason":null')):
            for m in _FINISH_TAIL.finditer(block):
                if block.endswith(_FINISH_KEYS, 0, m.start()):
                    self.finish_reasons.append(m.group(1).decode())
        if self.statuses and b'"response.' in block:
            self.finish_reasons.extend(m.decode() for m in _RESPONSE_STATUS.findall(block))
        if self.keep_bytes > 0 and block:
            part = block[: self.keep_bytes]
            self.stream_bytes.append(part)
            self.keep_bytes -= len(part)
            if self.keep_bytes == 0:
                self.keep_bytes = -1  # full: keep no more, but remember that content was wanted


# -- content (only with [otel] capture_content = true) ---------------------------------------------

def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for p in content or ():
        if not isinstance(p, dict):
            continue
        kind = p.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append({"type": "text", "content": p.get("text", "")})
        elif kind == "tool_use":
            parts.append({"type": "tool_call", "id": p.get("id"), "name": p.get("name"), "arguments": p.get("input")})
        elif kind == "tool_result":
            parts.append({"type": "tool_call_response", "id": p.get("tool_use_id"),
                          "result": p.get("content")})
        elif kind in ("image_url", "image", "input_image", "document", "input_file"):
            parts.append({"type": "blob" if kind != "image_url" else "uri", "modality": "image"
                          if "image" in kind else "document"})
    return parts


def input_messages(body: dict[str, Any] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(gen_ai.input.messages, gen_ai.system_instructions) from a chat, messages, Responses,
    completions or embeddings body."""
    if not body:
        return [], []
    system: list[dict[str, Any]] = []
    if body.get("system") is not None:
        system = _text_parts(body["system"])
    if isinstance(body.get("instructions"), str):
        system = [{"type": "text", "content": body["instructions"]}]
    messages: list[dict[str, Any]] = []
    items = body.get("messages")
    if items is None:
        items = body.get("input", body.get("prompt"))
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for m in items if isinstance(items, list) else ():
        if isinstance(m, str):
            messages.append({"role": "user", "parts": [{"type": "text", "content": m}]})
            continue
        if not isinstance(m, dict):
            continue
        role = m.get("role") or "user"
        parts = _text_parts(m.get("content"))
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append({"type": "tool_call", "id": call.get("id"), "name": fn.get("name"),
                          "arguments": fn.get("arguments")})
        if role == "tool":
            parts = [{"type": "tool_call_response", "id": m.get("tool_call_id"), "result": m.get("content")}]
        messages.append({"role": role, "parts": parts})
    return messages, system


_DELTA_TEXT = re.compile(rb'"(?:content|text|delta)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def output_messages(meta: ResponseMeta, fallback_text: str | None = None) -> list[dict[str, Any]]:
    """gen_ai.output.messages from a kept body (whole responses) or kept stream bytes."""
    reason = meta.finish_reasons[-1] if meta.finish_reasons else None
    text: str | None = None
    if meta.body is not None:
        b = meta.body
        if isinstance(b.get("choices"), list) and b["choices"]:
            msg = b["choices"][0].get("message") or {}
            text = msg.get("content") if isinstance(msg.get("content"), str) else b["choices"][0].get("text")
        elif isinstance(b.get("content"), list):
            text = "".join(p.get("text", "") for p in b["content"] if isinstance(p, dict))
        elif isinstance(b.get("output"), list):
            text = "".join(c.get("text", "") for item in b["output"] if isinstance(item, dict)
                           for c in item.get("content") or () if isinstance(c, dict))
    elif meta.stream_bytes:
        pieces = []
        for line in b"".join(meta.stream_bytes).split(b"\n"):
            if not line.startswith(b"data:") or b"delta" not in line:
                continue
            for m in _DELTA_TEXT.findall(line):
                try:
                    pieces.append(orjson.loads(b'"' + m + b'"'))
                except orjson.JSONDecodeError:
                    continue
        text = "".join(p for p in pieces if isinstance(p, str))
    if text is None:
        text = fallback_text
    if text is None:
        return []
    out: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if reason:
        out["finish_reason"] = reason
    return [out]


def clip_json(value: Any, limit: int) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[:limit] + "…"
