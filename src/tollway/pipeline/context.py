"""The per-request context: the one object every stage reads and writes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from tollway.ids import uuid7
from tollway.usage import Usage

if TYPE_CHECKING:
    from tollway.api.asgi import Receive, Send
    from tollway.counters.base import Admission
    from tollway.errors import ProxyError, WireFormat
    from tollway.pipeline.auth import KeyInfo
    from tollway.providers.base import Provider
    from tollway.routing.catalog import Deployment

Reply = Callable[["RequestContext"], Awaitable[None]]


@dataclass(slots=True, eq=False)
class RequestContext:
    route: str  # ledger name of the surface, e.g. "openai.chat"
    wire_format: "WireFormat"  # the client's format: errors are rendered in it
    endpoint: str  # Endpoint value, or "passthrough"
    method: str
    path: str
    headers: dict[bytes, bytes]  # request headers, lower-case names
    receive: "Receive | None" = None  # the ASGI channel of this request (set by its route)
    send: "Send | None" = None
    trace_id: str = field(default_factory=uuid7)
    started: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.perf_counter)
    # filled by stages
    key: "KeyInfo | None" = None  # the caller's key (auth stage); None while Tollway is open
    key_id: str | None = None
    project: str | None = None
    source: str | None = None
    customer: str | None = None
    team: str | None = None  # the key's team (auth stage)
    path_project: str | None = None  # from /projects/{slug}/...: wins over headers
    byok: bool = False  # /proxy/<kind>/ route: the caller's own provider key goes upstream
    body: bytes = b""
    json: dict[str, Any] | None = None
    model: str | None = None
    stream: bool = False
    plan: "list[Deployment]" = field(default_factory=list)  # route stage: deployments to try, in order
    deployment: "Deployment | None" = None  # the one being tried (or that served)
    provider: "Provider | None" = None
    # Headers every answer to this request carries, Tollway's errors included: the trace id,
    # and whatever stages add (rate-limit state, cache status, the route taken, ...).
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # Set by a stage's before() to answer without calling a provider (a cache hit): the runner
    # skips the remaining stages' before() and the handler, and awaits this instead.
    reply: "Reply | None" = None
    # What the policy stage holds for this request (rate charges, budget reservations, a
    # concurrency slot); settled in its after().
    admission: "Admission | None" = None
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

    def __post_init__(self) -> None:
        self.response_headers.append((b"x-tollway-trace-id", self.trace_id.encode()))

    def client_went_away(self) -> None:
        self.cancelled = self.incomplete = True
        self.error_type = "client_disconnected"

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    def header(self, name: bytes) -> str | None:
        v = self.headers.get(name)
        return v.decode("latin-1") if v is not None else None
