"""GET /health."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tollway import __version__
from tollway.api.asgi import Receive, Scope, Send, send_json

if TYPE_CHECKING:
    from tollway.state import AppState


class HealthRoutes:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    async def health(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = self._state
        await send_json(send, 200, {
            "status": "ok",
            "version": __version__,
            "uptime_secs": int(time.time() - st.started_at),
            "providers": [p.id for p in st.catalog.providers],
            "ledger": {"pending": st.ledger.pending, "store_ok": st.ledger.store_ok},
        })
