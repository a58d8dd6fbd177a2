"""OpenAI (and the OpenAI wire format): chat, completions, embeddings, responses."""

from __future__ import annotations

from typing import Any

from tollway.config import ProviderSettings
from tollway.counting import OutputTally
from tollway.formats.openai_chat import usage_to_canonical
from tollway.providers.base import (
    Endpoint, ErrorClass, PreparedCall, UpstreamRequest, classify_http_status, encode_json, event_type,
    loads_object,
)
from tollway.sse import SSEEvent
from tollway.usage import Usage

_PATHS = {
    Endpoint.CHAT: "/chat/completions",
    Endpoint.COMPLETIONS: "/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
    Endpoint.RESPONSES: "/responses",
}
_USAGE_NULL = b',"usage":null'  # what include_usage adds to every chunk (compact JSON)
_USAGE_KEY = b'"usage"'
_USAGE_NULL_KEY = b'"usage":null'
_ERROR_KEY = b'"error"'
_DONE = b"\ndata: [DONE]"  # the final event, after an event's end (JSON text cannot hold a raw LF)


def usage_from_openai(u: dict[str, Any] | None) -> Usage | None:
    """OpenAI usage of any endpoint (see `formats.openai_chat.usage_to_canonical`); None without one."""
    return usage_to_canonical(u) if isinstance(u, dict) else None


def chat_output_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    for ch in body.get("choices") or ():
        msg = ch.get("message") or {}
        if isinstance(msg.get("content"), str):
            parts.append(msg["content"])
        for tc in msg.get("tool_calls") or ():
            fn = tc.get("function") or {}
            parts.append((fn.get("name") or "") + (fn.get("arguments") or ""))
        if isinstance(ch.get("text"), str):
            parts.append(ch["text"])
    return "".join(parts)


def responses_output_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    for item in body.get("output") or ():
        if item.get("type") == "message":
            for c in item.get("content") or ():
                if isinstance(c.get("text"), str):
                    parts.append(c["text"])
        elif item.get("type") == "function_call":
            parts.append((item.get("name") or "") + (item.get("arguments") or ""))
    return "".join(parts)


def chat_chunk_text(obj: dict[str, Any]) -> str:
    """The output text of one Chat Completions / Completions stream chunk."""
    parts: list[str] = []
    for ch in obj.get("choices") or ():
        d = ch.get("delta") or {}
        if isinstance(d.get("content"), str):
            parts.append(d["content"])
        for tc in d.get("tool_calls") or ():
            fn = tc.get("function") or {}
            parts.append((fn.get("name") or "") + (fn.get("arguments") or ""))
        if isinstance(ch.get("text"), str):
            parts.append(ch["text"])
    return "".join(parts)


def responses_delta_text(obj: dict[str, Any]) -> str:
    d = obj.get("delta")
    return d if isinstance(d, str) else ""


