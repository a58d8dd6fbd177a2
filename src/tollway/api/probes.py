"""GET /health/live and GET /health/ready, for load balancers and Kubernetes.

live: the process answers (200 while the event loop runs). ready: every probe registered on
`AppState.readiness` passes (200), else 503 naming what failed. `/health` itself is in
`api/health.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.api.asgi import Receive, Scope, Send, send_json

if TYPE_CHECKING:
    from tollway.state import AppState

_LIVE = {"status": "ok"}


class ProbeRoutes:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    async def live(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, _LIVE)

    async def ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        results = await self._state.readiness.check()
        ok = all(r.ok for r in results)
        checks = {r.name: {"ok": r.ok, **({"detail": r.detail} if r.detail else {})} for r in results}
        await send_json(send, 200 if ok else 503, {"status": "ready" if ok else "not_ready", "checks": checks})
