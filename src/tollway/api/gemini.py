"""The Gemini-native surface: what the `google-genai` SDK sends with its base URL on Tollway.

    POST /v1beta/models/{model}:generateContent
    POST /v1beta/models/{model}:streamGenerateContent   (?alt=sse: SSE; without it: one JSON array)
    POST /v1beta/models/{model}:countTokens
    POST /v1beta/models/{model}:embedContent | :batchEmbedContents
    GET  /v1beta/models, GET /v1beta/models/{model}    (Tollway's own model list, Gemini's shape)

The model comes from the path (`models/` prefix optional) and may be any routable model or alias:
a Gemini provider gets the bytes as they are (fast path), any other is translated. Tollway's key
travels where Google's SDKs put theirs: `x-goog-api-key`, or `?key=` (copied into that header
here, so the auth stage reads one place); it never goes upstream. Errors are Gemini-shaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, send_bytes, send_json
from tollway.api.authz import require_key
from tollway.api.unified import UnifiedRoute
from tollway.errors import ProxyError, render
from tollway.providers.base import Endpoint
from tollway.sse import SSEDecoder

if TYPE_CHECKING:
    from tollway.state import AppState

PREFIX = "/v1beta/models"
# verb -> (endpoint, streamed)
_VERBS: dict[str, tuple[Endpoint, bool]] = {
    "generateContent": (Endpoint.GENERATE_CONTENT, False),
    "streamGenerateContent": (Endpoint.GENERATE_CONTENT, True),
    "countTokens": (Endpoint.GEMINI_COUNT_TOKENS, False),
    "embedContent": (Endpoint.EMBED_CONTENT, False),
    "batchEmbedContents": (Endpoint.EMBED_CONTENT, False),
}
_ROUTE_NAMES = {Endpoint.GENERATE_CONTENT: "gemini.generate_content", Endpoint.EMBED_CONTENT: "gemini.embed_content",
                Endpoint.GEMINI_COUNT_TOKENS: "gemini.count_tokens"}
_PAGE_DEFAULT, _PAGE_MAX = 50, 1000


async def gemini_error(send: Send, kind: str, message: str) -> None:
    status, body = render(ProxyError(kind, message), "gemini")
    await send_bytes(send, status, body, JSON_HEADERS)


def _query(scope: Scope) -> dict[str, list[str]]:
    qs = scope.get("query_string", b"")
    return parse_qs(qs.decode("latin-1")) if qs else {}


def with_query_key(scope: Scope, query: dict[str, list[str]]) -> Scope:
    """`?key=` → an `x-goog-api-key` header (unless one was sent), for the auth stage."""
    key = query.get("key")
    if not key or any(k.lower() == b"x-goog-api-key" for k, _ in scope["headers"]):
        return scope
    return {**scope, "headers": [*scope["headers"], (b"x-goog-api-key", key[0].encode("latin-1"))]}


class JsonArrayStream:
    """An ASGI `send` that turns an SSE stream into the JSON array `streamGenerateContent` sends
    without `alt=sse`: `[` + each event's data, comma-separated + `]`, still sent as it arrives.
    Whole (non-SSE) answers, errors included, pass untouched."""

    __slots__ = ("_send", "_active", "_decoder", "_count")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._active = False
        self._decoder = SSEDecoder()
        self._count = 0

    def _elements(self, events: list) -> bytes:
        out = []
        for ev in events:
            if not ev.data or ev.is_done:
                continue
            out.append((b"[" if self._count == 0 else b",\r\n") + ev.data)
            self._count += 1
        return b"".join(out)

    async def __call__(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            hdrs = msg.get("headers") or []
            if msg["status"] == 200 and any(k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                                            for k, v in hdrs):
                self._active = True
                hdrs = [(k, v) for k, v in hdrs if k.lower() != b"content-type"]
                msg = {**msg, "headers": [*hdrs, (b"content-type", b"application/json; charset=UTF-8")]}
        elif msg["type"] == "http.response.body" and self._active:
            final = not msg.get("more_body", False)
            data = self._elements(self._decoder.feed(msg.get("body", b"")))
            if final:
                data += self._elements(self._decoder.flush())
                data += b"]" if self._count else b"[]"
            msg = {**msg, "body": data}
        await self._send(msg)


class GeminiRoutes:
    def __init__(self, state: "AppState") -> None:
        self._state = state
        self._routes = {ep: UnifiedRoute(state, name, "gemini", ep) for ep, name in _ROUTE_NAMES.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send, rest: str,
                       path_project: str | None = None) -> None:
        """`rest`: the path after `/v1beta/models` ("", "/{model}" or "/{model}:{verb}")."""
        method = scope["method"]
        whole = unquote(rest[1:])
        name, sep, verb = whole.rpartition(":")  # model names may hold colons (llama3.2:1b, openai:gpt-4o)
        if not sep or verb not in _VERBS:
            name, verb = whole, ""
        name = name.removeprefix("models/")
        if method in ("GET", "HEAD") and not verb:
            if not await require_key(self._state, scope, send, "gemini"):
                return
            return await (self.get(send, name) if name else self.list(scope, send))
        found = _VERBS.get(verb)
        if method != "POST" or found is None or not name:
            return await gemini_error(send, "not_found", f"No route for {method} {scope['path']}: Tollway serves "
                                      f"{', '.join(_VERBS)} on {PREFIX}/{{model}}.")
        endpoint, stream = found
        query = _query(scope)
        scope = with_query_key(scope, query)
        if stream and query.get("alt", [""])[0] != "sse":
            send = JsonArrayStream(send)
        await self._routes[endpoint](scope, receive, send, path_project=path_project, path_model=name, stream=stream)

    # -- the model list ----------------------------------------------------------------------------
    def _model(self, model_id: str, provider_id: str) -> dict[str, Any]:
        from tollway.pipeline.translate import can_translate

        provider = self._state.catalog.provider(provider_id)
        methods = []
        if provider is not None and can_translate(Endpoint.GENERATE_CONTENT, provider):
            methods += ["generateContent", "streamGenerateContent", "countTokens"]
        if provider is not None and can_translate(Endpoint.EMBED_CONTENT, provider):
            methods += ["embedContent", "batchEmbedContents"]
        return {"name": "models/" + model_id, "baseModelId": model_id, "version": "tollway",
                "displayName": model_id, "description": f"Served by Tollway provider '{provider_id}'.",
                "supportedGenerationMethods": methods}

    async def list(self, scope: Scope, send: Send) -> None:
        catalog = self._state.catalog
        if catalog.discovery is not None:
            await catalog.discovery.refresh()
        query = _query(scope)
        try:
            size = int(query.get("pageSize", [_PAGE_DEFAULT])[0]) or _PAGE_DEFAULT
            start = int(query.get("pageToken", ["0"])[0] or 0)
        except ValueError:
            return await gemini_error(send, "invalid_request", "pageSize and pageToken must be integers.")
        size = max(1, min(size, _PAGE_MAX))
        listed = catalog.listed_models()
        page = listed[max(0, start): max(0, start) + size]
        out: dict[str, Any] = {"models": [self._model(m, p) for m, p in page]}
        if start + size < len(listed):
            out["nextPageToken"] = str(start + size)
        await send_json(send, 200, out)

    async def get(self, send: Send, name: str) -> None:
        catalog = self._state.catalog
        for mid, pid in catalog.listed_models():
            if mid == name:
                return await send_json(send, 200, self._model(mid, pid))
        dep = catalog.resolve(name)  # a name a glob pattern routes is served, if not listed
        if dep is not None:
            return await send_json(send, 200, self._model(name, dep.provider.id))
        await gemini_error(send, "not_found", f"models/{name} is not found: it is not routable by this Tollway.")
