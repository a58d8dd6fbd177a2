"""Google Gemini (Generative Language API v1beta): generateContent, embeddings, countTokens.

OpenAI and Anthropic clients are translated (`pipeline.translate` for chat,
`pipeline.translate_aux` for embeddings and token counting); a Gemini client (`api.gemini`,
the `GENERATE_CONTENT` / `EMBED_CONTENT` / `GEMINI_COUNT_TOKENS` endpoints) is the byte fast
path. This module only knows the URLs, the key header, how to read usage and text out of
Gemini bodies, and what Gemini's error statuses mean for retry and fallback.

    chat          POST {base}/v1beta/models/{model}:generateContent
                  POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse
    embeddings    POST {base}/v1beta/models/{model}:embedContent | :batchEmbedContents
    count_tokens  POST {base}/v1beta/models/{model}:countTokens
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from tollway.config import ProviderSettings
from tollway.formats.gemini import usage_to_canonical
from tollway.counting import OutputTally
from tollway.providers.base import (
    GEMINI_ENDPOINTS, Endpoint, ErrorClass, PreparedCall, UpstreamRequest, classify_http_status, encode_json,
    loads_object,
)
from tollway.sse import SSEEvent
from tollway.usage import Usage

API_VERSION = "v1beta"
# Gemini's google.rpc status → what it means for retry / fallback (None: by HTTP status)
_STATUS_CLASS: dict[str, ErrorClass] = {
    "RESOURCE_EXHAUSTED": ErrorClass(retryable=True, fallbackable=True, rate_limited=True),
    "UNAVAILABLE": ErrorClass(retryable=True, fallbackable=True),
    "INTERNAL": ErrorClass(retryable=True, fallbackable=True),
    "DEADLINE_EXCEEDED": ErrorClass(retryable=True, fallbackable=True),
    "UNKNOWN": ErrorClass(retryable=True, fallbackable=True),
    # "User location is not supported", billing not enabled: another provider may serve it
    "FAILED_PRECONDITION": ErrorClass(retryable=False, fallbackable=True),
}


def model_path(model: str) -> str:
    """`gemini-2.0-flash` or `models/gemini-2.0-flash` → `gemini-2.0-flash` (URL-safe)."""
    return quote(model.removeprefix("models/"), safe="-._~")


def gemini_output_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    for cand in body.get("candidates") or ():
        if not isinstance(cand, dict):
            continue
        for p in (cand.get("content") or {}).get("parts") or ():
            if not isinstance(p, dict):
                continue
            if isinstance(p.get("text"), str):
                parts.append(p["text"])
            fc = p.get("functionCall")
            if isinstance(fc, dict):
                parts.append(str(fc.get("name") or "") + orjson.dumps(fc.get("args") or {}).decode())
        break  # the first candidate is the answer
    return "".join(parts)


class GeminiStreamWatcher:
    """Watches a streamGenerateContent SSE stream relayed as is. Every Gemini chunk carries
    `usageMetadata`, so every chunk is decoded (there is no cheaper way to Gemini's usage)."""

    __slots__ = ("usage", "first_token", "error_type", "model_served", "done", "tally")

    def __init__(self, tally: OutputTally | None = None) -> None:
        self.done = False  # a candidate with a finishReason (or an error) was relayed
        self.usage: Usage | None = None
        self.first_token = False
        self.error_type: str | None = None
        self.model_served: str | None = None
        self.tally = tally or OutputTally()

    def relay(self, events: list[SSEEvent]) -> bytes:
        for ev in events:
            obj = loads_object(ev.data) if ev.data else None
            if obj is None:
                continue
            if obj.get("error"):
                self.error_type = "stream_error"
                self.done = True
                continue
            cands = obj.get("candidates")
            if cands:
                self.first_token = True
                if isinstance(cands, list) and isinstance(cands[0], dict) and cands[0].get("finishReason"):
                    self.done = True
                try:
                    self.tally.add_text(gemini_output_text(obj))
                except (AttributeError, TypeError):
                    pass
            um = obj.get("usageMetadata")
            if isinstance(um, dict):
                self.usage = usage_to_canonical(um)
            mv = obj.get("modelVersion")
            if isinstance(mv, str) and mv:
                self.model_served = mv
        return events[0].raw if len(events) == 1 else b"".join(ev.raw for ev in events)


class GeminiProvider:
    wire_format = "gemini"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS, Endpoint.COUNT_TOKENS, *GEMINI_ENDPOINTS})
    translate_options: dict[str, Any] = {}

    def __init__(self, settings: ProviderSettings) -> None:
        self.id = settings.id
        self.kind = settings.kind
        self.settings = settings
        self._base = settings.base_url
        self._headers = {"content-type": "application/json", **self.auth_headers(), **settings.headers}

    def __repr__(self) -> str:
        return f"GeminiProvider(id={self.id!r}, base_url={self._base!r})"

    def auth_headers(self, api_key: str | None = None) -> dict[str, str]:
        key = api_key or (self.settings.api_key.get_secret_value() if self.settings.api_key else None)
        return {"x-goog-api-key": key} if key else {}

    def action(self, endpoint: Endpoint, body: dict[str, Any], stream: bool) -> str:
        if endpoint in (Endpoint.CHAT, Endpoint.GENERATE_CONTENT):
            return "streamGenerateContent?alt=sse" if stream else "generateContent"
        if endpoint in (Endpoint.EMBEDDINGS, Endpoint.EMBED_CONTENT):
            return "batchEmbedContents" if "requests" in body else "embedContent"
        if endpoint in (Endpoint.COUNT_TOKENS, Endpoint.GEMINI_COUNT_TOKENS):
            return "countTokens"
        raise ValueError(f"Gemini has no {endpoint} endpoint")

    def url(self, model: str, action: str) -> str:
        return f"{self._base}/{API_VERSION}/models/{model_path(model)}:{action}"

    def prepare(self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, upstream_model: str,
                stream: bool, client_headers: dict[bytes, bytes]) -> PreparedCall:
        """`body` is already a Gemini body (translated, or a Gemini client's); the model goes in
        the URL, and in each request of a batch embedding, where an alias may have renamed it."""
        url = self.url(upstream_model, self.action(endpoint, body, stream))
        reqs = body.get("requests")
        if endpoint == Endpoint.EMBED_CONTENT and isinstance(reqs, list):
            name = "models/" + upstream_model.removeprefix("models/")
            if any(isinstance(r, dict) and r.get("model") != name for r in reqs):
                body["requests"] = [{**r, "model": name} if isinstance(r, dict) else r for r in reqs]
                raw = encode_json(body)
        return PreparedCall(UpstreamRequest("POST", url, self._headers, raw or encode_json(body)))

    def served_model(self, served: str) -> str:
        """The model name a response reports, as the ledger should price it."""
        return served

    def usage_from_response(self, endpoint: Endpoint, body: dict[str, Any]) -> Usage | None:
        if endpoint not in (Endpoint.CHAT, Endpoint.GENERATE_CONTENT):
            return None  # embeddings report no usage; countTokens is not usage
        um = body.get("usageMetadata")
        return usage_to_canonical(um) if isinstance(um, dict) else None

    def output_text(self, endpoint: Endpoint, body: dict[str, Any]) -> str:
        return gemini_output_text(body) if endpoint in (Endpoint.CHAT, Endpoint.GENERATE_CONTENT) else ""

    def stream_watcher(self, endpoint: Endpoint, injected_usage_option: bool,
                       tally: OutputTally | None = None) -> GeminiStreamWatcher:
        return GeminiStreamWatcher(tally)

    def classify_error(self, status: int, body: bytes) -> ErrorClass:
        if status == 429:
            return ErrorClass(retryable=True, fallbackable=True, rate_limited=True)
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = data[0]  # Gemini sometimes wraps the error in a one-element array
        err = data.get("error") if isinstance(data, dict) else None
        gstatus = err.get("status") if isinstance(err, dict) else None
        if isinstance(gstatus, str) and gstatus in _STATUS_CLASS:
            return _STATUS_CLASS[gstatus]
        return classify_http_status(status)

    def passthrough_url(self, subpath: str, query: bytes) -> str:
        url = self._base + subpath
        return url + "?" + query.decode("latin-1") if query else url