class ChatStreamWatcher:
    """Fast-path watcher for Chat Completions / legacy Completions streams.

    A chunk is decoded only when it may carry something other than content: the first one
    (the model served), and one whose bytes hold a `"usage"` key with a value other than
    null, or an `"error"` key. Answer text cannot produce those bytes (its quotes are escaped),
    and a false alarm only costs a decode: what counts is the decoded object's top level.
    """

    __slots__ = ("usage", "first_token", "error_type", "model_served", "done", "tally", "_strip")

    def __init__(self, strip_usage: bool, tally: OutputTally | None = None) -> None:
        self.done = False  # [DONE] was relayed: the client has everything
        self.usage: Usage | None = None
        self.first_token = False
        self.error_type: str | None = None
        self.model_served: str | None = None
        self.tally = (tally or OutputTally()).use(chat_chunk_text)
        self._strip = strip_usage

    def relay(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        add = self.tally.add_data
        for ev in events:
            data = ev.data
            raw = ev.raw
            if not data:
                out.append(raw)
                continue
            if data == b"[DONE]":
                self.done = True
                out.append(raw)
                continue
            usage_keys = data.count(_USAGE_KEY)
            null_usage = data.count(_USAGE_NULL_KEY) if usage_keys else 0
            if not self.first_token or usage_keys > null_usage or _ERROR_KEY in data:
                raw = self._decoded(ev)
                if raw is not None:
                    out.append(raw)
                    continue
                raw = ev.raw
            self.first_token = True
            add(data)
            if null_usage and self._strip:
                raw = raw.replace(_USAGE_NULL, b"")
            out.append(raw)
        return out[0] if len(out) == 1 else b"".join(out)

    def plain_until(self, buf: bytes, pos: int, end: int) -> int:
        """Where the run of plain content chunks starting at `pos` ends (an event start, at most
        `end`): the first chunk is looked at, and so is every chunk whose bytes hold a usage
        other than null, an error or the final [DONE] (see the class docstring)."""
        if not self.first_token or buf.startswith(_DONE[1:], pos):
            return pos
        stop = end
        for marker in (_ERROR_KEY, _DONE):
            i = buf.find(marker, pos, stop)
            if i >= 0:
                stop = i
        if buf.count(_USAGE_KEY, pos, stop) != buf.count(_USAGE_NULL_KEY, pos, stop):
            i = buf.find(_USAGE_KEY, pos, stop)
            while i >= 0 and buf.startswith(_USAGE_NULL_KEY, i):
                i = buf.find(_USAGE_KEY, i + len(_USAGE_KEY), stop)
            if i >= 0:
                stop = i
        if stop == end:
            return end
        start = buf.rfind(b"\n\n", pos, stop)  # back to the start of the event holding the marker
        return start + 2 if start >= 0 else pos

    def relay_plain(self, block: bytes) -> bytes:
        """Whole content chunks (see `plain_until`), relayed as one block."""
        self.tally.add_sse(block)
        if self._strip:
            return block.replace(_USAGE_NULL, b"")
        return block

    def _decoded(self, ev: SSEEvent) -> bytes | None:
        """A chunk that may be more than content, decoded: the bytes to relay when it is not a
        content chunk (an error, the usage-only chunk), else None."""
        obj = loads_object(ev.data)
        if obj is None:
            return None
        if not self.first_token:
            self._note_model(obj)
        if obj.get("error"):
            self.error_type = "stream_error"
            self.done = True  # an error ends the stream; the SDK hangs up on it
            return ev.raw
        u = obj.get("usage")
        if isinstance(u, dict):
            self.usage = usage_from_openai(u)
            if not obj.get("choices"):  # the usage-only chunk
                return b"" if self._strip else ev.raw
        if not self.first_token and _is_preamble(obj):  # role-only: no token yet (held back by a fallback)
            return ev.raw.replace(_USAGE_NULL, b"") if self._strip else ev.raw
        return None

    def _note_model(self, obj: dict[str, Any]) -> None:
        m = obj.get("model")
        if isinstance(m, str):
            self.model_served = m


_CONTENT_KEYS = ("content", "tool_calls", "function_call", "refusal", "reasoning_content", "reasoning", "audio")


def _is_preamble(obj: dict[str, Any]) -> bool:
    """A chunk before the answer: choices whose deltas carry only a role (or nothing), unfinished."""
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for c in choices:
        if not isinstance(c, dict) or c.get("finish_reason") is not None:
            return False
        delta = c.get("delta")
        if isinstance(delta, dict) and any(delta.get(k) for k in _CONTENT_KEYS):
            return False
    return True


class ResponsesStreamWatcher:
    """Fast-path watcher for Responses API streams: usage arrives in response.completed."""

    __slots__ = ("usage", "first_token", "error_type", "model_served", "done", "tally", "response_id", "stored")

    _FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
    _TEXT = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})

    def __init__(self, tally: OutputTally | None = None) -> None:
        self.done = False
        self.usage: Usage | None = None
        self.first_token = False
        self.error_type: str | None = None
        self.model_served: str | None = None
        self.response_id: str | None = None  # the response's id, from its first event that names it
        self.stored = True  # the provider keeps the response (its `store` is not false)
        self.tally = (tally or OutputTally()).use(responses_delta_text)

    def relay(self, events: list[SSEEvent]) -> bytes:
        for ev in events:
            t = event_type(ev)
            if t is None:
                continue
            if t.endswith(".delta"):
                self.first_token = True
                if t in self._TEXT:
                    self.tally.add_data(ev.data)
            elif t in self._FINAL:
                obj = loads_object(ev.data)
                if obj is None:
                    continue
                resp = obj.get("response")
                resp = resp if isinstance(resp, dict) else {}
                self._note_id(resp)
                self.done = True
                self.usage = usage_from_openai(resp.get("usage"))
                m = resp.get("model")
                if isinstance(m, str) and m:
                    self.model_served = m
                if t == "response.failed":
                    self.error_type = "response_failed"
            elif t == "response.created":  # the model, in case the stream never completes
                obj = loads_object(ev.data)
                resp = obj.get("response") if obj is not None else None
                if isinstance(resp, dict):
                    self._note_id(resp)
                m = resp.get("model") if isinstance(resp, dict) else None
                if isinstance(m, str) and m:
                    self.model_served = m
            elif t == "error":
                self.error_type = "stream_error"
                self.done = True
        return events[0].raw if len(events) == 1 else b"".join(ev.raw for ev in events)

    def _note_id(self, resp: dict[str, Any]) -> None:
        rid = resp.get("id")
        if self.response_id is None and isinstance(rid, str) and rid:
            self.response_id = rid
            self.stored = resp.get("store") is not False


