"""Gemini (Generative Language API v1beta) wire shapes, built from fixtures."""

from __future__ import annotations

import json
import math
from typing import Any

from .fixtures import fixture
from .openai_wire import rand
from .scenario import THINKING_TEXT, Scenario, embedding_vector
from .sse import Sse

P = "gemini"
LINE_END = "\r\n"  # Google frames SSE lines with CRLF


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, ensure_ascii=False).encode()


def _stream_json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ": "), ensure_ascii=False)


def error_body(status: int) -> dict:
    errors = fixture(P, "error")
    body = errors.get(str(status))
    if body is None:
        body = errors["default_5xx" if status >= 500 else "default_4xx"]
        body["error"]["code"] = status
    return body


def named_error(name: str) -> dict:
    return fixture(P, "error", name)


def headers() -> dict[str, str]:
    return fixture(P, "headers")


def model_list() -> dict:
    return fixture(P, "model_list")


def usage(sc: Scenario, candidates: int | None = None) -> dict:
    u = fixture(P, "generate_content")["usageMetadata"]
    cand = sc.output_tokens if candidates is None else candidates
    u["promptTokenCount"] = sc.input_tokens
    u["candidatesTokenCount"] = cand
    u["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": sc.input_tokens}]
    total = sc.input_tokens + cand
    if sc.directives.cache:
        u["cachedContentTokenCount"] = sc.cache_read  # part of promptTokenCount
        u["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": sc.cache_read}]
    if sc.directives.thinking:
        u["thoughtsTokenCount"] = sc.reasoning_tokens  # not part of candidatesTokenCount
        total += sc.reasoning_tokens
    u["totalTokenCount"] = total
    # keep Google's key order: counts first, then details
    order = ["promptTokenCount", "candidatesTokenCount", "totalTokenCount", "cachedContentTokenCount",
             "promptTokensDetails", "cacheTokensDetails", "thoughtsTokenCount"]
    return {k: u[k] for k in order if k in u} | {k: v for k, v in u.items() if k not in order}


def _finish(sc: Scenario) -> str:
    return "MAX_TOKENS" if sc.directives.max_tokens else "STOP"


THOUGHT_SIGNATURE = "CiQBcsjafDuPhbJvH1EL0mR4uXbY5kHsEBIUKuC0vjlbuB4FOJ8="  # with [[leak_thinking]]


def _thought_part(text: str = THINKING_TEXT, signature: str | None = None) -> dict:
    part = fixture(P, "parts", "thought")
    part["text"] = text
    if signature:
        part["thoughtSignature"] = signature
    return part


def _call_parts(sc: Scenario) -> list[dict]:
    parts = []
    for name, args in sc.tool_calls:
        part = fixture(P, "parts", "function_call")
        part["functionCall"] = {"name": name, "args": args}
        parts.append(part)
    return parts


def _text_part(text: str) -> dict:
    part = fixture(P, "parts", "text")
    part["text"] = text
    return part


def generate_content(sc: Scenario) -> dict:
    body = fixture(P, "generate_content")
    parts = [_thought_part(sc.thinking_text, THOUGHT_SIGNATURE)] if sc.directives.leak_thinking else \
        [_thought_part()] if sc.directives.thinking else []
    parts += _call_parts(sc) if sc.tool_calls else [_text_part(sc.text)]
    cand = body["candidates"][0]
    cand["content"]["parts"] = parts
    cand["finishReason"] = _finish(sc)
    body["modelVersion"] = sc.response_model("gemini")
    body["responseId"] = rand(22)
    if sc.directives.no_usage:
        body.pop("usageMetadata")
    else:
        body["usageMetadata"] = usage(sc)
    return body


def stream(sc: Scenario) -> list[Sse]:
    fx = fixture(P, "stream_chunks")
    rid, model = rand(22), sc.response_model("gemini")
    payloads: list[list[dict]] = []
    if sc.directives.leak_thinking:  # the thought streamed in pieces, split mid-key
        pieces = sc.thinking_pieces
        payloads += [[_thought_part(p, THOUGHT_SIGNATURE if i == len(pieces) - 1 else None)]
                     for i, p in enumerate(pieces)]
    elif sc.directives.thinking:
        payloads.append([_thought_part()])
    if sc.tool_calls:
        payloads.append(_call_parts(sc))  # Gemini sends function calls whole, in one chunk
    else:
        payloads += [[_text_part(p)] for p in sc.pieces]
    events = []
    n = len(payloads)
    for i, parts in enumerate(payloads):
        last = i == n - 1
        c = json.loads(json.dumps(fx["last" if last else "chunk"]))
        c["candidates"][0]["content"]["parts"] = parts
        if last:
            c["candidates"][0]["finishReason"] = _finish(sc)
        c["modelVersion"], c["responseId"] = model, rid
        if sc.directives.no_usage:
            c.pop("usageMetadata")
        else:
            u = usage(sc, candidates=sc.output_tokens if last else math.ceil(sc.output_tokens * (i + 1) / n))
            if last:
                u["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": sc.output_tokens}]
            c["usageMetadata"] = u
        events.append(Sse(_stream_json(c)))
    return events


def stream_error_event() -> Sse:
    return Sse(_stream_json(fixture(P, "error", "500")))


def embed_content(sc: Scenario, req: dict) -> dict:
    body = fixture(P, "embed_content")
    text = " ".join(p.get("text", "") for p in (req.get("content") or {}).get("parts", []) if isinstance(p, dict))
    body["embedding"]["values"] = embedding_vector(text, req.get("outputDimensionality"))
    return body


def batch_embed_contents(sc: Scenario, req: dict) -> dict:
    body = fixture(P, "batch_embed_contents")
    template = body["embeddings"][0]
    out = []
    for r in req.get("requests") or []:
        text = " ".join(p.get("text", "") for p in (r.get("content") or {}).get("parts", []) if isinstance(p, dict))
        out.append({**template, "values": embedding_vector(text, r.get("outputDimensionality"))})
    body["embeddings"] = out
    return body


def count_tokens(sc: Scenario) -> dict:
    body = fixture(P, "count_tokens")
    body["totalTokens"] = sc.input_tokens
    body["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": sc.input_tokens}]
    if sc.directives.cache:
        body["cachedContentTokenCount"] = sc.cache_read
    return body
