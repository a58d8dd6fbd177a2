"""Who may use the operator routes (records, stats, everything under /admin/): by role.

`viewer` reads, `admin` also changes (and reads); the master key may do everything. With no
master key and no keys configured, Tollway is open and these routes are too (start-up says so).
The key travels as `Authorization: Bearer`, `x-api-key` or `X-Tollway-Key`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.api.asgi import Scope
from tollway.errors import ProxyError
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
    """The caller, if it holds `role` ("viewer" or "admin"); else 401/403."""
    info = caller(state, scope)
    if info is not None and not info.has(role):
        raise ProxyError("permission", f"Key '{info.id}' lacks the {role} role needed here "
                                       f"(it has: {', '.join(sorted(info.roles))}).")
    return info


def actor(info: KeyInfo | None) -> str:
    """How the audit log names whoever made a change."""
    return "open" if info is None else info.id
