"""Anthropic Messages (and the Anthropic wire format)."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.config import ProviderSettings
from tollway.providers.base import (
    Endpoint, ErrorClass, PreparedCall, TextCollector, UpstreamRequest, classify_http_status,
    event_bounds, event_data,
)
from tollway.usage import Usage

DEFAULT_VERSION = "2023-06-01"
_PATHS = {Endpoint.MESSAGES: "/v1/messages", Endpoint.COUNT_TOKENS: "/v1/messages/count_tokens"}
_FORWARDED = (b"anthropic-version", b"anthropic-beta")


def usage_from_anthropic(u: dict[str, Any] | None, into: Usage | None = None) -> Usage | None:
    """Anthropic splits the prompt into uncached / cache read / cache write; Usage sums them."""
    if not isinstance(u, dict):
        return into
    usage = into or Usage()
    if "input_tokens" in u or "cache_read_input_tokens" in u or "cache_creation_input_tokens" in u:
        read = u.get("cache_read_input_tokens") or 0
        write = u.get("cache_creation_input_tokens") or 0
        usage.input_tokens = (u.get("input_tokens") or 0) + read + write
        usage.cached_tokens = read
        usage.cache_creation_tokens = write
    if u.get("output_tokens") is not None:
        usage.output_tokens = u["output_tokens"]
    return usage


def messages_output_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    for block in body.get("content") or ():
        t = block.get("type")
        if t == "text":
            parts.append(block.get("text") or "")
        elif t == "thinking":
            parts.append(block.get("thinking") or "")
        elif t == "tool_use":
            parts.append((block.get("name") or "") + orjson.dumps(block.get("input") or {}).decode())
    return "".join(parts)


class MessagesStreamWatcher:
    """Fast-path watcher: usage from message_start and the cumulative message_delta."""

    __slots__ = ("usage", "first_token", "error_type", "model_served", "done", "_collect")

    def __init__(self) -> None:
        self.done = False  # message_stop was relayed
        self.usage: Usage | None = None
        self.first_token = False
        self.error_type: str | None = None
        self.model_served: str | None = None
        self._collect = TextCollector()

    def _event(self, block: bytes, marker: bytes) -> dict[str, Any] | None:
        pos = block.find(marker)
        if pos < 0:
            return None
        start, end = event_bounds(block, pos)
        try:
            obj = orjson.loads(event_data(block[start:end]))
        except orjson.JSONDecodeError:
            return None
        return obj if isinstance(obj, dict) else None

    def relay(self, block: bytes) -> bytes:
        start = self._event(block, b"event: message_start")
        if start is not None:
            msg = start.get("message") or {}
            self.model_served = msg.get("model")
            self.usage = usage_from_anthropic(msg.get("usage"), self.usage)
        if not self.first_token and b"event: content_block_delta" in block:
            self.first_token = True
        delta = self._event(block, b"event: message_delta")
        if delta is not None:
            self.usage = usage_from_anthropic(delta.get("usage"), self.usage)
        if b"event: error" in block:
            self.error_type = "stream_error"
        if b"event: message_stop" in block:
            self.done = True
        self._collect.add(block)
        return block

    def output_text(self) -> str:
        parts: list[str] = []
        for obj in self._collect.events():
            if obj.get("type") == "content_block_delta":
                d = obj.get("delta") or {}
                parts.append(d.get("text") or d.get("partial_json") or d.get("thinking") or "")
        return "".join(parts)


class AnthropicProvider:
    wire_format = "anthropic"
    endpoints = frozenset({Endpoint.MESSAGES, Endpoint.COUNT_TOKENS})

    def __init__(self, settings: ProviderSettings) -> None:
        self.id = settings.id
        self.kind = settings.kind
        self.settings = settings
        self._base = settings.base_url
        self._auth = self.auth_headers()

    def __repr__(self) -> str:
        return f"AnthropicProvider(id={self.id!r}, base_url={self._base!r})"

    def auth_headers(self, api_key: str | None = None) -> dict[str, str]:
        key = api_key or (self.settings.api_key.get_secret_value() if self.settings.api_key else None)
        return {"x-api-key": key} if key else {}

    def prepare(self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, upstream_model: str,
                stream: bool, client_headers: dict[bytes, bytes]) -> PreparedCall:
        data = raw
        if body.get("model") != upstream_model:
            body["model"] = upstream_model
            data = orjson.dumps(body)
        headers = {"content-type": "application/json", "anthropic-version": DEFAULT_VERSION, **self._auth}
        for name in _FORWARDED:
            v = client_headers.get(name)
            if v is not None:
                headers[name.decode()] = v.decode("latin-1")
        headers.update(self.settings.headers)
        return PreparedCall(UpstreamRequest("POST", self._base + _PATHS[endpoint], headers, data))

    def served_model(self, served: str) -> str:
        """The model name a response reports, as the ledger should price it."""
        return served

    def usage_from_response(self, endpoint: Endpoint, body: dict[str, Any]) -> Usage | None:
        if endpoint == Endpoint.COUNT_TOKENS:
            return None
        return usage_from_anthropic(body.get("usage"))

    def output_text(self, endpoint: Endpoint, body: dict[str, Any]) -> str:
        return messages_output_text(body)

    def stream_watcher(self, endpoint: Endpoint, injected_usage_option: bool) -> MessagesStreamWatcher:
        return MessagesStreamWatcher()

    def classify_error(self, status: int, body: bytes) -> ErrorClass:
        if status == 529:
            return ErrorClass(retryable=True, fallbackable=True, rate_limited=True)
        return classify_http_status(status)

    def passthrough_url(self, subpath: str, query: bytes) -> str:
        url = self._base + "/v1" + subpath
        return url + "?" + query.decode("latin-1") if query else url
