"""Gemini streamGenerateContent streaming ⇄ canonical deltas (split out of `gemini`).

Provider side: `StreamParser` (`?alt=sse` chunks → canonical deltas).
Client side, kept symmetrical: `StreamWriter` (canonical deltas → SSE chunks).
Both are re-exported by `tollway.formats.gemini`.
"""

from __future__ import annotations

from tollway.formats import stop_reasons
from tollway.formats._parser_base import ParserBase
from tollway.formats._util import dumps, dumps_str, loads, new_id
from tollway.formats.canonical import GEMINI_SIGNATURE_PREFIX, Thinking, ToolCall
from tollway.formats.errors import gemini_error_body, parse_provider_error
from tollway.formats.gemini import FORMAT, _part_out, _tool_call_id, usage_from_canonical, usage_to_canonical
from tollway.formats.stream import (
    BlockStop, Finish, MessageStart, StreamDelta, TextDelta, ThinkingDelta, ToolCallArgsDelta,
    ToolCallStart, UsageDelta,
)
from tollway.sse import SSEEvent, encode_event
from tollway.usage import Usage


# --- streaming: provider chunks → canonical ----------------------------------------------------

class StreamParser(ParserBase):
    """streamGenerateContent?alt=sse chunks → canonical deltas. Text parts of consecutive chunks
    continue one block; each functionCall part becomes start + one args delta + stop."""

    __slots__ = ("_started", "_active", "_kind", "_next", "_calls", "_rid", "_last_usage")

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._active: int | None = None
        self._kind: str | None = None
        self._next = 0
        self._calls = 0
        self._rid = ""
        self._last_usage: dict | None = None

    def _stop_active(self, out: list) -> None:
        if self._active is not None:
            out.append(BlockStop(self._active))
            self._active = self._kind = None

    def _block(self, kind: str, out: list) -> int:
        if self._active is not None and self._kind == kind:
            return self._active
        self._stop_active(out)
        idx = self._next
        self._next += 1
        self._active, self._kind = idx, kind
        return idx

    def _handle(self, event: SSEEvent, out: list) -> None:
        if not event.data.strip():
            return
        chunk = loads(event.data)
        if isinstance(chunk, list) and len(chunk) == 1:
            chunk = chunk[0]
        if not isinstance(chunk, dict):
            raise TypeError("chunk is not an object")
        if chunk.get("error"):
            e = parse_provider_error(FORMAT, 500, chunk)
            out.append(self._fail(e.type, e.message))
            return
        um = chunk.get("usageMetadata")
        if self.finished:  # a trailing usage-only chunk may still follow the finish
            if isinstance(um, dict) and um != self._last_usage:
                self._last_usage = um
                out.append(UsageDelta(usage_to_canonical(um)))
            return
        if not self._started:
            self._started = True
            self._rid = str(chunk.get("responseId") or "")
            out.append(MessageStart(self._rid or new_id("gen-"), str(chunk.get("modelVersion") or ""),
                                    usage=usage_to_canonical(um) if isinstance(um, dict) else None))
        cands = chunk.get("candidates")
        fr = None
        if isinstance(cands, list) and cands:
            cand = cands[0]
            content = cand.get("content") or {}
            for p in content.get("parts") or ():
                fc = p.get("functionCall")
                if isinstance(fc, dict):
                    self._stop_active(out)
                    idx = self._next
                    self._next += 1
                    sig = p.get("thoughtSignature") if isinstance(p.get("thoughtSignature"), str) else None
                    out.append(ToolCallStart(idx, _tool_call_id(fc, self._rid, self._calls), str(fc.get("name") or ""), sig))
                    out.append(ToolCallArgsDelta(idx, dumps_str(fc.get("args") or {})))
                    out.append(BlockStop(idx))
                    self._calls += 1
                    continue
                text = p.get("text")
                if not isinstance(text, str):
                    continue
                if p.get("thought"):
                    sig = p.get("thoughtSignature")
                    sig = GEMINI_SIGNATURE_PREFIX + sig if isinstance(sig, str) else None
                    if text or sig:
                        out.append(ThinkingDelta(text, sig, self._block("thinking", out)))
                elif text:
                    out.append(TextDelta(self._block("text", out), text))
            fr = cand.get("finishReason")
        elif isinstance(chunk.get("promptFeedback"), dict) and chunk["promptFeedback"].get("blockReason"):
            fr = "SAFETY"
        if isinstance(um, dict) and um != self._last_usage:
            self._last_usage = um
            out.append(UsageDelta(usage_to_canonical(um)))
        if fr:
            self._stop_active(out)
            self.finished = True
            out.append(Finish(stop_reasons.from_gemini(fr, self._calls > 0) or "end_turn"))

    def _end(self, out: list) -> None:
        if not self.finished:
            out.append(self._fail("api_error", "upstream stream ended before the response was complete"))


# --- streaming: canonical → client SSE (symmetry) ----------------------------------------------

class StreamWriter:
    """Canonical deltas → streamGenerateContent SSE chunks. Function calls are sent whole when
    their block stops (Gemini has no argument fragments)."""

    __slots__ = ("model", "id", "_calls", "_usage", "_closed", "_finish")

    def __init__(self, *, model: str | None = None, id: str | None = None) -> None:
        self.model = model
        self.id = id
        self._calls: dict[int, list] = {}  # index → [id, name, [fragments], signature]
        self._usage: Usage | None = None
        self._closed = False
        self._finish: Finish | None = None

    def _chunk(self, parts: list[dict], finish: str | None = None, usage: Usage | None = None) -> bytes:
        cand: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            cand["finishReason"] = finish
        c: dict = {"candidates": [cand], "modelVersion": self.model or "", "responseId": self.id or ""}
        if usage is not None:
            c["usageMetadata"] = usage_from_canonical(usage)
        return encode_event(dumps(c))

    def _flush_call(self, idx: int) -> bytes:
        call = self._calls.pop(idx, None)
        if call is None:
            return b""
        tc = ToolCall(call[0], call[1], "".join(call[2]), call[3])
        return self._chunk([_part_out(tc)])

    def write(self, ev: StreamDelta) -> bytes:
        if self._closed:
            return b""
        k = ev.kind
        if k == "message_start":
            self.id = self.id or ev.id
            self.model = self.model or ev.model
        elif k == "text" and ev.text:
            return self._chunk([{"text": ev.text}])
        elif k == "thinking" and not ev.redacted and (ev.text or ev.signature):
            part = _part_out(Thinking(ev.text, ev.signature))
            return self._chunk([part])
        elif k == "tool_call_start":
            self._calls[ev.index] = [ev.id, ev.name, [], ev.signature]
        elif k == "tool_call_args":
            call = self._calls.setdefault(ev.index, [new_id("call_"), "", [], None])
            call[2].append(ev.fragment)
        elif k == "block_stop":
            return self._flush_call(ev.index)
        elif k == "finish":
            self._finish = ev
        elif k == "usage":
            self._usage = ev.usage
        elif k == "error":
            self._closed = True
            return encode_event(dumps(gemini_error_body(ev.type, ev.message)))
        return b""

    def close(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        out = b"".join(self._flush_call(i) for i in list(self._calls))
        fin = self._finish or Finish("end_turn")
        return out + self._chunk([], stop_reasons.to_gemini(fin.stop_reason), self._usage or Usage())
