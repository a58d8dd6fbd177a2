"""Canonical deltas → OpenAI Responses streaming events, in the order the API sends them:

response.created, response.in_progress, then per output item
  message:       output_item.added, content_part.added, output_text.delta*, output_text.done,
                 content_part.done, output_item.done
  function_call: output_item.added, function_call_arguments.delta*, function_call_arguments.done,
                 output_item.done
  reasoning:     output_item.added, reasoning_summary_part.added, reasoning_summary_text.delta*,
                 reasoning_summary_text.done, reasoning_summary_part.done, output_item.done
and finally response.completed | response.incomplete (| error + response.failed), every event
with its sequence_number.
"""

from __future__ import annotations

from tollway.formats import stop_reasons
from tollway.formats._util import dumps
from tollway.formats.canonical import Thinking, ToolCall
from tollway.formats.errors import responses_error_code, responses_error_object
from tollway.formats.responses import (
    ENCRYPTED_INCLUDE, finalize, function_call_item, item_id, message_item,
    new_response_id, reasoning_item, response_shell,
)
from tollway.formats.stream import Finish, StreamDelta
from tollway.sse import encode_event
from tollway.usage import Usage


class _Item:
    __slots__ = ("n", "kind", "id", "parts", "signature", "redacted", "call_id", "name", "summary_open", "done")

    def __init__(self, n: int, kind: str, iid: str) -> None:
        self.n = n
        self.kind = kind  # "message" | "function_call" | "reasoning"
        self.id = iid
        self.parts: list[str] = []
        self.signature: str | None = None
        self.redacted = False
        self.call_id = ""
        self.name = ""
        self.summary_open = False
        self.done = False


