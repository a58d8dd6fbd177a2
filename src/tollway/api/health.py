"""GET /health and GET /v1/models.

`/v1/models` needs a Tollway key when keys are configured (any key: it lists what may be
called). `/health` stays open for load balancers, but names the providers only to a caller
with a key (or when Tollway is open): which providers are configured is not for everyone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tollway import __version__
from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, send_bytes, send_json
from tollway.api.authz import caller
from tollway.errors import ProxyError, render

if TYPE_CHECKING:
    from tollway.state import AppState


class HealthRoutes:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    def _has_key(self, scope: Scope) -> bool:
        try:
            caller(self._state, scope)
        except ProxyError:
            return False
        return True

    async def health(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = self._state
        await send_json(send, 200, {
            "status": "ok",
            "version": __version__,
            "uptime_secs": int(time.time() - st.started_at),
            "providers": [p.id for p in st.catalog.providers] if self._has_key(scope) else [],
            "ledger": {"pending": st.ledger.pending, "store_ok": st.ledger.store_ok},
        })

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await require_key(self._state, scope, send):
            return
        discovery = self._state.catalog.discovery
        if discovery is not None:
            await discovery.refresh()  # list what local servers have now (rate-limited, bounded)
        created = int(self._state.started_at)
        data = [{"id": mid, "object": "model", "created": created, "owned_by": pid}
                for mid, pid in self._state.catalog.listed_models()]
        await send_json(send, 200, {"object": "list", "data": data})


async def require_key(state: "AppState", scope: Scope, send: Send) -> bool:
    """True when the caller may go on; else a 401 was sent (Anthropic-shaped to an Anthropic
    client, which always sends anthropic-version)."""
    try:
        caller(state, scope)
    except ProxyError as e:
        fmt = "anthropic" if any(k.lower() == b"anthropic-version" for k, _ in scope["headers"]) else "openai"
        status, body = render(e, fmt)
        await send_bytes(send, status, body, JSON_HEADERS)
        return False
    return True
