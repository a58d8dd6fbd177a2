"""OpenAI Chat Completions streaming ⇄ canonical deltas (split out of `openai_chat`).

Provider side: `StreamParser` (chat completion chunks → canonical deltas).
Client side: `StreamWriter` (canonical deltas → chat completion chunk SSE).
Both are re-exported by `tollway.formats.openai_chat`.
"""

from __future__ import annotations

import time

from tollway.formats import stop_reasons
from tollway.formats._parser_base import ParserBase
from tollway.formats._util import dumps, loads, new_id
from tollway.formats.errors import openai_error_body, parse_provider_error
from tollway.formats.openai_chat import FORMAT, usage_from_canonical, usage_to_canonical
from tollway.formats.stream import (
    BlockStop, Finish, MessageStart, StreamDelta, TextDelta, ThinkingDelta, ToolCallArgsDelta,
    ToolCallStart, UsageDelta,
)
from tollway.sse import SSEEvent, encode_event
from tollway.usage import Usage


# --- streaming: provider chunks → canonical ----------------------------------------------------

class StreamParser(ParserBase):
    """OpenAI chat completion chunks (SSE) → canonical deltas. Blocks are emitted sequentially:
    a new block (text, thinking, or a new tool call index) closes the previous one."""

    __slots__ = ("_started", "_active", "_kind", "_tools", "_next", "_done", "_has_tools", "_open")

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._active: int | None = None  # canonical index of the open block
        self._kind: str | None = None  # "text" | "thinking" | "tool"
        self._tools: dict[int, int] = {}  # OpenAI tool_calls[].index → canonical index
        self._open: list[int] = []
        self._next = 0
        self._done = False
        self._has_tools = False

    def _switch(self, kind: str, out: list) -> int:
        if self._active is not None and self._kind == kind and kind != "tool":
            return self._active
        self._stop_active(out)
        idx = self._next
        self._next += 1
        self._active, self._kind = idx, kind
        self._open.append(idx)
        return idx

    def _stop_active(self, out: list) -> None:
        if self._active is not None:
            out.append(BlockStop(self._active))
            self._open.remove(self._active)
            self._active = self._kind = None

    def _handle(self, event: SSEEvent, out: list) -> None:
        if event.is_done:
            self._done = True
            return
        if not event.data.strip():
            return
        chunk = loads(event.data)
        if not isinstance(chunk, dict):
            raise TypeError("chunk is not an object")
        if "error" in chunk and chunk["error"]:
            e = parse_provider_error(FORMAT, 500, chunk)
            out.append(self._fail(e.type, e.message))
            return
        if not self._started:
            if not chunk.get("id") and not chunk.get("choices") and not isinstance(chunk.get("usage"), dict):
                return  # Azure's leading prompt_filter_results chunk (empty id, model, choices)
            self._started = True
            created = chunk.get("created")
            out.append(MessageStart(str(chunk.get("id") or new_id("chatcmpl-")), str(chunk.get("model") or ""),
                                    created=created if isinstance(created, int) else None))
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            for key in ("reasoning_content", "reasoning"):
                rc = delta.get(key)
                if isinstance(rc, str) and rc:
                    out.append(ThinkingDelta(rc, None, self._switch("thinking", out)))
                    break
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.append(TextDelta(self._switch("text", out), text))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                out.append(TextDelta(self._switch("text", out), refusal))
            for pos, tc in enumerate(delta.get("tool_calls") or ()):
                oi = tc.get("index", pos)
                fn = tc.get("function") or {}
                args = fn.get("arguments")
                idx = self._tools.get(oi)
                if idx is None:
                    self._has_tools = True
                    idx = self._tools[oi] = self._switch("tool", out)
                    out.append(ToolCallStart(idx, str(tc.get("id") or new_id("call_")), str(fn.get("name") or "")))
                if isinstance(args, str) and args:
                    out.append(ToolCallArgsDelta(idx, args))
            fr = choice.get("finish_reason")
            if fr:
                self._stop_active(out)
                for idx in self._open:
                    out.append(BlockStop(idx))
                self._open.clear()
                stop = stop_reasons.from_openai(fr)
                if stop == "end_turn" and self._has_tools:
                    stop = "tool_use"
                self.finished = True
                out.append(Finish(stop or "end_turn"))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            out.append(UsageDelta(usage_to_canonical(usage)))

    def _end(self, out: list) -> None:
        if self.finished:
            return
        if self._done:  # [DONE] without a finish_reason: lenient for compatible servers
            self._stop_active(out)
            self.finished = True
            out.append(Finish("tool_use" if self._has_tools else "end_turn"))
            return
        out.append(self._fail("api_error", "upstream stream ended before the response was complete"))


