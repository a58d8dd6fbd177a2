"""Anthropic Messages streaming ⇄ canonical deltas (split out of `anthropic`).

Provider side: `StreamParser` (Messages SSE events → canonical deltas).
Client side: `StreamWriter` (canonical deltas → Messages SSE).
Both are re-exported by `tollway.formats.anthropic`.
"""

from __future__ import annotations

from tollway.formats import stop_reasons
from tollway.formats._parser_base import ParserBase
from tollway.formats._util import dumps, dumps_str, loads, new_id
from tollway.formats.anthropic import FORMAT, _msg_id, usage_from_canonical, usage_to_canonical
from tollway.formats.errors import anthropic_error_body, parse_provider_error
from tollway.formats.stream import (
    BlockStop, Finish, MessageStart, StreamDelta, TextDelta, ThinkingDelta, ToolCallArgsDelta,
    ToolCallStart, UsageDelta,
)
from tollway.sse import SSEEvent, encode_event
from tollway.usage import Usage


# --- streaming: provider events → canonical ----------------------------------------------------

class StreamParser(ParserBase):
    """Anthropic Messages SSE events → canonical deltas."""

    __slots__ = ("_index", "_next", "_usage", "_stopped")

    def __init__(self) -> None:
        super().__init__()
        self._index: dict[int, int] = {}  # Anthropic block index → canonical index
        self._next = 0
        self._usage = Usage()
        self._stopped = False  # message_stop seen

    def _handle(self, event: SSEEvent, out: list) -> None:
        if not event.data.strip():
            return
        data = loads(event.data)
        if not isinstance(data, dict):
            raise TypeError("event is not an object")
        t = data.get("type") or event.event
        if t == "content_block_delta":
            idx = self._index.get(data["index"])
            if idx is None:
                return  # a block type we do not translate (server tools, ...)
            d = data["delta"]
            dt = d.get("type")
            if dt == "text_delta":
                out.append(TextDelta(idx, d["text"]))
            elif dt == "input_json_delta":
                if d.get("partial_json"):
                    out.append(ToolCallArgsDelta(idx, d["partial_json"]))
            elif dt == "thinking_delta":
                out.append(ThinkingDelta(d["thinking"], None, idx))
            elif dt == "signature_delta":
                out.append(ThinkingDelta("", d["signature"], idx))
        elif t == "content_block_start":
            b = data["content_block"]
            bt = b.get("type")
            if bt not in ("text", "tool_use", "thinking", "redacted_thinking"):
                return
            idx = self._index[data["index"]] = self._next
            self._next += 1
            if bt == "text":
                out.append(TextDelta(idx, b.get("text") or ""))
            elif bt == "tool_use":
                out.append(ToolCallStart(idx, str(b["id"]), str(b["name"])))
                inp = b.get("input")
                if inp:
                    out.append(ToolCallArgsDelta(idx, dumps_str(inp)))
            elif bt == "thinking":
                out.append(ThinkingDelta(b.get("thinking") or "", b.get("signature") or None, idx))
            else:
                out.append(ThinkingDelta(str(b.get("data") or ""), None, idx, True))
        elif t == "content_block_stop":
            idx = self._index.get(data["index"])
            if idx is not None:
                out.append(BlockStop(idx))
        elif t == "message_start":
            msg = data["message"]
            self._usage = usage_to_canonical(msg.get("usage"))
            out.append(MessageStart(str(msg.get("id") or new_id("msg_")), str(msg.get("model") or ""),
                                    usage=self._usage))
            out.append(UsageDelta(self._usage))
        elif t == "message_delta":
            d = data.get("delta") or {}
            self._usage = usage_to_canonical(data.get("usage"), self._usage)
            out.append(UsageDelta(self._usage))
            if d.get("stop_reason") is not None or not self.finished:
                self.finished = True
                seq = d.get("stop_sequence")
                out.append(Finish(stop_reasons.from_anthropic(d.get("stop_reason")) or "end_turn",
                                  seq if isinstance(seq, str) else None))
        elif t == "message_stop":
            self._stopped = True
        elif t == "error":
            e = parse_provider_error(FORMAT, 500, data)
            out.append(self._fail(e.type, e.message))
        # ping and unknown event types: ignored (Anthropic may add event types)

    def _end(self, out: list) -> None:
        if not self.finished:
            out.append(self._fail("api_error", "upstream stream ended before the response was complete"))


# --- streaming: canonical → client SSE ---------------------------------------------------------

