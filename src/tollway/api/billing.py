"""Operator endpoints for billing events, in the `/admin/` table (api.admin_api):

- `GET /admin/billing/failed[?sink=ID&limit=N]` (viewer): parked events (failed
  `max_attempts` times), oldest first, with their last error and the event as it will be sent.
- `POST /admin/billing/retry` (admin): parked events back to the queue, due now. Body
  (optional JSON): `{"event_ids": [...]}` and/or `{"sink": "ID"}`; without either, every
  parked event. Recorded in the audit log.

With no sinks configured there is nothing parked: an empty list, and `{"retried": 0}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tollway.api.admin_api import AdminApi, AdminRequest
from tollway.errors import ProxyError
from tollway.storage.rows import iso_utc

if TYPE_CHECKING:
    from tollway.state import AppState


def register_billing(api: AdminApi, state: "AppState") -> None:
    async def failed(req: AdminRequest) -> tuple[int, Any]:
        unknown = set(req.query) - {"sink", "limit"}
        if unknown:
            name = sorted(unknown)[0]
            raise ProxyError("invalid_request", f"Unknown query parameter {name!r} (allowed: sink, limit).",
                             param=name)
        outbox = state.outbox
        rows = await outbox.parked(req.query.get("sink"), req.int_param("limit", 100)) if outbox else []
        for r in rows:
            r["created_at"] = iso_utc(r["created_at"])
            r["failed_at"] = iso_utc(r["failed_at"])
        return 200, {"object": "list", "data": rows}

    async def retry(req: AdminRequest) -> tuple[int, Any]:
        body = await req.json()
        if set(body) - {"event_ids", "sink"}:
            raise ProxyError("invalid_request", 'Body may hold only "event_ids" (a list) and "sink".')
        ids = body.get("event_ids")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)
                                or len(ids) > 10_000):
            raise ProxyError("invalid_request", "event_ids must be a list of strings (at most 10000).",
                             param="event_ids")
        sink = body.get("sink")
        if sink is not None and not isinstance(sink, str):
            raise ProxyError("invalid_request", "sink must be a string.", param="sink")
        outbox = state.outbox
        n = await outbox.retry(ids, sink) if outbox else 0
        if n:
            await state.audit.record(req.actor, "billing.retry", f"billing:{sink or '*'}",
                                     after={"event_ids": ids, "sink": sink, "retried": n})
        if state.billing is not None:
            state.billing.wake()
        return 200, {"retried": n}

    api.add("GET", "/admin/billing/failed", "viewer", failed)
    api.add("POST", "/admin/billing/retry", "admin", retry)
