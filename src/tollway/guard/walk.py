"""Where the client's text is, per wire format: each walker lists the string slots of a body.

A slot is `(container, key)` with `container[key]` a str the client wrote: messages, system
prompts, tool results, tool-call arguments, Responses input items, Anthropic content blocks.
Images, audio and files are not text and are skipped (an Anthropic document is scanned when
its source is text the client pasted), and so are Anthropic
thinking blocks (their signature covers the text: rewriting it would make the provider refuse
the conversation). Adding a format is one function in `WALKERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Slot = tuple[Any, Any]
Walker = Callable[[dict[str, Any], list[Slot]], None]

_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
# generic JSON (pass-through bodies): keys whose strings are not prose
_NOT_PROSE = frozenset({"model", "id", "type", "role", "object", "url", "image_url", "file_id", "file_data", "data",
                        "b64_json", "audio", "input_audio", "signature", "encrypted_content", "previous_response_id",
                        "tool_call_id", "call_id", "mime_type", "media_type", "format", "voice", "purpose"})


def _str(container: Any, key: Any, out: list[Slot]) -> None:
    if isinstance(container[key], str) and container[key]:
        out.append((container, key))


def _items(node: Any) -> Any:
    return iter(node.items()) if isinstance(node, dict) else enumerate(node)


def _leaves(obj: Any, out: list[Slot], skip: frozenset[str] = frozenset()) -> None:
    """Every string in a JSON value (tool arguments, function responses, pass-through bodies),
    in document order and at any depth: walked with a stack of iterators, not recursion, so
    nesting cannot hide a string (a secret 33 levels down in a tool input went out unscanned
    when the walk stopped at a depth)."""
    if not isinstance(obj, (dict, list)):
        return
    stack = [(obj, _items(obj))]
    while stack:
        node, it = stack[-1]
        for k, v in it:
            if isinstance(v, str):
                if v and k not in skip:
                    out.append((node, k))
            elif isinstance(v, (dict, list)) and k not in skip:
                stack.append((v, _items(v)))
                break
        else:
            stack.pop()


def _parts(container: Any, key: Any, out: list[Slot]) -> None:
    """A string, or a list of typed parts of which the text ones count (OpenAI, Responses)."""
    v = container.get(key) if isinstance(container, dict) else None
    if isinstance(v, str):
        _str(container, key, out)
    elif isinstance(v, list):
        for p in v:
            if isinstance(p, dict) and p.get("type") in _TEXT_PARTS and isinstance(p.get("text"), str):
                _str(p, "text", out)


def openai_chat(body: dict[str, Any], out: list[Slot]) -> None:
    prediction = body.get("prediction")  # predicted output: text the client sends the model
    if isinstance(prediction, dict):
        _parts(prediction, "content", out)
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for m in messages:
        if not isinstance(m, dict):
            continue
        _parts(m, "content", out)
        calls = m.get("tool_calls")
        if isinstance(calls, list):
            for c in calls:
                fn = c.get("function") if isinstance(c, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    _str(fn, "arguments", out)
        fc = m.get("function_call")  # the legacy single call
        if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
            _str(fc, "arguments", out)


def openai_completions(body: dict[str, Any], out: list[Slot]) -> None:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        _str(body, "prompt", out)
    elif isinstance(prompt, list):
        out.extend((prompt, i) for i, p in enumerate(prompt) if isinstance(p, str) and p)
    if isinstance(body.get("suffix"), str):
        _str(body, "suffix", out)


def openai_embeddings(body: dict[str, Any], out: list[Slot]) -> None:
    inp = body.get("input")
    if isinstance(inp, str):
        _str(body, "input", out)
    elif isinstance(inp, list):
        out.extend((inp, i) for i, p in enumerate(inp) if isinstance(p, str) and p)


def responses(body: dict[str, Any], out: list[Slot]) -> None:
    if isinstance(body.get("instructions"), str):
        _str(body, "instructions", out)
    inp = body.get("input")
    if isinstance(inp, str):
        _str(body, "input", out)
        return
    if not isinstance(inp, list):
        return
    for item in inp:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            _parts(item, "content", out)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            _parts(item, "output", out)
        elif kind.endswith("_output") and "output" in item:  # shell, MCP, computer ... results
            if isinstance(item["output"], str):
                _str(item, "output", out)
            else:
                _leaves(item["output"], out, skip=_NOT_PROSE)
        elif kind == "function_call" and isinstance(item.get("arguments"), str):
            _str(item, "arguments", out)
        elif kind == "custom_tool_call" and isinstance(item.get("input"), str):
            _str(item, "input", out)


def _anthropic_blocks(container: Any, key: Any, out: list[Slot]) -> None:
    v = container.get(key)
    if isinstance(v, str):
        _str(container, key, out)
        return
    if not isinstance(v, list):
        return
    for b in v:
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text" and isinstance(b.get("text"), str):
            _str(b, "text", out)
        elif kind == "tool_result":
            _anthropic_blocks(b, "content", out)
        elif kind in ("tool_use", "server_tool_use") and isinstance(b.get("input"), (dict, list)):
            _leaves(b["input"], out)
        elif kind == "document":  # text the client pasted: a plain-text source, or content blocks
            src = b.get("source")
            if isinstance(src, dict) and src.get("type") == "text" and isinstance(src.get("data"), str):
                _str(src, "data", out)
            elif isinstance(src, dict) and src.get("type") == "content":
                _anthropic_blocks(src, "content", out)
            for k in ("title", "context"):
                if isinstance(b.get(k), str):
                    _str(b, k, out)
        elif kind == "search_result":
            _anthropic_blocks(b, "content", out)


def anthropic_messages(body: dict[str, Any], out: list[Slot]) -> None:
    _anthropic_blocks(body, "system", out)
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict):
                _anthropic_blocks(m, "content", out)


def _gemini_content(c: Any, out: list[Slot]) -> None:
    parts = c.get("parts") if isinstance(c, dict) else None
    if not isinstance(parts, list):
        return
    for p in parts:
        if not isinstance(p, dict) or p.get("thought"):
            continue
        if isinstance(p.get("text"), str):
            _str(p, "text", out)
        for k in ("functionCall", "functionResponse", "executableCode", "codeExecutionResult"):
            if isinstance(p.get(k), dict):
                _leaves(p[k], out, skip=frozenset({"name", "id"}))


def gemini(body: dict[str, Any], out: list[Slot]) -> None:
    for key in ("systemInstruction", "system_instruction"):
        _gemini_content(body.get(key), out)
    contents = body.get("contents")
    if isinstance(contents, list):
        for c in contents:
            _gemini_content(c, out)


def gemini_embed(body: dict[str, Any], out: list[Slot]) -> None:
    """embedContent ({content}) and batchEmbedContents ({requests: [{content}]})."""
    _gemini_content(body.get("content"), out)
    requests = body.get("requests")
    if isinstance(requests, list):
        for r in requests:
            if isinstance(r, dict):
                _gemini_content(r.get("content"), out)


def gemini_count_tokens(body: dict[str, Any], out: list[Slot]) -> None:
    gemini(body, out)
    for key in ("generateContentRequest", "generate_content_request"):
        if isinstance(body.get(key), dict):
            gemini(body[key], out)


def generic_json(body: dict[str, Any], out: list[Slot]) -> None:
    """Pass-through bodies of any shape: every string, less ids, URLs and inline data."""
    _leaves(body, out, skip=_NOT_PROSE)


# endpoint value (providers.base.Endpoint) or surface name -> walker
WALKERS: dict[str, Walker] = {
    "chat": openai_chat,
    "completions": openai_completions,
    "embeddings": openai_embeddings,
    "responses": responses,
    "messages": anthropic_messages,
    "count_tokens": anthropic_messages,
    "gemini": gemini,
    "generate_content": gemini,
    "embed_content": gemini_embed,
    "gemini_count_tokens": gemini_count_tokens,
    "passthrough": generic_json,
}


def text_slots(kind: str, body: dict[str, Any]) -> list[Slot]:
    walker = WALKERS.get(kind, generic_json)
    out: list[Slot] = []
    walker(body, out)
    return out
