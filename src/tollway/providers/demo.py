"""The built-in demo provider: fixed replies with realistic usage, no network, no key.

By default (`wire_format = "native"`) it answers in the client's own wire format, so it is
always the fast path. With `wire_format = "openai" | "anthropic" | "gemini"` it acts as that
provider instead (Gemini's generateContent, SSE streams, embeddings and countTokens included),
so Tollway translates to it exactly as it would to the real one: `tollway serve --demo` adds
`demo-claude` (Anthropic) and `demo-gemini` (Gemini) next to the native `demo`.

What it answers (its text, JSON, or a forced tool call) is decided in `demo_answer`.
Answers are built in process by `DemoTransport`, which means the whole pipeline, metering and
ledger included, runs exactly as it does for a real provider. Token counts are real counts of
the prompt and the reply (tiktoken), so usage and cost look like a small real model's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from tollway.config import ProviderSettings
from tollway.counting import OutputTally
from tollway.formats import anthropic as f_anthropic
from tollway.formats import gemini as f_gemini
from tollway.formats import openai_chat as f_openai
from tollway.formats import responses as f_responses
from tollway.formats.errors import TranslationError, gemini_error_body, render_error
from tollway.ids import uuid7
from tollway.providers.anthropic import AnthropicProvider
from tollway.providers.base import GEMINI_ENDPOINTS, Endpoint, ErrorClass, PreparedCall, UpstreamRequest, classify_http_status
from tollway.providers.demo_answer import DemoToolCall, decide
from tollway.providers.gemini import GeminiProvider
from tollway.providers.openai import OpenAIProvider
from tollway.usage import Usage

GEMINI_PREFIX = "demo:/v1beta/models/"
GEMINI_EMBEDDING_DIMENSIONS = 768

Counter = Callable[[Endpoint, str, dict[str, Any]], int]  # (endpoint, model, body) -> prompt tokens
Run = Callable[..., Awaitable[Any]]  # run(size, fn, *args): fn(*args), off the loop when size is large


def _words(text: str) -> list[str]:
    out: list[str] = []
    for i, w in enumerate(text.split(" ")):
        out.append(w if i == 0 else " " + w)
    return out


def _last_user_text(endpoint: Endpoint, body: dict[str, Any]) -> str:
    if endpoint == Endpoint.RESPONSES:
        inp = body.get("input")
        if isinstance(inp, str):
            return inp
        items = inp if isinstance(inp, list) else []
    elif endpoint == Endpoint.COMPLETIONS:
        p = body.get("prompt")
        return p if isinstance(p, str) else str(p)
    else:
        items = body.get("messages") or []
    for m in reversed(items):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict) and "text" in p)
    return ""


def reply_text(prompt: str) -> str:
    shown = " ".join(prompt.split())[:60]
    return (f"Hello from Tollway's demo model! You said: \"{shown}\". "
            "Point Tollway at a real provider to get real answers.")


class DemoResponse:
    __slots__ = ("status", "raw_headers", "_body", "_events", "_delay")

    def __init__(self, status: int, body: bytes = b"", events: list[bytes] | None = None, delay: float = 0.0) -> None:
        self.status = status
        ctype = b"text/event-stream" if events is not None else b"application/json"
        self.raw_headers = ((b"content-type", ctype), (b"x-demo-provider", b"tollway"))
        self._body = body
        self._events = events
        self._delay = delay

    async def read(self, limit: int | None = None) -> bytes:
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for ev in self._events or ():
            if self._delay:
                await asyncio.sleep(self._delay)
            yield ev

    def release(self) -> None:
        pass


class DemoTransport:
    """Builds the demo answer in process, in the wire format the request path implies."""

    def __init__(self, count_prompt: Counter, count_text: Callable[[str], int], token_delay: float = 0.01,
                 run: Run | None = None) -> None:
        self._count_prompt = count_prompt
        self._count_text = count_text
        self._delay = token_delay
        self._run = run  # runs a large count off the event loop (CountingPool.run)

    async def send(self, req: UpstreamRequest) -> DemoResponse:
        size = len(req.body or b"")
        if req.url.startswith(GEMINI_PREFIX):
            if self._run is not None:
                return await self._run(size, self._gemini, req)
            return self._gemini(req)
        endpoint = Endpoint(req.url.removeprefix("demo:/"))
        body = orjson.loads(req.body)
        problem = invalid_request(endpoint, body)
        if problem is not None:  # what the real provider answers: a 400 in its own format
            fmt = "anthropic" if endpoint in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS) else "openai_chat"
            _, err = render_error(fmt, "invalid_request_error", problem.message, problem.param)
            return DemoResponse(400, orjson.dumps(err))
        model = str(body.get("model") or "demo")
        if self._run is not None:
            prompt_tokens = await self._run(size, self._count_prompt, endpoint, model, body)
        else:
            prompt_tokens = self._count_prompt(endpoint, model, body)
        if endpoint == Endpoint.COUNT_TOKENS:
            return DemoResponse(200, orjson.dumps({"input_tokens": prompt_tokens}))
        if endpoint == Endpoint.EMBEDDINGS:
            return DemoResponse(200, self._embeddings(body, model, prompt_tokens))
        answer = decide(endpoint, body, reply_text(_last_user_text(endpoint, body)))
        call = answer if isinstance(answer, DemoToolCall) else None
        text = answer if isinstance(answer, str) else ""
        out_tokens = self._count_text(orjson.dumps(call.arguments).decode() if call else text)
        usage = Usage(input_tokens=prompt_tokens, output_tokens=out_tokens)
        stream = bool(body.get("stream"))
        build = {
            Endpoint.CHAT: (self._chat, self._chat_stream),
            Endpoint.COMPLETIONS: (self._completion, self._completion_stream),
            Endpoint.RESPONSES: (self._responses, self._responses_stream),
            Endpoint.MESSAGES: (self._messages, self._messages_stream),
        }[endpoint]
        if stream:
            return DemoResponse(200, events=build[1](body, model, text, usage, call), delay=self._delay)
        return DemoResponse(200, orjson.dumps(build[0](body, model, text, usage, call)))

    # --- OpenAI chat / completions -------------------------------------------------------
    @staticmethod
    def _oa_usage(u: Usage) -> dict[str, Any]:
        return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
                "total_tokens": u.total_tokens,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}}

    def _chat(self, body: dict, model: str, text: str, u: Usage, call: DemoToolCall | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if call is not None:
            message["content"] = None
            message["tool_calls"] = [{"id": _call_id(), "type": "function", "function": {
                "name": call.name, "arguments": orjson.dumps(call.arguments).decode()}}]
        return {"id": "chatcmpl-demo" + uuid7()[-12:], "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "message": message, "logprobs": None,
                                             "finish_reason": "tool_calls" if call else "stop"}],
                "usage": self._oa_usage(u), "system_fingerprint": "fp_tollway_demo"}

    def _chat_stream(self, body: dict, model: str, text: str, u: Usage,
                     call: DemoToolCall | None = None) -> list[bytes]:
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": "chatcmpl-demo" + uuid7()[-12:], "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, "system_fingerprint": "fp_tollway_demo"}

        def chunk(choices: list, usage: Any = None) -> bytes:
            obj = {**base, "choices": choices}
            if include:
                obj["usage"] = usage
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                          "finish_reason": None}])]
        if call is not None:
            start = {"index": 0, "id": _call_id(), "type": "function", "function": {"name": call.name, "arguments": ""}}
            args = {"index": 0, "function": {"arguments": orjson.dumps(call.arguments).decode()}}
            for tc in (start, args):
                events.append(chunk([{"index": 0, "delta": {"tool_calls": [tc]}, "logprobs": None,
                                      "finish_reason": None}]))
        for w in _words(text) if call is None else ():
            events.append(chunk([{"index": 0, "delta": {"content": w}, "logprobs": None, "finish_reason": None}]))
        events.append(chunk([{"index": 0, "delta": {}, "logprobs": None,
                              "finish_reason": "tool_calls" if call else "stop"}]))
        if include:
            events.append(chunk([], self._oa_usage(u)))
        events.append(b"data: [DONE]\n\n")
        return events

    def _completion(self, body: dict, model: str, text: str, u: Usage, call: None = None) -> dict[str, Any]:
        return {"id": "cmpl-demo" + uuid7()[-12:], "object": "text_completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                "usage": self._oa_usage(u)}

    def _completion_stream(self, body: dict, model: str, text: str, u: Usage, call: None = None) -> list[bytes]:
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": "cmpl-demo" + uuid7()[-12:], "object": "text_completion", "created": int(time.time()),
                "model": model}
        events = []
        for w in _words(text):
            obj = {**base, "choices": [{"index": 0, "text": w, "logprobs": None, "finish_reason": None}]}
            if include:
                obj["usage"] = None
            events.append(b"data: " + orjson.dumps(obj) + b"\n\n")
        last = {**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]}
        if include:
            last["usage"] = None
        events.append(b"data: " + orjson.dumps(last) + b"\n\n")
        if include:
            events.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": self._oa_usage(u)}) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events

    @staticmethod
    def _vector(item: Any, dims: int) -> list[float]:
        seed = hashlib.sha256(orjson.dumps(item)).digest()
        return [((seed[(j * 7) % 32] + j * 31) % 255) / 127.0 - 1.0 for j in range(dims)]

    def _embeddings(self, body: dict, model: str, prompt_tokens: int) -> bytes:
        inp = body.get("input")
        items = inp if isinstance(inp, list) and inp and not isinstance(inp[0], int) else [inp]
        dims = int(body.get("dimensions") or 256)
        as_b64 = body.get("encoding_format") == "base64"
        data = []
        for i, item in enumerate(items):
            vec = self._vector(item, dims)
            emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if as_b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return orjson.dumps({"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})

    # --- OpenAI Responses --------------------------------------------------------------
    @staticmethod
    def _resp_obj(body: dict, model: str, text: str | None, u: Usage | None, rid: str, mid: str,
                  call: DemoToolCall | None = None, call_id: str = "") -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        if call is not None and text is not None:
            output = [{"id": mid, "type": "function_call", "status": "completed", "call_id": call_id,
                       "name": call.name, "arguments": orjson.dumps(call.arguments).decode()}]
        elif text is not None:
            output = [{"id": mid, "type": "message", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}]
        return {
            "id": rid, "object": "response", "created_at": int(time.time()),
            "status": "completed" if text is not None else "in_progress", "model": model,
            "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": body.get("tools") or [],
            "instructions": body.get("instructions"), "previous_response_id": body.get("previous_response_id"),
            "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0),
            "max_output_tokens": body.get("max_output_tokens"), "store": body.get("store", True),
            "text": body.get("text") or {"format": {"type": "text"}}, "truncation": "disabled", "metadata": body.get("metadata") or {},
            "error": None, "incomplete_details": None, "reasoning": {"effort": None, "summary": None},
            "usage": None if u is None else {
                "input_tokens": u.input_tokens, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": u.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": u.total_tokens},
        }

    def _responses(self, body: dict, model: str, text: str, u: Usage, call: DemoToolCall | None = None) -> dict[str, Any]:
        mid = ("fc_demo" if call else "msg_demo") + uuid7()[-12:]
        return self._resp_obj(body, model, text, u, "resp_demo" + uuid7().replace("-", ""), mid, call, _call_id())

    def _responses_stream(self, body: dict, model: str, text: str, u: Usage,
                          call: DemoToolCall | None = None) -> list[bytes]:
        rid, mid = "resp_demo" + uuid7().replace("-", ""), ("fc_demo" if call else "msg_demo") + uuid7()[-12:]
        seq = iter(range(1_000_000))
        events: list[bytes] = []

        def ev(kind: str, **fields: Any) -> None:
            events.append(b"event: " + kind.encode() + b"\ndata: "
                          + orjson.dumps({"type": kind, "sequence_number": next(seq), **fields}) + b"\n\n")

        pending = self._resp_obj(body, model, None, None, rid, mid)
        ev("response.created", response=pending)
        ev("response.in_progress", response=pending)
        if call is not None:
            done = self._resp_obj(body, model, text, u, rid, mid, call, _call_id())
            fc = done["output"][0]
            ev("response.output_item.added", output_index=0, item={**fc, "status": "in_progress", "arguments": ""})
            ev("response.function_call_arguments.delta", item_id=mid, output_index=0, delta=fc["arguments"])
            ev("response.function_call_arguments.done", item_id=mid, output_index=0, name=call.name,
               arguments=fc["arguments"])
            ev("response.output_item.done", output_index=0, item=fc)
            ev("response.completed", response=done)
            return events
        item = {"id": mid, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        ev("response.output_item.added", output_index=0, item=item)
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        ev("response.content_part.added", item_id=mid, output_index=0, content_index=0, part=part)
        for w in _words(text):
            ev("response.output_text.delta", item_id=mid, output_index=0, content_index=0, delta=w, logprobs=[])
        ev("response.output_text.done", item_id=mid, output_index=0, content_index=0, text=text, logprobs=[])
        ev("response.content_part.done", item_id=mid, output_index=0, content_index=0, part={**part, "text": text})
        done = self._resp_obj(body, model, text, u, rid, mid)
        ev("response.output_item.done", output_index=0, item=done["output"][0])
        ev("response.completed", response=done)
        return events

    # --- Anthropic Messages ------------------------------------------------------------
    def _messages(self, body: dict, model: str, text: str, u: Usage, call: DemoToolCall | None = None) -> dict[str, Any]:
        content: dict[str, Any] = {"type": "text", "text": text} if call is None else {
            "type": "tool_use", "id": "toolu_demo" + uuid7()[-12:], "name": call.name, "input": call.arguments}
        return {"id": "msg_demo" + uuid7()[-12:], "type": "message", "role": "assistant", "model": model,
                "content": [content], "stop_reason": "tool_use" if call else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}

    def _messages_stream(self, body: dict, model: str, text: str, u: Usage,
                         call: DemoToolCall | None = None) -> list[bytes]:
        def ev(kind: str, obj: dict[str, Any]) -> bytes:
            return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **obj}) + b"\n\n"

        start = self._messages(body, model, text, Usage(u.input_tokens, 1), call)
        block = start["content"][0]
        start["content"], start["stop_reason"] = [], None
        if call is None:
            events = [ev("message_start", {"message": start}),
                      ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
                      ev("ping", {})]
            for w in _words(text):
                events.append(ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}}))
        else:
            events = [ev("message_start", {"message": start}),
                      ev("content_block_start", {"index": 0, "content_block": {**block, "input": {}}}),
                      ev("ping", {}),
                      ev("content_block_delta", {"index": 0, "delta": {
                          "type": "input_json_delta", "partial_json": orjson.dumps(call.arguments).decode()}})]
        events.append(ev("content_block_stop", {"index": 0}))
        events.append(ev("message_delta", {"delta": {"stop_reason": "tool_use" if call else "end_turn",
                                                     "stop_sequence": None},
                                           "usage": {"output_tokens": u.output_tokens}}))
        events.append(ev("message_stop", {}))
        return events


    # --- Gemini (generateContent, streamGenerateContent?alt=sse, embeddings, countTokens) ---
    def _gemini(self, req: UpstreamRequest) -> DemoResponse:
        path, _, query = req.url[len(GEMINI_PREFIX):].partition("?")
        model, _, action = path.partition(":")
        try:
            body = orjson.loads(req.body or b"{}")
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return DemoResponse(400, orjson.dumps(gemini_error_body("invalid_request_error", "Invalid JSON payload.")))
        if action == "countTokens":
            n = self._gemini_prompt(model, body.get("generateContentRequest") or body)
            return DemoResponse(200, orjson.dumps({"totalTokens": n,
                                                   "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]}))
        if action in ("embedContent", "batchEmbedContents"):
            reqs = [body] if action == "embedContent" else body.get("requests")
            if not isinstance(reqs, list) or not all(
                    isinstance(r, dict) and isinstance(r.get("content"), dict)
                    and isinstance(r["content"].get("parts"), list) for r in reqs):
                return DemoResponse(400, orjson.dumps(gemini_error_body(
                    "invalid_request_error", "Each request needs content.parts (an array).")))
            vecs = [{"values": self._gemini_vector(r)} for r in reqs]
            if action == "embedContent":
                return DemoResponse(200, orjson.dumps({"embedding": vecs[0]}))
            return DemoResponse(200, orjson.dumps({"embeddings": vecs}))
        if action not in ("generateContent", "streamGenerateContent"):
            return DemoResponse(404, orjson.dumps(gemini_error_body(
                "not_found_error", f"models/{model} is not found for API version v1beta, or is not supported "
                                   f"for {action}.")))
        try:
            f_gemini.request_to_canonical(body, model)
        except TranslationError as e:
            return DemoResponse(400, orjson.dumps(gemini_error_body("invalid_request_error", e.message)))
        answer = decide(Endpoint.GENERATE_CONTENT, body, reply_text(_gemini_user_text(body)))
        call = answer if isinstance(answer, DemoToolCall) else None
        text = answer if isinstance(answer, str) else ""
        usage = Usage(input_tokens=self._gemini_prompt(model, body),
                      output_tokens=self._count_text(orjson.dumps(call.arguments).decode() if call else text))
        rid = uuid7().replace("-", "")[-22:]
        if action == "streamGenerateContent" and "alt=sse" in query:
            return DemoResponse(200, events=self._gemini_stream(model, text, usage, rid, call), delay=self._delay)
        part: dict[str, Any] = {"text": text} if call is None else {
            "functionCall": {"name": call.name, "args": call.arguments}}
        return DemoResponse(200, orjson.dumps({
            "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": self._gemini_usage(usage), "modelVersion": model, "responseId": rid}))

    @staticmethod
    def _gemini_usage(u: Usage) -> dict[str, Any]:
        return {"promptTokenCount": u.input_tokens, "candidatesTokenCount": u.output_tokens,
                "totalTokenCount": u.total_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.input_tokens}]}

    def _gemini_stream(self, model: str, text: str, u: Usage, rid: str,
                       call: DemoToolCall | None = None) -> list[bytes]:
        parts: list[dict[str, Any]] = [{"text": w} for w in _words(text)] if call is None else [
            {"functionCall": {"name": call.name, "args": call.arguments}}]
        events = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            cand: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
            if last:
                cand["finishReason"] = "STOP"
            usage = self._gemini_usage(u) if last else {"promptTokenCount": u.input_tokens,
                                                         "totalTokenCount": u.input_tokens}
            chunk = {"candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": rid}
            events.append(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")  # Google frames SSE with CRLF
        return events

    def _gemini_prompt(self, model: str, body: dict[str, Any]) -> int:
        """Prompt tokens of a Gemini body, counted as the equivalent chat request."""
        try:
            canon = f_gemini.request_to_canonical(body, model)
            chat, _ = f_openai.request_from_canonical(canon, model)
        except (TranslationError, TypeError, ValueError):
            return self._count_text(orjson.dumps(body).decode())
        return self._count_prompt(Endpoint.CHAT, model, chat)

    def _gemini_vector(self, req: dict[str, Any]) -> list[float]:
        parts = (req.get("content") or {}).get("parts") or ()
        text = " ".join(p.get("text", "") for p in parts if isinstance(p, dict))
        dims = req.get("outputDimensionality")
        return self._vector(text, dims if isinstance(dims, int) and dims > 0 else GEMINI_EMBEDDING_DIMENSIONS)


def _call_id() -> str:
    return "call_demo" + uuid7().replace("-", "")[-16:]


def invalid_request(endpoint: Endpoint, body: Any) -> TranslationError | None:
    """What a real provider would refuse with a 400: the same checks Tollway's translators
    make on every request they read (so the demo never fails on a wrongly typed field)."""
    try:
        if not isinstance(body, dict):
            raise TranslationError("the request body must be a JSON object")
        if endpoint == Endpoint.CHAT:
            f_openai.request_to_canonical(body)
        elif endpoint in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS):
            f_anthropic.request_to_canonical(body)
        elif endpoint == Endpoint.RESPONSES:
            f_responses.request_to_canonical(body)
        elif endpoint == Endpoint.COMPLETIONS:
            p = body.get("prompt")
            if not (isinstance(p, str) or (isinstance(p, list) and all(isinstance(x, (str, int, list)) for x in p))):
                raise TranslationError("prompt must be a string or an array of strings or token ids", "prompt")
        elif endpoint == Endpoint.EMBEDDINGS:
            inp = body.get("input")
            if not (isinstance(inp, str) or (isinstance(inp, list) and inp
                                             and all(isinstance(x, (str, int, list)) for x in inp))):
                raise TranslationError("input must be a string or a non-empty array of strings or token ids",
                                       "input")
            dims = body.get("dimensions")
            if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 8192):
                raise TranslationError("dimensions must be an integer from 1 to 8192", "dimensions")
    except TranslationError as e:
        return e
    return None


def _gemini_user_text(body: dict[str, Any]) -> str:
    for c in reversed(body.get("contents") or ()):
        if isinstance(c, dict) and c.get("role", "user") == "user":
            texts = [p["text"] for p in c.get("parts") or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
            if texts:
                return " ".join(texts)
    return ""


class DemoProvider:
    """Speaks whichever format the client speaks ("native"), or one provider's format; usage is
    read with the real providers' parsers."""

    translate_options: dict[str, Any] = {}

    def __init__(self, settings: ProviderSettings) -> None:
        self.id = settings.id
        self.kind = settings.kind
        self.settings = settings
        self.wire_format: str = settings.wire_format
        self._openai = OpenAIProvider(settings)
        self._anthropic = AnthropicProvider(settings)
        self._gemini = GeminiProvider(settings)
        acting = {"openai": self._openai, "anthropic": self._anthropic, "gemini": self._gemini}
        self._acting = acting.get(self.wire_format)
        self.endpoints: frozenset[Endpoint] = (
            frozenset(Endpoint) if self._acting is None else self._acting.endpoints)

    def __repr__(self) -> str:
        return f"DemoProvider(id={self.id!r}, wire_format={self.wire_format!r})"

    def _parser(self, endpoint: Endpoint) -> OpenAIProvider | AnthropicProvider | GeminiProvider:
        if self._acting is not None:
            return self._acting
        if endpoint in GEMINI_ENDPOINTS:
            return self._gemini
        return self._anthropic if endpoint in AnthropicProvider.endpoints else self._openai

    def auth_headers(self, api_key: str | None = None) -> dict[str, str]:
        return {}

    def prepare(self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, upstream_model: str,
                stream: bool, client_headers: dict[bytes, bytes]) -> PreparedCall:
        parser = self._parser(endpoint)
        call = parser.prepare(endpoint, body, raw, upstream_model, stream, client_headers)
        if parser is self._gemini:  # the URL carries model, action and alt=sse, as Google's does
            url = "demo:" + call.request.url
        else:
            url = f"demo:/{endpoint.value}"
        call.request = UpstreamRequest("POST", url, {}, call.request.body)
        return call

    def served_model(self, served: str) -> str:
        """The model name a response reports, as the ledger should price it."""
        return served

    def usage_from_response(self, endpoint: Endpoint, body: dict[str, Any]) -> Usage | None:
        return self._parser(endpoint).usage_from_response(endpoint, body)

    def output_text(self, endpoint: Endpoint, body: dict[str, Any]) -> str:
        return self._parser(endpoint).output_text(endpoint, body)

    def stream_watcher(self, endpoint: Endpoint, injected_usage_option: bool, tally: OutputTally | None = None):
        return self._parser(endpoint).stream_watcher(endpoint, injected_usage_option, tally)

    def classify_error(self, status: int, body: bytes) -> ErrorClass:
        return classify_http_status(status)

    def passthrough_url(self, subpath: str, query: bytes) -> str:
        raise LookupError("the demo provider has no pass-through API")
