"""Metering and the ledger: usage → (estimate if missing) → cost → record → log line.

`meter()` runs before a non-streaming response is sent (the cost goes in a header) and at
the end of a stream; `AccountingStage.after()` writes one record for every request,
failures included. Nothing here waits on the store: records go to the writer's queue.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from tollway.estimate import prompt_tokens
from tollway.pipeline.context import RequestContext
from tollway.providers.base import COUNTING_ENDPOINTS
from tollway.usage import Usage, UsageRecord

if TYPE_CHECKING:
    from tollway.state import AppState


def meter(state: "AppState", ctx: RequestContext, output_text: str | None = None) -> None:
    """Fill ctx.usage (estimating when the provider reported none) and ctx.cost."""
    if ctx.metered:
        return
    ctx.metered = True
    dep = ctx.deployment
    if ctx.endpoint in COUNTING_ENDPOINTS and 0 < ctx.status < 400:
        ctx.cost, ctx.cost_note = Decimal(0), "token counting is free"
        return
    if dep is None:
        ctx.cost_note = "nothing to price" if ctx.status >= 400 or ctx.status == 0 else "no model to price"
        return
    model = ctx.model_served or dep.model
    usage = ctx.usage
    if output_text is not None and (ctx.incomplete or ((usage is None or not usage.known) and ctx.status < 400)):
        # No usage came, or the stream ended early (the final usage event never arrived):
        # count what we have, keeping any prompt count the provider already reported.
        reported_input = usage.input_tokens if usage is not None else None
        usage = Usage(
            input_tokens=reported_input if reported_input is not None
            else prompt_tokens(state.tokens, ctx.endpoint, model, ctx.json),
            output_tokens=state.tokens.count_text(model, output_text)[0] if output_text else 0,
            cached_tokens=usage.cached_tokens if usage is not None else 0,
            cache_creation_tokens=usage.cache_creation_tokens if usage is not None else 0,
            estimated=True,
        )
        ctx.usage = usage
    if usage is None or not usage.known:
        ctx.cost, ctx.cost_note = None, "no usage reported"
        return
    ctx.cost, ctx.cost_note = state.prices.cost(dep.provider.kind, model, usage)


class AccountingStage:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    async def before(self, ctx: RequestContext) -> None:
        return None

    async def after(self, ctx: RequestContext) -> None:
        meter(self._state, ctx)
        dep = ctx.deployment
        usage = ctx.usage or Usage()
        latency = ctx.elapsed_ms()
        rec = UsageRecord(
            trace_id=ctx.trace_id, ts=ctx.started, route=ctx.route, method=ctx.method, path=ctx.path,
            provider=ctx.provider.id if ctx.provider is not None else (dep.provider.id if dep else None), model_requested=ctx.model,
            model_served=ctx.model_served or (dep.model if dep else None), stream=ctx.stream, usage=usage,
            cost_usd=ctx.cost, cost_note=ctx.cost_note, latency_ms=round(latency, 3),
            ttft_ms=None if ctx.ttft_ms is None else round(ctx.ttft_ms, 3), status=ctx.status,
            error_type=ctx.error_type, cancelled=ctx.cancelled, key_id=ctx.key_id, project=ctx.project,
            source=ctx.source, customer=ctx.customer,
        )
        self._state.ledger.put(rec)
        self._state.access_log.write(rec)
