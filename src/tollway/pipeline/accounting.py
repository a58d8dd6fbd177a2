"""Metering and the ledger: usage → (estimate if missing) → cost → record → log line.

`meter()` runs before a non-streaming response is sent (the cost goes in a header) and at
the end of a stream; `AccountingStage.after()` writes one record for every request,
failures included. Nothing here waits on the store: records go to the writer's queue.
The stage also counts the requests in flight, so a shutdown can wait for the ones it cut
to be recorded before it drains the writer.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from tollway.counting import OutputTally
from tollway.estimate import COUNTABLE, prompt_tokens
from tollway.pipeline.attempt_failures import attempt_errors_json, failure_kind
from tollway.pipeline.context import SERVER_SHUTDOWN, RequestContext
from tollway.providers.base import COUNTING_ENDPOINTS
from tollway.usage import (MAX_ATTRIBUTION_CHARS, MAX_MODEL_CHARS, MAX_NOTE_CHARS, MAX_PATH_CHARS, Usage,
                           UsageRecord, clip, join_notes)

if TYPE_CHECKING:
    from tollway.state import AppState


async def meter(state: "AppState", ctx: RequestContext, output: "str | OutputTally | None" = None) -> None:
    """Fill ctx.usage (estimating when the provider reported none) and ctx.cost.

    `output` is the answer's text (or a stream's running tally), counted only when no usage
    came or the answer was cut short. Large counts run off the event loop (`state.counting`).
    """
    if ctx.metered:
        return
    ctx.metered = True
    dep = ctx.deployment
    if ctx.endpoint in COUNTING_ENDPOINTS and (0 < ctx.status < 400 or ctx.cancelled):
        ctx.cost, ctx.cost_note = Decimal(0), "token counting is free"
        return
    if dep is None:
        ctx.cost_note = "nothing to price" if ctx.status >= 400 or ctx.status == 0 else "no model to price"
        return
    model = ctx.model_served or dep.model
    usage = ctx.usage
    # a count the provider reported was refused (usage.CountReader): count that part locally
    refused = usage is not None and usage.note is not None and (
        usage.input_tokens is None or usage.output_tokens is None)
    if (refused and output is None and usage.output_tokens is not None and not ctx.incomplete  # type: ignore[union-attr]
            and ctx.json is not None and ctx.endpoint in COUNTABLE):
        # Only the prompt's count was refused, and the caller has no answer text at hand (a
        # stream whose final usage event carried the bad count, a pass-through answer): the
        # prompt is counted locally, the reported output kept. (A prompt Tollway cannot count,
        # e.g. a Realtime session's, stays unknown, and the note says why.)
        output = ""
    if output is not None and (ctx.incomplete or refused or (
            (usage is None or not usage.known) and ctx.status < 400)):
        # No usage came, or the answer ended early (the final usage event never arrived):
        # count what we have, keeping any count the provider already reported.
        reported_input = usage.input_tokens if usage is not None else None
        if reported_input is None:
            reported_input = await state.counting.run(len(ctx.body), prompt_tokens, state.tokens, ctx.endpoint,
                                                      model, ctx.json)
        keep_output = refused and not ctx.incomplete and usage.output_tokens is not None  # type: ignore[union-attr]
        if keep_output:
            out_tokens = usage.output_tokens  # type: ignore[union-attr]
        elif isinstance(output, OutputTally):
            out_tokens = output.total()
        elif output:
            out_tokens = (await state.counting.run(len(output), state.tokens.count_text, model, output))[0]
        else:
            out_tokens = 0
        usage = Usage(
            input_tokens=reported_input,
            output_tokens=out_tokens,
            cached_tokens=usage.cached_tokens if usage is not None else 0,
            cache_creation_tokens=usage.cache_creation_tokens if usage is not None else 0,
            estimated=True,
            note=usage.note if usage is not None else None,
        )
        ctx.usage = usage
    note = usage.note if usage is not None else None
    if usage is None or not usage.known:
        ctx.cost, ctx.cost_note = None, join_notes("no usage reported", note)
        return
    ctx.cost, ctx.cost_note = state.prices.cost(dep.provider.kind, model, usage)
    if note is not None:
        ctx.cost_note = join_notes(ctx.cost_note, note)


class AccountingStage:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    async def before(self, ctx: RequestContext) -> None:
        state = self._state  # the first stage: its after() runs last, for every request
        state.inflight.add(ctx)
        state.idle.clear()

    async def after(self, ctx: RequestContext) -> None:
        try:
            # cut by a shutdown once the prompt was sent, before any answer was metered: count it
            sent_then_cut = ctx.error_type == SERVER_SHUTDOWN and bool(ctx.attempts)
            await meter(self._state, ctx, "" if sent_then_cut else None)
            rec = self.record(ctx)
            if ctx.error is not None and ctx.error.kind == "authentication" and ctx.key_id is None:
                # No key, no ledger row: a 401 costs nothing and belongs to no one, and letting
                # anyone write rows would let anyone fill the store. The access log has it.
                self._state.unauthenticated += 1
            else:
                self._state.ledger.put(rec)
            self._state.access_log.write(rec)
        finally:
            inflight = self._state.inflight
            if ctx in inflight:  # (Realtime records its responses through after() alone)
                inflight.discard(ctx)
                if not inflight:
                    self._state.idle.set()

    @staticmethod
    def record(ctx: RequestContext) -> UsageRecord:
        """The record of a request. Every text a client or provider controls is clipped to the
        limits in usage.py here, the one place records and access-log lines come from."""
        dep = ctx.deployment
        served = ctx.model_served or (dep.model if dep else None)
        provider = ctx.provider.id if ctx.provider is not None else (dep.provider.id if dep else None)
        rec = UsageRecord(
            trace_id=ctx.trace_id, ts=ctx.started, route=clip(ctx.route, MAX_NOTE_CHARS),  # type: ignore[arg-type]
            method=clip(ctx.method, MAX_NOTE_CHARS), path=clip(ctx.path, MAX_PATH_CHARS),  # type: ignore[arg-type]
            provider=clip(provider, MAX_NOTE_CHARS), model_requested=clip(ctx.model, MAX_MODEL_CHARS),
            model_served=clip(served, MAX_MODEL_CHARS), stream=ctx.stream, usage=ctx.usage or Usage(),
            cost_usd=ctx.cost, cost_note=clip(ctx.cost_note, MAX_NOTE_CHARS), latency_ms=round(ctx.elapsed_ms(), 3),
            ttft_ms=None if ctx.ttft_ms is None else round(ctx.ttft_ms, 3), status=ctx.status,
            error_type=clip(ctx.error_type, MAX_NOTE_CHARS), cancelled=ctx.cancelled,
            key_id=clip(ctx.key_id, MAX_ATTRIBUTION_CHARS), project=clip(ctx.project, MAX_ATTRIBUTION_CHARS),
            source=clip(ctx.source, MAX_ATTRIBUTION_CHARS), customer=clip(ctx.customer, MAX_ATTRIBUTION_CHARS),
            team=clip(ctx.team, MAX_ATTRIBUTION_CHARS), guard_findings=ctx.guard_findings,
        )
        if ctx.cache is not None:
            rec.cache, rec.cost_saved_usd = ctx.cache.status, ctx.cache.cost_saved
        if ctx.attempt_count:
            rec.deployment = clip(dep.name if dep else None, MAX_MODEL_CHARS)
            rec.attempts = ctx.attempt_count
            rec.failure = failure_kind(ctx)
            if ctx.attempt_errors:
                rec.attempt_errors = attempt_errors_json(ctx.attempt_errors)
        return rec
