"""The per-request context: the one object every stage reads and writes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tollway.ids import uuid7
from tollway.usage import Usage

SERVER_SHUTDOWN = "server_shutdown"  # error_type of a request cut by a shutdown

if TYPE_CHECKING:
    from tollway.errors import ProxyError, WireFormat
    from tollway.providers.base import Provider
    from tollway.routing.catalog import Deployment


@dataclass(slots=True, eq=False)
class RequestContext:
    route: str  # ledger name of the surface, e.g. "openai.chat"
    wire_format: "WireFormat"  # the client's format: errors are rendered in it
    endpoint: str  # Endpoint value, or "passthrough"
    method: str
    path: str
    headers: dict[bytes, bytes]  # request headers, lower-case names
    trace_id: str = field(default_factory=uuid7)
    started: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.perf_counter)
    # filled by stages
    key_id: str | None = None
    project: str | None = None
    source: str | None = None
    customer: str | None = None
    path_project: str | None = None  # from /projects/{slug}/...: wins over headers
    byok: bool = False  # /proxy/<kind>/ route: the caller's own provider key goes upstream
    body: bytes = b""
    json: dict[str, Any] | None = None
    model: str | None = None
    stream: bool = False
    deployment: "Deployment | None" = None
    provider: "Provider | None" = None
    # outcome
    status: int = 0
    error: "ProxyError | None" = None
    error_type: str | None = None
    usage: Usage | None = None
    metered: bool = False
    cost: "Decimal | None" = None
    cost_note: str | None = None
    model_served: str | None = None
    ttft_ms: float | None = None
    cancelled: bool = False
    incomplete: bool = False  # a stream ended before its final event (disconnect or upstream break)
    response_started: bool = False

    def client_went_away(self) -> None:
        self.cancelled = self.incomplete = True
        self.error_type = "client_disconnected"

    def cut_by_server(self) -> bool:
        """Call in `except CancelledError` when no DisconnectWatch claimed the cancellation:
        the server is cutting this request (uvicorn cancels what still runs when the shutdown
        grace ends). The task is un-cancelled, once, so the cut can be answered and recorded
        like a client disconnect (cancelled, with the tokens seen); False when that was done
        already, and the caller must re-raise."""
        if self.error_type == SERVER_SHUTDOWN:
            return False
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()
        self.cancelled = self.incomplete = True
        self.error_type = SERVER_SHUTDOWN
        return True

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    def header(self, name: bytes) -> str | None:
        v = self.headers.get(name)
        return v.decode("latin-1") if v is not None else None
