"""Anthropic Messages (and the Anthropic wire format)."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.config import ProviderSettings
from tollway.counting import OutputTally
from tollway.formats.anthropic import usage_to_canonical
from tollway.providers.base import (
    Endpoint, ErrorClass, PreparedCall, UpstreamRequest, classify_http_status, encode_json, event_type,
    loads_object,
)
from tollway.sse import SSEEvent
from tollway.usage import Usage

DEFAULT_VERSION = "2023-06-01"
_PATHS = {Endpoint.MESSAGES: "/v1/messages", Endpoint.COUNT_TOKENS: "/v1/messages/count_tokens"}
_FORWARDED = (b"anthropic-version", b"anthropic-beta")


def usage_from_anthropic(u: dict[str, Any] | None, into: Usage | None = None) -> Usage | None:
    """Anthropic usage (a message's, or a stream's message_start / message_delta on top of `into`);
    see `formats.anthropic.usage_to_canonical`. `into` itself when there is none."""
    return usage_to_canonical(u, into) if isinstance(u, dict) else into


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


def messages_event_text(obj: dict[str, Any]) -> str:
    """The output text of one Messages stream event (content_block_start or _delta)."""
    d = obj.get("delta")
    if isinstance(d, dict):
        return d.get("text") or d.get("partial_json") or d.get("thinking") or ""
    b = obj.get("content_block")
    if isinstance(b, dict):
        return b.get("text") or b.get("name") or b.get("thinking") or ""
    return ""


class MessagesStreamWatcher:
    """Fast-path watcher: usage from message_start and the cumulative message_delta.

    Events are told apart by their `event:` field (or their JSON `type`); only message_start,
    message_delta and error are decoded.
    """

    __slots__ = ("usage", "first_token", "error_type", "model_served", "done", "tally")

    def __init__(self, tally: OutputTally | None = None) -> None:
        self.done = False  # message_stop (or an error) was relayed
        self.usage: Usage | None = None
        self.first_token = False
        self.error_type: str | None = None
        self.model_served: str | None = None
        self.tally = (tally or OutputTally()).use(messages_event_text)

    def relay(self, events: list[SSEEvent]) -> bytes:
        for ev in events:
            t = event_type(ev)
            if t == "content_block_delta":
                self.first_token = True
                self.tally.add_data(ev.data)
            elif t == "content_block_start":
                self.tally.add_data(ev.data)
            elif t == "message_start":
                obj = loads_object(ev.data)
                msg = obj.get("message") if obj is not None else None
                if isinstance(msg, dict):
                    m = msg.get("model")
                    if isinstance(m, str) and m:
                        self.model_served = m
                    self.usage = usage_from_anthropic(msg.get("usage"), self.usage)
            elif t == "message_delta":
                obj = loads_object(ev.data)
                if obj is not None:
                    self.usage = usage_from_anthropic(obj.get("usage"), self.usage)
            elif t == "message_stop":
                self.done = True
            elif t == "error":
                self.error_type = "stream_error"
                self.done = True  # an error ends the stream; the SDK hangs up on it
        return events[0].raw if len(events) == 1 else b"".join(ev.raw for ev in events)


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
            data = encode_json(body)
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

    def stream_watcher(self, endpoint: Endpoint, injected_usage_option: bool,
                       tally: OutputTally | None = None) -> MessagesStreamWatcher:
        return MessagesStreamWatcher(tally)

    def classify_error(self, status: int, body: bytes) -> ErrorClass:
        if status == 529:
            return ErrorClass(retryable=True, fallbackable=True, rate_limited=True)
        return classify_http_status(status)

    def passthrough_url(self, subpath: str, query: bytes) -> str:
        url = self._base + "/v1" + subpath
        return url + "?" + query.decode("latin-1") if query else url