# --- streaming: canonical → client SSE ---------------------------------------------------------

class StreamWriter:
    """Canonical deltas → OpenAI chat completion chunk SSE bytes, as the OpenAI API sends them:
    a role chunk, content / tool_calls deltas, a finish_reason chunk, then (only when the client
    asked with stream_options.include_usage) a `choices: []` usage chunk, then `data: [DONE]`."""

    __slots__ = ("model", "include_usage", "reasoning_field", "id", "created", "_started",
                 "_tool_index", "_usage", "_closed", "stop_reason")

    def __init__(self, *, model: str | None = None, include_usage: bool = False, id: str | None = None,
                 created: int | None = None, reasoning_field: str | None = None) -> None:
        self.model = model
        self.include_usage = include_usage
        self.reasoning_field = reasoning_field
        self.id = id
        self.created = created
        self._started = False
        self._tool_index: dict[int, int] = {}  # canonical index → OpenAI tool_calls index
        self._usage: Usage | None = None
        self._closed = False
        self.stop_reason: str | None = None

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> bytes:
        c: dict = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                   "model": self.model or "",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        if self.include_usage:
            c["usage"] = None
        return b"data: " + dumps(c) + b"\n\n"

    def _start(self, ev: MessageStart | None = None) -> bytes:
        self._started = True
        if self.id is None:
            self.id = (ev.id if ev and ev.id else new_id("chatcmpl-"))
            if not self.id.startswith("chatcmpl"):
                self.id = "chatcmpl-" + self.id
        if self.model is None and ev is not None:
            self.model = ev.model
        if self.created is None:
            self.created = (ev.created if ev and ev.created else int(time.time()))
        return self._chunk({"role": "assistant", "content": "", "refusal": None})

    def write(self, ev: StreamDelta) -> bytes:
        if self._closed:
            return b""
        k = ev.kind
        pre = b""
        if not self._started:
            if k == "message_start":
                return self._start(ev)
            if k == "error":
                return self._error(ev)
            pre = self._start()
        if k == "text":
            return pre + (self._chunk({"content": ev.text}) if ev.text else b"")
        if k == "tool_call_start":
            ti = self._tool_index[ev.index] = len(self._tool_index)
            return pre + self._chunk({"tool_calls": [{"index": ti, "id": ev.id, "type": "function",
                                                      "function": {"name": ev.name, "arguments": ""}}]})
        if k == "tool_call_args":
            if not ev.fragment:
                return pre
            ti = self._tool_index.get(ev.index)
            if ti is None:  # args without a start: open the call so nothing is lost
                ti = self._tool_index[ev.index] = len(self._tool_index)
                pre += self._chunk({"tool_calls": [{"index": ti, "id": new_id("call_"), "type": "function",
                                                    "function": {"name": "", "arguments": ""}}]})
            return pre + self._chunk({"tool_calls": [{"index": ti, "function": {"arguments": ev.fragment}}]})
        if k == "thinking":
            if self.reasoning_field and ev.text and not ev.redacted:
                return pre + self._chunk({self.reasoning_field: ev.text})
            return pre
        if k == "finish":
            self.stop_reason = ev.stop_reason
            return pre + self._chunk({}, stop_reasons.to_openai(ev.stop_reason))
        if k == "usage":
            self._usage = ev.usage
            return pre
        if k == "error":
            return pre + self._error(ev)
        return pre  # message_start repeated, block_stop: nothing to send

    def _error(self, ev) -> bytes:
        self._closed = True
        return encode_event(dumps(openai_error_body(ev.type, ev.message)))

    def close(self) -> bytes:
        """After the last delta: the usage chunk (when asked for) and `data: [DONE]`."""
        if self._closed:
            return b""
        self._closed = True
        out = b"" if self._started else self._start()
        if self.include_usage:
            c = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model or "", "choices": [],
                 "usage": usage_from_canonical(self._usage or Usage())}
            out += b"data: " + dumps(c) + b"\n\n"
        return out + b"data: [DONE]\n\n"