class StreamWriter:
    """One instance per response. `write(delta) -> bytes`, `close() -> bytes`. After close,
    `.response` is the final Response object sent to the client and `.stored_output()` the
    output items to store for previous_response_id (encrypted reasoning included)."""

    def __init__(self, request_body: dict, *, model: str | None = None, response_id: str | None = None,
                 created_at: float | None = None) -> None:
        self.request_body = request_body if isinstance(request_body, dict) else {}
        self.id = response_id or new_response_id()
        self.model = model
        self.created_at = created_at
        inc = self.request_body.get("include")
        self.with_encrypted = isinstance(inc, list) and ENCRYPTED_INCLUDE in inc
        self._seq = 0
        self._started = False
        self._items: list[_Item] = []
        self._by_index: dict[int, _Item] = {}
        self._open: _Item | None = None
        self._usage: Usage | None = None
        self._finish: Finish | None = None
        self._closed = False
        self.response: dict | None = None

    # -- helpers --
    def _ev(self, etype: str, payload: dict) -> bytes:
        payload["type"] = etype
        payload["sequence_number"] = self._seq
        self._seq += 1
        return encode_event(dumps(payload), etype)

    def _shell(self) -> dict:
        return response_shell(self.request_body, self.id, self.model or "", self.created_at)

    def _start(self, model: str | None) -> bytes:
        self._started = True
        if self.model is None:
            self.model = model or ""
        shell = self._shell()
        self.created_at = shell["created_at"]
        return self._ev("response.created", {"response": shell}) + \
            self._ev("response.in_progress", {"response": self._shell()})

    def _item_json(self, it: _Item, status: str, *, client: bool = True) -> dict:
        if it.kind == "message":
            return message_item(self.id, it.n, "".join(it.parts), status)
        if it.kind == "function_call":
            return function_call_item(self.id, it.n, ToolCall(it.call_id, it.name, "".join(it.parts)), status)
        th = Thinking("".join(it.parts), it.signature, it.redacted)
        item = reasoning_item(self.id, it.n, th, with_encrypted=(self.with_encrypted or not client))
        if status != "completed":
            item["status"] = status
        return item

    def _open_item(self, cidx: int, kind: str, prefix: str) -> tuple[_Item, bytes]:
        out = self._close_open()
        it = _Item(len(self._items), kind, item_id(self.id, prefix, len(self._items)))
        self._items.append(it)
        self._by_index[cidx] = it
        self._open = it
        return it, out

    def _added(self, it: _Item) -> bytes:
        item = self._item_json(it, "in_progress")
        if it.kind == "message":
            item["content"] = []
        elif it.kind == "reasoning":
            item["summary"] = []
            item.pop("status", None)
        out = self._ev("response.output_item.added", {"output_index": it.n, "item": item})
        if it.kind == "message":
            out += self._ev("response.content_part.added", {
                "item_id": it.id, "output_index": it.n, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        return out

    def _close_open(self) -> bytes:
        it = self._open
        if it is None:
            return b""
        self._open = None
        return self._done(it, "completed")

    def _done(self, it: _Item, status: str) -> bytes:
        if it.done:
            return b""
        it.done = True
        text = "".join(it.parts)
        out = b""
        if it.kind == "message":
            out += self._ev("response.output_text.done", {"item_id": it.id, "output_index": it.n, "content_index": 0,
                                                          "text": text, "logprobs": []})
            out += self._ev("response.content_part.done", {
                "item_id": it.id, "output_index": it.n, "content_index": 0,
                "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}})
        elif it.kind == "function_call":
            out += self._ev("response.function_call_arguments.done", {"item_id": it.id, "output_index": it.n,
                                                                      "name": it.name, "arguments": text})
        elif it.summary_open:
            out += self._ev("response.reasoning_summary_text.done", {"item_id": it.id, "output_index": it.n,
                                                                     "summary_index": 0, "text": text})
            out += self._ev("response.reasoning_summary_part.done", {
                "item_id": it.id, "output_index": it.n, "summary_index": 0,
                "part": {"type": "summary_text", "text": text}})
        return out + self._ev("response.output_item.done", {"output_index": it.n, "item": self._item_json(it, status)})

    # -- public --
    def write(self, ev: StreamDelta) -> bytes:
        if self._closed:
            return b""
        k = ev.kind
        out = b""
        if not self._started:
            out = self._start(ev.model if k == "message_start" else None)
        if k == "text":
            it = self._by_index.get(ev.index)
            if it is None:
                it, pre = self._open_item(ev.index, "message", "msg")
                out += pre + self._added(it)
            if ev.text:
                it.parts.append(ev.text)
                out += self._ev("response.output_text.delta", {"item_id": it.id, "output_index": it.n,
                                                               "content_index": 0, "delta": ev.text, "logprobs": []})
        elif k == "tool_call_start":
            it, pre = self._open_item(ev.index, "function_call", "fc")
            it.call_id, it.name = ev.id, ev.name
            out += pre + self._added(it)
        elif k == "tool_call_args":
            it = self._by_index.get(ev.index)
            if it is None:
                it, pre = self._open_item(ev.index, "function_call", "fc")
                it.call_id = it.id.replace("fc_", "call_", 1)
                out += pre + self._added(it)
            if ev.fragment:
                it.parts.append(ev.fragment)
                out += self._ev("response.function_call_arguments.delta",
                                {"item_id": it.id, "output_index": it.n, "delta": ev.fragment})
        elif k == "thinking":
            it = self._by_index.get(ev.index)
            if it is None:
                it, pre = self._open_item(ev.index, "reasoning", "rs")
                it.redacted = ev.redacted
                if ev.redacted:
                    it.parts.append(ev.text)
                out += pre + self._added(it)
            if ev.signature:
                it.signature = ev.signature
            if ev.text and not it.redacted:
                if not it.summary_open:
                    it.summary_open = True
                    out += self._ev("response.reasoning_summary_part.added", {
                        "item_id": it.id, "output_index": it.n, "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""}})
                it.parts.append(ev.text)
                out += self._ev("response.reasoning_summary_text.delta", {
                    "item_id": it.id, "output_index": it.n, "summary_index": 0, "delta": ev.text})
        elif k == "block_stop":
            it = self._by_index.get(ev.index)
            if it is not None and it is self._open:
                out += self._close_open()
        elif k == "finish":
            self._finish = ev
        elif k == "usage":
            self._usage = ev.usage
        elif k == "error":
            out += self._fail(ev.type, ev.message)
        return out

    def _fail(self, etype: str, message: str) -> bytes:
        self._closed = True
        out = self._ev("error", {"code": responses_error_code(etype), "message": message, "param": None})
        shell = self._shell()
        shell["status"] = "failed"
        shell["error"] = responses_error_object(etype, message)
        shell["output"] = [self._item_json(it, "incomplete" if not it.done else "completed") for it in self._items]
        self.response = shell
        return out + self._ev("response.failed", {"response": shell})

    def close(self) -> bytes:
        """After the last delta: finish open items, then response.completed / .incomplete."""
        if self._closed:
            return b""
        out = b"" if self._started else self._start(None)
        self._closed = True
        fin = self._finish or Finish("end_turn")
        status, _ = stop_reasons.to_responses(fin.stop_reason)
        cut = status == "incomplete"
        for it in self._items:
            if not it.done:
                out += self._done(it, "incomplete" if cut else "completed")
        output = [self._item_json(it, "incomplete" if cut and it is self._items[-1] and it.kind != "reasoning"
                                  else "completed") for it in self._items]
        self.response = finalize(self._shell(), fin.stop_reason, self._usage or Usage(), output)
        etype = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
            self.response["status"], "response.failed")
        return out + self._ev(etype, {"response": self.response})

    def stored_output(self) -> list[dict]:
        """Output items for storage (previous_response_id): encrypted reasoning always kept."""
        return [self._item_json(it, "completed", client=False) for it in self._items]


__all__ = ["StreamWriter"]
