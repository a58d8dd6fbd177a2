"""GET /health and GET /v1/models."""

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

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        discovery = self._state.catalog.discovery
        if discovery is not None:
            await discovery.refresh()  # list what local servers have now (rate-limited, bounded)
        st = self._state
        created = int(st.started_at)
        catalog = st.catalog
        data = []
        for mid, pid in catalog.listed_models():
            provider = catalog.provider(pid)
            item = {"id": mid, "object": "model", "created": created, "owned_by": pid}
            if provider is not None:
                # Tollway's own extension (clients ignore unknown fields): what the portal's Models page shows
                item["tollway"] = {"provider_kind": provider.kind,
                                   "endpoints": sorted(str(e.value) for e in provider.endpoints),
                                   "pricing": _pricing(st, provider.kind, mid)}
            data.append(item)
        await send_json(send, 200, {"object": "list", "data": data})


def _pricing(st: "AppState", kind: str, model: str) -> dict[str, str | None] | None:
    price = st.prices.price_of(kind, model)
    if price is None:
        return None
    return {"input_per_mtok": f"{price.input_per_mtok:f}", "output_per_mtok": f"{price.output_per_mtok:f}",
            "cached_input_per_mtok": None if price.cached_input_per_mtok is None else f"{price.cached_input_per_mtok:f}",
            "source": st.prices.source_of(kind, model)}