class OpenAIProvider:
    wire_format = "openai"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.RESPONSES})

    def __init__(self, settings: ProviderSettings) -> None:
        self.id = settings.id
        self.kind = settings.kind
        self.settings = settings
        self._base = settings.base_url
        self._auth = self.auth_headers()
        self._json_headers = {"content-type": "application/json", **self._auth, **settings.headers}

    def __repr__(self) -> str:
        return f"OpenAIProvider(id={self.id!r}, base_url={self._base!r})"

    def auth_headers(self, api_key: str | None = None) -> dict[str, str]:
        """The headers carrying the provider key (or `api_key`, a Tollway key's own credential)."""
        key = api_key or (self.settings.api_key.get_secret_value() if self.settings.api_key else None)
        return {"authorization": f"Bearer {key}"} if key else {}

    def prepare(self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, upstream_model: str,
                stream: bool, client_headers: dict[bytes, bytes]) -> PreparedCall:
        edited = False
        if upstream_model and body.get("model") != upstream_model:  # "": the body names none (stored prompt)
            body["model"] = upstream_model
            edited = True
        injected = False
        if stream and endpoint in (Endpoint.CHAT, Endpoint.COMPLETIONS):
            opts = body.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage")):
                body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
                injected = edited = True
        data = encode_json(body) if edited else raw
        req = UpstreamRequest("POST", self._base + _PATHS[endpoint], self._json_headers, data)
        return PreparedCall(req, injected_usage_option=injected)

    def served_model(self, served: str) -> str:
        """The model name a response reports, as the ledger should price it."""
        return served

    def usage_from_response(self, endpoint: Endpoint, body: dict[str, Any]) -> Usage | None:
        return usage_from_openai(body.get("usage"))

    def output_text(self, endpoint: Endpoint, body: dict[str, Any]) -> str:
        if endpoint == Endpoint.RESPONSES:
            return responses_output_text(body)
        return chat_output_text(body)

    def stream_watcher(self, endpoint: Endpoint, injected_usage_option: bool, tally: OutputTally | None = None):
        if endpoint == Endpoint.RESPONSES:
            return ResponsesStreamWatcher(tally)
        return ChatStreamWatcher(strip_usage=injected_usage_option, tally=tally)

    def classify_error(self, status: int, body: bytes) -> ErrorClass:
        return classify_http_status(status)

    def passthrough_url(self, subpath: str, query: bytes) -> str:
        url = self._base + subpath
        return url + "?" + query.decode("latin-1") if query else url


__all__ = ["OpenAIProvider", "usage_from_openai"]
