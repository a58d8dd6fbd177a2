"""OpenAI (and the OpenAI wire format): chat, completions, embeddings, responses."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.config import ProviderSettings
from tollway.providers.base import (
    Endpoint, ErrorClass, PreparedCall, TextCollector, UpstreamRequest, classify_http_status,
    event_bounds, event_data, split_complete,
)
from tollway.usage import Usage

_PATHS = {
    Endpoint.CHAT: "/chat/completions",
    Endpoint.COMPLETIONS: "/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
    Endpoint.RESPONSES: "/responses",
}
_USAGE_NULL = b',"usage":null'
_USAGE_OBJ = b'"usage":{'
_USAGE_OBJ_SPACED = b'"usage": {'


def usage_from_openai(u: dict[str, Any] | None) -> Usage | None:
    """Chat/completions/embeddings usage (`prompt_tokens`…) or Responses usage (`input_tokens`…)."""
    if not isinstance(u, dict):
        return None
    if "input_tokens" in u:  # Responses API
        details = u.get("input_tokens_details") or {}
        out_details = u.get("output_tokens_details") or {}
        return Usage(
            input_tokens=u.get("input_tokens"),
            output_tokens=u.get("output_tokens"),
            cached_tokens=details.get("cached_tokens") or 0,
            cache_creation_tokens=details.get("cache_write_tokens") or 0,
            reasoning_tokens=out_details.get("reasoning_tokens") or 0,
        )
    details = u.get("prompt_tokens_details") or {}
    out_details = u.get("completion_tokens_details") or {}
    prompt = u.get("prompt_tokens")
    completion = u.get("completion_tokens")
    if completion is None and prompt is not None and "total_tokens" in u:
        completion = (u.get("total_tokens") or prompt) - prompt  # embeddings: total == prompt
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        cached_tokens=details.get("cached_tokens") or 0,
        cache_creation_tokens=details.get("cache_write_tokens") or 0,
        reasoning_tokens=out_details.get("reasoning_tokens") or 0,
    )


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


class ChatStreamWatcher:
    """Fast-path watcher for Chat Completions / legacy Completions streams."""

    __slots__ = ("usage", "first_token", "error_type", "model_served", "done", "_strip", "_collect")

    def __init__(self, strip_usage: bool) -> None:
        self.done = False  # [DONE] was relayed: the client has everything
        self.usage: Usage | None = None
        self.first_token = False
        self.error_type: str | None = None
        self.model_served: str | None = None
        self._strip = strip_usage
        self._collect = TextCollector()

    def relay(self, block: bytes) -> bytes:
        if not self.first_token:
            self.first_token = True
            self._note_model(block)
        if self._strip:
            block = block.replace(_USAGE_NULL, b"")
        pos = block.find(_USAGE_OBJ)
        if pos < 0:
            pos = block.find(_USAGE_OBJ_SPACED)
        if pos >= 0:
            start, end = event_bounds(block, pos)
            try:
                obj = orjson.loads(event_data(block[start:end]))
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                self.usage = usage_from_openai(obj.get("usage"))
                if self._strip and not obj.get("choices"):
                    block = block[:start] + block[end:]
        elif b'"error":{' in block:
            self.error_type = "stream_error"
        if b"data: [DONE]" in block:
            self.done = True
        self._collect.add(block)
        return block

    def _note_model(self, block: bytes) -> None:
        i = block.find(b'"model":"')
        if i >= 0:
            j = block.find(b'"', i + 9)
            if j > 0:
                self.model_served = block[i + 9 : j].decode("utf-8", "replace")

    def output_text(self) -> str:
        parts: list[str] = []
        for obj in self._collect.events():
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


class ResponsesStreamWatcher:
    """Fast-path watcher for Responses API streams: usage arrives in response.completed."""

    __slots__ = ("usage", "first_token", "error_type", "model_served", "done", "_collect")

    _FINAL = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')

    def __init__(self) -> None:
        self.done = False
        self.usage: Usage | None = None
        self.first_token = False
        self.error_type: str | None = None
        self.model_served: str | None = None
        self._collect = TextCollector()

    def relay(self, block: bytes) -> bytes:
        if not self.first_token and b".delta" in block:
            self.first_token = True
        for marker in self._FINAL:
            pos = block.find(marker)
            if pos >= 0:
                start, end = event_bounds(block, pos)
                try:
                    obj = orjson.loads(event_data(block[start:end]))
                except orjson.JSONDecodeError:
                    continue
                resp = obj.get("response") or {}
                self.done = True
                self.usage = usage_from_openai(resp.get("usage"))
                self.model_served = resp.get("model") or self.model_served
                if marker == b'"response.failed"':
                    self.error_type = "response_failed"
        if b'"type":"error"' in block:
            self.error_type = "stream_error"
        self._collect.add(block)
        return block

    def output_text(self) -> str:
        parts: list[str] = []
        for obj in self._collect.events():
            if obj.get("type") in (
                "response.output_text.delta", "response.function_call_arguments.delta"
            ):
                parts.append(obj.get("delta") or "")
        return "".join(parts)


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
        if body.get("model") != upstream_model:
            body["model"] = upstream_model
            edited = True
        injected = False
        if stream and endpoint in (Endpoint.CHAT, Endpoint.COMPLETIONS):
            opts = body.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage")):
                body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
                injected = edited = True
        data = orjson.dumps(body) if edited else raw
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

    def stream_watcher(self, endpoint: Endpoint, injected_usage_option: bool):
        if endpoint == Endpoint.RESPONSES:
            return ResponsesStreamWatcher()
        return ChatStreamWatcher(strip_usage=injected_usage_option)

    def classify_error(self, status: int, body: bytes) -> ErrorClass:
        return classify_http_status(status)

    def passthrough_url(self, subpath: str, query: bytes) -> str:
        url = self._base + subpath
        return url + "?" + query.decode("latin-1") if query else url


__all__ = ["OpenAIProvider", "usage_from_openai", "split_complete"]