class StreamWriter:
    """Canonical deltas → Anthropic Messages SSE bytes: message_start, content blocks
    (start / deltas / stop, one open at a time), then in `close()` message_delta with the stop
    reason and final usage, and message_stop."""

    __slots__ = ("model", "id", "_started", "_blocks", "_open", "_usage", "_finish", "_closed", "_next")

    def __init__(self, *, model: str | None = None, id: str | None = None) -> None:
        self.model = model
        self.id = id
        self._started = False
        self._blocks: dict[int, tuple[int, str]] = {}  # canonical index → (Anthropic index, type)
        self._open: int | None = None  # canonical index of the open block
        self._next = 0
        self._usage: Usage | None = None
        self._finish: Finish | None = None
        self._closed = False

    def _start(self, ev: MessageStart | None) -> bytes:
        self._started = True
        if self.id is None:
            self.id = _msg_id(ev.id if ev else None)
        if self.model is None:
            self.model = ev.model if ev else ""
        if ev is not None and ev.usage is not None:
            self._usage = ev.usage
        u = usage_from_canonical(self._usage or Usage())
        u["output_tokens"] = min(u["output_tokens"], 1)
        u.pop("output_tokens_details", None)
        msg = {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
               "stop_reason": None, "stop_sequence": None, "stop_details": None, "usage": u, "container": None}
        return encode_event(dumps({"type": "message_start", "message": msg}), "message_start")

    def _open_block(self, cidx: int, btype: str, block: dict) -> bytes:
        out = self._close_open()
        aidx = self._next
        self._next += 1
        self._blocks[cidx] = (aidx, btype)
        self._open = cidx
        return out + encode_event(dumps({"type": "content_block_start", "index": aidx, "content_block": block}),
                                  "content_block_start")

    def _close_open(self) -> bytes:
        if self._open is None:
            return b""
        aidx = self._blocks[self._open][0]
        self._open = None
        return encode_event(dumps({"type": "content_block_stop", "index": aidx}), "content_block_stop")

    def _delta(self, cidx: int, delta: dict) -> bytes:
        return encode_event(dumps({"type": "content_block_delta", "index": self._blocks[cidx][0], "delta": delta}),
                            "content_block_delta")

    def write(self, ev: StreamDelta) -> bytes:
        if self._closed:
            return b""
        k = ev.kind
        out = b""
        if not self._started:
            if k == "error":
                return self._error(ev)
            out = self._start(ev if k == "message_start" else None)
            if k == "message_start":
                return out
        if k == "text":
            if ev.index not in self._blocks:
                out += self._open_block(ev.index, "text", {"type": "text", "text": "", "citations": None})
            if ev.text:
                out += self._delta(ev.index, {"type": "text_delta", "text": ev.text})
        elif k == "tool_call_start":
            out += self._open_block(ev.index, "tool_use",
                                    {"type": "tool_use", "id": ev.id, "name": ev.name, "input": {}, "caller": {"type": "direct"}})
        elif k == "tool_call_args":
            if ev.index not in self._blocks:
                out += self._open_block(ev.index, "tool_use", {"type": "tool_use", "id": new_id("toolu_"),
                                                               "name": "", "input": {}, "caller": {"type": "direct"}})
            if ev.fragment:
                out += self._delta(ev.index, {"type": "input_json_delta", "partial_json": ev.fragment})
        elif k == "thinking":
            if ev.redacted:
                out += self._open_block(ev.index, "redacted_thinking", {"type": "redacted_thinking", "data": ev.text})
                return out
            if ev.index not in self._blocks:
                out += self._open_block(ev.index, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if ev.text:
                out += self._delta(ev.index, {"type": "thinking_delta", "thinking": ev.text})
            if ev.signature:
                out += self._delta(ev.index, {"type": "signature_delta", "signature": ev.signature})
        elif k == "block_stop":
            if self._open == ev.index:
                out += self._close_open()
        elif k == "finish":
            self._finish = ev
        elif k == "usage":
            self._usage = ev.usage
        elif k == "error":
            out += self._error(ev)
        return out

    def _error(self, ev) -> bytes:
        self._closed = True
        return encode_event(dumps(anthropic_error_body(ev.type, ev.message)), "error")

    def close(self) -> bytes:
        """After the last delta: close the open block, message_delta (stop reason + usage),
        message_stop."""
        if self._closed:
            return b""
        self._closed = True
        out = b"" if self._started else self._start(None)
        out += self._close_open()
        fin = self._finish or Finish("end_turn")
        u = usage_from_canonical(self._usage or Usage(), delta=True)
        delta = {"stop_reason": stop_reasons.to_anthropic(fin.stop_reason),
                 "stop_sequence": fin.stop_sequence if fin.stop_reason == "stop_sequence" else None,
                 "stop_details": None, "container": None}
        out += encode_event(dumps({"type": "message_delta", "delta": delta, "usage": u}), "message_delta")
        return out + encode_event(b'{"type":"message_stop"}', "message_stop")
