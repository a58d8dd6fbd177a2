"""The semantic cache's view of a request: the question, its context, and the vector search.

Only the *last user message* is compared by meaning. Everything else (scope, model, tools,
parameters, system prompt, earlier turns, and the embedder) must match exactly: it is hashed
into the partition key, with the question's text left out. So "What's the capital of France?"
can answer "what is the capital of france", but never a request with another system prompt,
other tools, another temperature or another conversation before it.

Vectors of one partition are kept as one list of fixed-size records (16-byte entry key +
float16 vector), newest last, at most `semantic_max_entries`: the search is one numpy matrix
product over them. float16 keeps Redis reads small; its rounding (~1e-3 on a cosine) is far
below any useful threshold's margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tollway.cache.key import digest, normalised

QUESTION = "\x00question\x00"


@dataclass(slots=True)
class Question:
    text: str
    context: dict[str, Any]  # the normalised body with the question replaced by a marker
    tools: bool  # the conversation holds tool calls or tool results


def _text_of(content: Any, text_type: str) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for p in content:
            if not isinstance(p, dict) or p.get("type") != text_type or not isinstance(p.get("text"), str):
                return None  # images, files, tool results: not a plain question
            texts.append(p["text"])
        return "\n".join(texts)
    return None


_TOOL_BLOCKS = frozenset({"tool_use", "tool_result", "function_call", "function_call_output", "server_tool_use"})


def _has_tools(messages: list[Any]) -> bool:
    for m in messages:
        if not isinstance(m, dict):
            continue
        if m.get("role") == "tool" or m.get("tool_calls") or m.get("type") in _TOOL_BLOCKS:
            return True
        content = m.get("content") if "content" in m else m.get("parts")
        if isinstance(content, list):
            for p in content:
                if isinstance(p, dict) and (p.get("type") in _TOOL_BLOCKS or "functionCall" in p
                                            or "functionResponse" in p):
                    return True
    return False


def question_of(endpoint: str, body: dict[str, Any]) -> Question | None:
    """The last user message as plain text and the rest of the request, or None when the
    request does not end with a plain-text user message."""
    ctx = normalised(body)
    if endpoint in ("chat", "messages"):
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs or not isinstance(msgs[-1], dict) or msgs[-1].get("role") != "user":
            return None
        text = _text_of(msgs[-1].get("content"), "text")
        if text is None:
            return None
        ctx["messages"] = [*msgs[:-1], {**msgs[-1], "content": QUESTION}]
        return Question(text, ctx, _has_tools(msgs))
    if endpoint == "generate_content":
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents or not isinstance(contents[-1], dict):
            return None
        last = contents[-1]
        if last.get("role", "user") != "user":
            return None
        parts = last.get("parts")
        if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) and set(p) == {"text"} for p in parts):
            return None
        ctx["contents"] = [*contents[:-1], {**last, "parts": QUESTION}]
        return Question("\n".join(p["text"] for p in parts), ctx, _has_tools(contents))
    if endpoint == "responses":
        inp = body.get("input")
        if isinstance(inp, str):
            ctx["input"] = QUESTION
            return Question(inp, ctx, False)
        if not isinstance(inp, list) or not inp or not isinstance(inp[-1], dict):
            return None
        last = inp[-1]
        if last.get("role") != "user" or last.get("type", "message") != "message":
            return None
        text = _text_of(last.get("content"), "input_text")
        if text is None:
            return None
        ctx["input"] = [*inp[:-1], {**last, "content": QUESTION}]
        return Question(text, ctx, _has_tools(inp))
    return None


def partition_key(scope: str, endpoint: str, model: str, embedder: str, q: Question) -> bytes:
    dumped = orjson.dumps(q.context, option=orjson.OPT_SORT_KEYS)
    return digest(b"semantic", scope.encode(), endpoint.encode(), model.encode(), embedder.encode(), dumped)


def record(entry_key: bytes, vector: np.ndarray) -> bytes:
    return entry_key + vector.astype("<f2").tobytes()


def best_match(records: bytes | None, vector: np.ndarray, threshold: float) -> tuple[bytes, float] | None:
    """The entry key of the most similar stored question at or above `threshold`, and its
    similarity (cosine: vectors are unit length)."""
    dim = vector.shape[0]
    size = 16 + 2 * dim
    if not records or len(records) % size:
        return None
    rows = np.frombuffer(records, dtype=np.dtype([("k", "S16"), ("v", "<f2", (dim,))]))
    sims = rows["v"].astype(np.float32) @ vector.astype(np.float32)
    i = int(np.argmax(sims))
    sim = float(sims[i])
    if sim < threshold:
        return None
    return bytes(rows["k"][i]).ljust(16, b"\x00"), min(sim, 1.0)
