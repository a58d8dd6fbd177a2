"""Who may use the operator routes (records, stats, everything under /admin/): by role.

`viewer` reads, `admin` also changes (and reads); the master key may do everything. With no
master key and no keys configured, Tollway is open and these routes are too (start-up says so).
The key travels as `Authorization: Bearer`, `x-api-key` or `X-Tollway-Key`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from tollway.api.asgi import JSON_HEADERS, Scope, Send, send_bytes
from tollway.errors import ProxyError, render
from tollway.pipeline.auth import KeyInfo

if TYPE_CHECKING:
    from tollway.state import AppState


def presented(scope: Scope) -> bytes | None:
    h = dict(scope["headers"])
    auth = h.get(b"authorization", b"")
    if auth[:7].lower() == b"bearer ":
        return auth[7:].strip() or None
    return h.get(b"x-api-key") or h.get(b"x-tollway-key")


def caller(state: "AppState", scope: Scope) -> KeyInfo | None:
    """The calling key; None when Tollway is open. 401 when keys are set and none matches."""
    if not state.keys.enabled:
        return None
    key = presented(scope)
    if not key:
        raise ProxyError("authentication", "This endpoint needs a Tollway key (Authorization: Bearer).")
    info = state.keys.lookup(key)
    if info is None:
        raise ProxyError("authentication", "Invalid Tollway key.")
    return info


def authorize(state: "AppState", scope: Scope, role: str) -> KeyInfo | None:
    """The caller, if it holds `role` ("viewer", "admin", "user", or "any": every valid key); else 401/403."""
    info = caller(state, scope)
    if info is not None and role != "any" and not info.has(role):
        raise ProxyError("permission", f"Key '{info.id}' lacks the {role} role needed here "
                                       f"(it has: {', '.join(sorted(info.roles))}).")
    return info


def actor(info: KeyInfo | None) -> str:
    """How the audit log names whoever made a change."""
    return "open" if info is None else info.id


def presented_anywhere(scope: Scope) -> bytes | None:
    """A Tollway key wherever any client surface puts its own: Bearer, `x-api-key`,
    `X-Tollway-Key`, Gemini's `x-goog-api-key` or `?key=`, Azure's `api-key`."""
    found = presented(scope)
    if found:
        return found
    h = dict(scope["headers"])
    found = h.get(b"x-goog-api-key") or h.get(b"api-key")
    if found:
        return found
    for part in scope.get("query_string", b"").split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"key" and value:
            return unquote_to_bytes(value)
    return None


def has_key(state: "AppState", scope: Scope) -> bool:
    """The caller presented a valid key, or Tollway is open."""
    return not state.keys.enabled or state.keys.lookup(presented_anywhere(scope)) is not None


async def require_key(state: "AppState", scope: Scope, send: Send, fmt: str = "openai") -> bool:
    """For what only key holders may read (the model lists, /openapi.json): True when the caller
    may go on, else a 401 in `fmt` ("openai", "anthropic" or "gemini") has been sent."""
    if has_key(state, scope):
        return True
    status, body = render(ProxyError("authentication", "This endpoint needs a Tollway key (Authorization: "
                                                       "Bearer, x-api-key, X-Tollway-Key or your SDK's own header)."),
                          fmt)  # type: ignore[arg-type]
    await send_bytes(send, status, body, JSON_HEADERS)
    return False
