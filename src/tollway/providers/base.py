"""The provider interface: small, mostly pure modules that know one provider's wire format.

A provider never touches sockets or the web framework. It builds the upstream request,
reads usage out of response bytes, and watches stream blocks. `providers.transport` owns
the HTTP client; `pipeline.proxy` drives the two.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import orjson

from tollway.config import ProviderSettings
from tollway.usage import Usage


class Endpoint(StrEnum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"
    MESSAGES = "messages"
    COUNT_TOKENS = "count_tokens"
    # the Gemini client surface (/v1beta/models/{model}:verb)
    GENERATE_CONTENT = "generate_content"  # generateContent and streamGenerateContent
    EMBED_CONTENT = "embed_content"  # embedContent and batchEmbedContents
    GEMINI_COUNT_TOKENS = "gemini_count_tokens"


# Endpoints whose client speaks Gemini, and those that count tokens (free, never streamed).
GEMINI_ENDPOINTS = frozenset({Endpoint.GENERATE_CONTENT, Endpoint.EMBED_CONTENT, Endpoint.GEMINI_COUNT_TOKENS})
COUNTING_ENDPOINTS = frozenset({Endpoint.COUNT_TOKENS, Endpoint.GEMINI_COUNT_TOKENS})


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass(slots=True)
class ErrorClass:
    """What a provider error means for retry and fallback decisions."""

    retryable: bool
    fallbackable: bool
    rate_limited: bool = False


class StreamWatcher(Protocol):
    """Looks at complete SSE blocks as they are relayed (fast path, no translation).

    `relay(block)` returns the bytes to send to the client: usually `block` itself, edited
    only where the proxy changed the request (e.g. the usage event the client never asked
    for is removed). It records usage, first-token time and in-stream errors as it goes.
    """

    usage: Usage | None
    first_token: bool  # a content event has been seen
    error_type: str | None
    model_served: str | None
    done: bool  # the stream's final event was relayed: a disconnect after it is no cancel

    def relay(self, block: bytes) -> bytes: ...

    def output_text(self) -> str:
        """Text generated so far, for a local token estimate when no usage came."""
        ...


@dataclass(slots=True)
class PreparedCall:
    """What `Provider.prepare()` decided: the request to send and how to read its answer."""

    request: UpstreamRequest
    injected_usage_option: bool = False  # we asked for stream usage the client did not


class Provider(Protocol):
    id: str
    kind: str
    wire_format: str  # "openai" | "anthropic"
    settings: ProviderSettings
    endpoints: frozenset[Endpoint]

    def prepare(self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, upstream_model: str,
                stream: bool, client_headers: dict[bytes, bytes]) -> PreparedCall: ...

    def usage_from_response(self, endpoint: Endpoint, body: dict[str, Any]) -> Usage | None: ...

    def served_model(self, served: str) -> str:
        """The model a response names, as it should be priced (Azure: a deployment → its model)."""
        ...

    def output_text(self, endpoint: Endpoint, body: dict[str, Any]) -> str: ...

    def stream_watcher(self, endpoint: Endpoint, injected_usage_option: bool) -> StreamWatcher: ...

    def classify_error(self, status: int, body: bytes) -> ErrorClass: ...

    def passthrough_url(self, subpath: str, query: bytes) -> str: ...

    def auth_headers(self) -> dict[str, str]: ...


def classify_http_status(status: int) -> ErrorClass:
    """The common rule: 429 and 5xx may be retried elsewhere; other 4xx are the caller's."""
    if status == 429:
        return ErrorClass(retryable=True, fallbackable=True, rate_limited=True)
    if status >= 500:
        return ErrorClass(retryable=True, fallbackable=True)
    return ErrorClass(retryable=False, fallbackable=False)


@dataclass(slots=True)
class TextCollector:
    """Keeps relayed blocks so text can be recovered only when it is needed (no usage came)."""

    blocks: list[bytes] = field(default_factory=list)

    def add(self, block: bytes) -> None:
        self.blocks.append(block)

    def joined(self) -> bytes:
        return b"".join(self.blocks)

    def events(self) -> Iterator[dict[str, Any]]:
        """The JSON object of every collected event (malformed ones and [DONE] skipped)."""
        return json_events(self.joined())


def json_events(data: bytes) -> Iterator[dict[str, Any]]:
    """Decode SSE bytes and yield each event's JSON object (a one-element array unwrapped)."""
    from tollway.sse import SSEDecoder

    dec = SSEDecoder()
    for ev in dec.feed(data) + dec.flush():
        if not ev.data or ev.is_done:
            continue
        try:
            obj = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, list) and len(obj) == 1:
            obj = obj[0]
        if isinstance(obj, dict):
            yield obj


def split_complete(buf: bytes) -> tuple[bytes, bytes]:
    """Split buffered stream bytes into (complete SSE events, trailing partial event)."""
    i = buf.rfind(b"\n\n")
    j = buf.rfind(b"\r\n\r\n")
    end = max(i + 2 if i >= 0 else -1, j + 4 if j >= 0 else -1)
    if end < 0:
        return b"", buf
    return buf[:end], buf[end:]


def event_bounds(block: bytes, pos: int) -> tuple[int, int]:
    """Start and end (exclusive, incl. the blank line) of the SSE event holding byte `pos`."""
    start = block.rfind(b"\n\n", 0, pos)
    start = 0 if start < 0 else start + 2
    end = block.find(b"\n\n", pos)
    end = len(block) if end < 0 else end + 2
    return start, end


def event_data(event: bytes) -> bytes:
    """The JSON payload of a single-line `data:` SSE event."""
    i = event.find(b"data:")
    if i < 0:
        return b""
    j = event.find(b"\n", i)
    return event[i + 5 : j if j >= 0 else len(event)].strip()
