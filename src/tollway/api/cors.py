"""CORS for browser clients (`[server] cors_origins`; none by default).

Preflights (`OPTIONS` with `Access-Control-Request-Method`) are answered by Tollway itself and
never forwarded (a bare `OPTIONS` is an ordinary request of its route): with the
`Access-Control-Allow-*` headers when the `Origin` is allowed, without them otherwise (the
browser then refuses the call). Responses to an allowed origin carry `Access-Control-Allow-Origin`
and expose Tollway's own headers (`x-tollway-trace-id`, cost, dropped params …) and the
providers' request ids and rate-limit headers. `"*"` allows any origin (it is echoed back).

Written by hand: a few header lines, and the ASGI CORS middlewares there are (Starlette's)
come with a framework Tollway's raw ASGI app does not use.
"""

from __future__ import annotations

from typing import Any

from tollway.api.asgi import Receive, Scope, Send

ALLOWED_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
DEFAULT_HEADERS = (b"authorization, content-type, x-api-key, api-key, x-goog-api-key, anthropic-version, "
                   b"anthropic-beta, x-tollway-key, x-tollway-project, x-tollway-source, x-tollway-customer, "
                   b"x-tollway-profile, x-tollway-session")
EXPOSED = (b"x-tollway-trace-id, x-tollway-cost-usd, x-tollway-overhead-ms, x-tollway-dropped-params, "
           b"x-tollway-tokens-estimated, "
           b"x-request-id, request-id, retry-after, openai-processing-ms, x-ratelimit-remaining-requests, "
           b"x-ratelimit-remaining-tokens, anthropic-ratelimit-requests-remaining")
MAX_AGE = b"600"


def origin_of(scope: Scope) -> bytes | None:
    for k, v in scope["headers"]:
        if k == b"origin" or k.lower() == b"origin":
            return v
    return None


def is_preflight(scope: Scope) -> bool:
    return any(k.lower() == b"access-control-request-method" for k, _ in scope["headers"])


class Cors:
    __slots__ = ("enabled", "_any", "_origins")

    def __init__(self, origins: list[str]) -> None:
        self._any = "*" in origins
        self._origins = frozenset(o.rstrip("/").lower().encode() for o in origins if o != "*")
        self.enabled = self._any or bool(self._origins)

    def allowed(self, origin: bytes | None) -> bool:
        if not origin or not self.enabled:
            return False
        return self._any or origin.rstrip(b"/").lower() in self._origins

    async def preflight(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = origin_of(scope)
        headers: list[tuple[bytes, bytes]] = [(b"allow", ALLOWED_METHODS), (b"content-length", b"0")]
        if self.allowed(origin):
            asked = next((v for k, v in scope["headers"] if k.lower() == b"access-control-request-headers"), None)
            headers += [(b"access-control-allow-origin", origin), (b"vary", b"Origin"),  # type: ignore[list-item]
                        (b"access-control-allow-methods", ALLOWED_METHODS),
                        (b"access-control-allow-headers", asked or DEFAULT_HEADERS),
                        (b"access-control-max-age", MAX_AGE)]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def wrap(self, send: Send, origin: bytes) -> Send:
        """`send` with the CORS headers added to the response start."""
        extra = [(b"access-control-allow-origin", origin), (b"vary", b"Origin"),
                 (b"access-control-expose-headers", EXPOSED)]

        async def cors_send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                msg = {**msg, "headers": [*msg.get("headers", ()), *extra]}
            await send(msg)

        return cors_send
