"""Upstream calls as the rest of Tollway sees them: timed, recorded as `Attempt`s, traced.

Every provider call goes through `send()`: it records an `Attempt` on the context, adds the
time spent waiting for the provider's headers to `ctx.upstream_s` (so Tollway's own overhead
can be told apart), and carries W3C trace context upstream: the client's `traceparent` /
`tracestate` as they came when tracing is off, or a child span's when it is on.
`read()` times a whole-body read the same way (at most `limit` bytes: past it, a 502
upstream_too_large); `finish()` closes the attempt.

A shutdown that cuts the request while it waits here (uvicorn cancels what outlives the
grace) becomes a 503 `server_shutdown` error, rendered by the stage runner in the client's
format; the request is recorded as cancelled, its prompt counted (`AccountingStage`).

Retries and fallbacks (routing) call `send()` once per attempt; metrics and spans read
`ctx.attempts` at the end of the request.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from tollway.errors import ProxyError, shutdown_error
from tollway.pipeline.context import Attempt, RequestContext

if TYPE_CHECKING:
    from tollway.pipeline.attempts import AttemptLimits
    from tollway.providers.base import UpstreamRequest
    from tollway.providers.transport import Transport, UpstreamResponse

TRACE_HEADERS = (b"traceparent", b"tracestate")


def _forward_client_trace(ctx: RequestContext, req: "UpstreamRequest") -> None:
    tp = ctx.headers.get(b"traceparent")
    if tp is None:
        return
    headers = dict(req.headers)  # providers share their header dicts between calls: copy
    headers["traceparent"] = tp.decode("latin-1")
    ts = ctx.headers.get(b"tracestate")
    if ts is not None:
        headers["tracestate"] = ts.decode("latin-1")
    req.headers = headers


async def send(ctx: RequestContext, transport: "Transport", req: "UpstreamRequest", provider_id: str,
               provider_kind: str, model: str) -> "UpstreamResponse":
    """Send one attempt; returns once the provider's status and headers arrived."""
    attempt = Attempt(provider_id, provider_kind, model, req.url, time.perf_counter(), credential=ctx.credential)
    ctx.attempts.append(attempt)
    lim = ctx.limits
    if lim is not None and (lim.connect_s is not None or lim.first_token_s is not None or lim.total_s is not None):
        req.connect_timeout, req.head_timeout = lim.connect_s, lim.first_token_s
        lim.arm(asyncio.get_running_loop().time())
    if ctx.health is not None and ctx.deployment is not None:
        ctx.health.started(ctx.deployment, ctx.credential)
    trace = ctx.trace
    if trace is not None:
        trace.start_attempt(attempt, req)
    else:
        _forward_client_trace(ctx, req)
    try:
        resp = await transport.send(req)
    except (ProxyError, asyncio.CancelledError) as e:
        now = time.perf_counter()
        ctx.upstream_s += now - attempt.started
        attempt.headers_at = attempt.ended = now
        if isinstance(e, ProxyError):
            attempt.error_type = e.error_type
            raise
        if not ctx.cut_by_server():
            raise
        attempt.error_type = ctx.error_type
        raise shutdown_error() from None
    now = time.perf_counter()
    ctx.upstream_s += now - attempt.started
    attempt.headers_at = now
    attempt.status = resp.status
    if lim is not None and (lim.first_token_s is not None or lim.total_s is not None):
        set_deadline = getattr(resp, "set_deadline", None)
        if set_deadline is not None:
            if ctx.stream and lim.first_token_at is not None and resp.status < 400:
                set_deadline(lim.first_token_at, f"The provider sent no first token within {lim.first_token_s:g} s "
                                                 "(first-token timeout).")
            else:
                total_deadline(resp, lim)
    return resp


def total_deadline(resp: "UpstreamResponse", lim: "AttemptLimits") -> None:
    """From now on only the attempt's total deadline holds (a stream: after its first token)."""
    set_deadline = getattr(resp, "set_deadline", None)
    if set_deadline is not None:
        if lim.total_s is None:
            set_deadline(None)
        else:
            set_deadline(lim.total_at, f"The provider did not finish within {lim.total_s:g} s (total timeout).")


async def read(ctx: RequestContext, resp: "UpstreamResponse", limit: int | None = None) -> bytes:
    """The whole body of a non-streamed answer (read before the response starts)."""
    t = time.perf_counter()
    try:
        return await resp.read(limit)
    except asyncio.CancelledError:
        if not ctx.cut_by_server():
            raise
        raise shutdown_error() from None
    finally:
        ctx.upstream_s += time.perf_counter() - t


def finish(ctx: RequestContext, error_type: str | None = None) -> None:
    """The last attempt's answer was read to its end, or abandoned."""
    if ctx.attempts:
        attempt = ctx.attempts[-1]
        if not attempt.ended:
            attempt.ended = time.perf_counter()
        if error_type and attempt.error_type is None:
            attempt.error_type = error_type
