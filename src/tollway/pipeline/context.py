"""The per-request context: the one object every stage reads and writes.

Upstream calls are recorded as `Attempt`s (`ctx.attempts`, in order): today one per request;
retries and fallbacks append more. Metrics and trace spans are built from them at the end,
and `upstream_s` (time spent waiting on providers before the response started) gives
Tollway's own overhead: see `overhead_ms()`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from tollway.ids import uuid7
from tollway.usage import Usage

SERVER_SHUTDOWN = "server_shutdown"  # error_type of a request cut by a shutdown

if TYPE_CHECKING:
    from tollway.api.asgi import Receive, Send
    from tollway.counters.base import Admission
    from tollway.errors import ProxyError, WireFormat
    from tollway.guard.call import GuardCall
    from tollway.storage.bodies import BodyCapture
    from tollway.pipeline.auth import KeyInfo
    from tollway.cache.service import CacheCall
    from tollway.pipeline.content import ByteTap, ContentFilter
    from tollway.providers.base import Provider
    from tollway.routing.catalog import Deployment

Reply = Callable[["RequestContext"], Awaitable[None]]


@dataclass(slots=True, eq=False)
class Attempt:
    """One upstream call. Times are `time.perf_counter()` seconds; `ended` is 0 until the
    provider's answer was read to its end (or abandoned)."""

    provider_id: str
    provider_kind: str
    model: str  # the name sent upstream
    url: str
    started: float
    headers_at: float = 0.0  # status and headers arrived
    ended: float = 0.0
    status: int = 0
    error_type: str | None = None
    span: Any = None  # the OpenTelemetry child span, when tracing is on


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
    path_model: str | None = None  # the model named in the path (Gemini, Azure deployments): wins over the body's
    path_stream: bool | None = None  # streaming as the path says (Gemini's streamGenerateContent)
    byok: bool = False  # /proxy/<kind>/ route: the caller's own provider key goes upstream
    body: bytes = b""
    json: dict[str, Any] | None = None
    model: str | None = None
    stream: bool = False
    plan: "list[Deployment]" = field(default_factory=list)  # route stage: deployments to try, in order
    deployment: "Deployment | None" = None  # the one being tried (or that served)
    # the routing decision (route stage): {"policy", "profile", "scores": {deployment: float},
    # "cost_estimate": USD as a string or None}; the stream's trace event carries it
    route_trace: dict[str, Any] | None = None
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
    # Content features (output guardrails, the cache recorder): see pipeline.content. `canonical`
    # forces the translated path so the answer is seen as canonical deltas, which every filter
    # in `content_filters` may hold back, rewrite or stop.
    canonical: bool = False
    content_filters: "list[ContentFilter] | None" = None
    byte_tap: "ByteTap | None" = None  # sees the fast path's answer bytes (pipeline.content)
    cache: "CacheCall | None" = None  # what the response cache decided (cache stage)
    guard: "GuardCall | None" = None  # the sanitization of this call (guard stage)
    guard_findings: str | None = None  # JSON: finding types and counts, never values (the record's)
    bodies: "BodyCapture | None" = None  # request/response bodies kept for the ledger ([store] log_bodies)
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
    # telemetry
    attempts: list[Attempt] = field(default_factory=list)
    upstream_s: float = 0.0  # waiting on providers (headers, and whole bodies) before the response started
    overhead: float | None = None  # seconds in Tollway itself up to the response start (see overhead_ms)
    stream_open: bool = False  # counted in the streams-in-flight gauge
    trace: Any = None  # telemetry.tracing.RequestTrace when OpenTelemetry is on, else None

    def __post_init__(self) -> None:
        self.response_headers.append((b"x-tollway-trace-id", self.trace_id.encode()))

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

    def overhead_header(self) -> tuple[bytes, bytes]:
        """`x-tollway-overhead-ms` for a response about to start: time since the request
        arrived minus time spent waiting on providers (see README, Metrics)."""
        overhead = time.perf_counter() - self.t0 - self.upstream_s
        self.overhead = overhead
        return (b"x-tollway-overhead-ms", b"%.3f" % (overhead * 1000.0))

    def header(self, name: bytes) -> str | None:
        v = self.headers.get(name)
        return v.decode("latin-1") if v is not None else None
