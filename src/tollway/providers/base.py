"""The provider interface: small, mostly pure modules that know one provider's wire format.

A provider never touches sockets or the web framework. It builds the upstream request,
reads usage out of response bytes, and watches stream blocks. `providers.transport` owns
the HTTP client; `pipeline.proxy` drives the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import orjson

from tollway.config import ProviderSettings
from tollway.counting import OutputTally
from tollway.errors import ProxyError
from tollway.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEvent, parse_event
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
    """Looks at complete SSE events as they are relayed (fast path, no translation).

    `relay(events)` returns the bytes to send to the client: usually the events' raw bytes,
    edited only where the proxy changed the request (e.g. the usage event the client never
    asked for is removed). It records usage, first-token time and in-stream errors as it
    goes, deciding by each event's type (its `event:` field or its JSON `type`), never by
    searching the bytes for a marker the answer text could contain; the few events that
    matter are decoded with orjson. Output text goes to `tally` (O(1) memory), counted only
    when no usage comes.
    """

    usage: Usage | None
    first_token: bool  # a content event has been seen
    error_type: str | None
    model_served: str | None
    done: bool  # the stream's final event (or an error event) was relayed: a hang-up after it is no cancel
    tally: OutputTally

    def relay(self, events: list[SSEEvent]) -> bytes: ...


class StreamRelay:
    """What the fast path does to a stream: frame the upstream bytes into SSE events (one
    linear pass, at most `max_event_bytes` held) and pass them through a watcher. `feed()`
    raises `sse.EventTooLarge` when an event outgrows the limit.

    Watchers that can tell from a block's bytes alone which of its events need no look
    (`plain_until`, e.g. Chat Completions content chunks) get runs of such events as one
    block (`relay_plain`), unframed: a network chunk of whole events then costs a few C-level
    searches instead of a Python step per event. The events in between are framed and
    relayed one by one as before; the bytes sent are the same either way.
    """

    __slots__ = ("watcher", "_framer", "_plain_until")

    def __init__(self, watcher: StreamWatcher, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.watcher = watcher
        self._framer = SSEDecoder(max_event_bytes, keep_empty=True)
        self._plain_until = getattr(watcher, "plain_until", None)

    def feed(self, chunk: bytes) -> bytes:
        plain_until = self._plain_until
        framer = self._framer
        if plain_until is None or framer.holding or b"\r" in chunk:
            events = framer.feed(chunk)
            return self.watcher.relay(events) if events else b""
        cut = chunk.rfind(b"\n\n") + 2  # whole events (LF-only) end here; the rest is framed
        if cut < 2:
            framer.feed(chunk)  # no event ends in it: held (or EventTooLarge)
            return b""
        watcher = self.watcher
        out: list[bytes] = []
        pos = 0
        while pos < cut:
            stop = plain_until(chunk, pos, cut)
            if stop > pos:
                out.append(watcher.relay_plain(chunk if pos == 0 and stop == len(chunk) else chunk[pos:stop]))
                pos = stop
            if pos < cut:  # one event that needs a look
                end = chunk.find(b"\n\n", pos, cut)
                end = cut if end < 0 else end + 2  # (a stray LF of an overlapping end: with it)
                out.append(watcher.relay([parse_event(chunk[pos:end], True)]))
                pos = end
        if cut < len(chunk):
            events = framer.feed(chunk[cut:])
            if events:  # cannot happen (no event end after cut), kept for safety
                out.append(watcher.relay(events))
        return out[0] if len(out) == 1 else b"".join(out)

    def close(self) -> bytes:
        """The upstream ended: relay what is left (a last event without its blank line)."""
        events = self._framer.flush()
        return self.watcher.relay(events) if events else b""


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

    def stream_watcher(self, endpoint: Endpoint, injected_usage_option: bool,
                       tally: OutputTally | None = None) -> StreamWatcher: ...

    def classify_error(self, status: int, body: bytes) -> ErrorClass: ...

    def passthrough_url(self, subpath: str, query: bytes) -> str: ...

    def auth_headers(self, api_key: str | None = None) -> dict[str, str]:
        """Headers carrying the configured key, or `api_key` (a Tollway key's own credential)."""
        ...


def classify_http_status(status: int) -> ErrorClass:
    """The common rule: 429 and 5xx may be retried elsewhere; other 4xx are the caller's."""
    if status == 429:
        return ErrorClass(retryable=True, fallbackable=True, rate_limited=True)
    if status >= 500:
        return ErrorClass(retryable=True, fallbackable=True)
    return ErrorClass(retryable=False, fallbackable=False)


def encode_json(body: Any) -> bytes:
    """A request body re-encoded after an edit (model name, stream options, translation).
    What orjson cannot write faithfully (nesting deeper than 254 levels, an integer beyond 64
    bits) is the client's bad input: a 400 in the route's format, before anything is sent."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as e:
        raise ProxyError("invalid_request", f"The request body cannot be forwarded: {e} (JSON nested deeper "
                                            "than 254 levels, or a number out of range).") from None


def loads_object(data: bytes) -> dict[str, Any] | None:
    """An event payload as a JSON object (a one-element array unwrapped), or None."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    return obj if isinstance(obj, dict) else None


_TYPE_PREFIX = b'{"type":"'


def event_type(ev: SSEEvent) -> str | None:
    """An event's type: its `event:` field, else the `type` of its JSON payload. The payload's
    first key is read without decoding when it is `type` (OpenAI and Anthropic put it first);
    otherwise the payload is decoded."""
    if ev.event is not None:
        return ev.event
    data = ev.data
    if not data or data == b"[DONE]":
        return None
    if data.startswith(_TYPE_PREFIX):
        end = data.find(b'"', 9)
        if end > 0 and b"\\" not in data[9:end]:
            return data[9:end].decode("utf-8", "replace")
    obj = loads_object(data)
    t = obj.get("type") if obj is not None else None
    return t if isinstance(t, str) else None
