"""Operator endpoints for billing events (the master key, when keys are set):

- `GET /admin/billing/failed[?sink=ID&limit=N]`: parked events (failed `max_attempts` times),
  oldest first, with their last error and the event as it will be sent.
- `POST /admin/billing/retry`: parked events back to the queue, due now. Body (optional JSON):
  `{"event_ids": [...]}` and/or `{"sink": "ID"}`; without either, every parked event.

With no sinks configured there is nothing parked: an empty list, and `{"retried": 0}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, read_body, send_bytes, send_json
from tollway.errors import ProxyError, render
from tollway.storage.rows import iso_utc

if TYPE_CHECKING:
    from tollway.api.admin import AdminRoutes
    from tollway.state import AppState


class BillingRoutes:
    def __init__(self, state: "AppState", admin: "AdminRoutes") -> None:
        self._state = state
        self._admin = admin

    async def _answer(self, scope: Scope, send: Send, produce) -> None:
        try:
            self._admin.authorize(scope)
            result = await produce()
        except ProxyError as e:
            status, body = render(e, "openai")
            await send_bytes(send, status, body, JSON_HEADERS)
            return
        await send_json(send, 200, result)

    async def failed(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def produce() -> dict[str, Any]:
            sink, limit = None, 100
            for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
                if k == "sink":
                    sink = v
                elif k == "limit" and v.isdigit() and 0 < int(v) <= 1000:
                    limit = int(v)
                else:
                    raise ProxyError("invalid_request", f"Unknown or invalid query parameter {k!r} "
                                                        "(allowed: sink, limit 1-1000).", param=k)
            outbox = self._state.outbox
            rows = await outbox.parked(sink, limit) if outbox is not None else []
            for r in rows:
                r["created_at"] = iso_utc(r["created_at"])
                r["failed_at"] = iso_utc(r["failed_at"])
            return {"object": "list", "data": rows}
        await self._answer(scope, send, produce)

    async def retry(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def produce() -> dict[str, Any]:
            body = await read_body(receive, dict(scope["headers"]), 1 << 20)
            ids: list[str] | None = None
            sink: str | None = None
            if body.strip():
                try:
                    obj = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise ProxyError("invalid_request", "Body must be JSON: {\"event_ids\": [...], \"sink\": ...}.") from None
                if not isinstance(obj, dict) or set(obj) - {"event_ids", "sink"}:
                    raise ProxyError("invalid_request", "Body may hold only \"event_ids\" (a list) and \"sink\".")
                if "event_ids" in obj:
                    ids = obj["event_ids"]
                    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 10_000:
                        raise ProxyError("invalid_request", "event_ids must be a list of strings (at most 10000).",
                                         param="event_ids")
                if obj.get("sink") is not None:
                    if not isinstance(obj["sink"], str):
                        raise ProxyError("invalid_request", "sink must be a string.", param="sink")
                    sink = obj["sink"]
            outbox = self._state.outbox
            n = await outbox.retry(ids, sink) if outbox is not None else 0
            if self._state.billing is not None:
                self._state.billing.wake()
            return {"retried": n}
        await self._answer(scope, send, produce)
