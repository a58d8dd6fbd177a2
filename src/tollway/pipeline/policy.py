"""The policy stage: a key's static limits, then one counter call for every rate limit,
budget reservation and concurrency slot that applies (policy/, counters/); after the call,
settlement of the real cost and tokens.

It is in `AppState.call_stages` (after route: the plan is known, so the worst case can be
priced) and in `AppState.stages` for pass-through routes (rates, slots, and budgets that must
have room left; the real cost is settled after), only while some key, team, project or
customer has a limit: otherwise it costs nothing at all. Every answer carries the rate-limit
and budget headers, errors included; a refusal never reaches a provider.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from tollway.counters.base import Admission, CountersUnavailable, Refusal, Settlement
from tollway.counters.memory import MemoryCounters
from tollway.errors import ProxyError
from tollway.pipeline.accounting import meter
from tollway.pipeline.context import RequestContext
from tollway.policy import admission
from tollway.policy.checks import check_request
from tollway.storage.money import nanousd_from_decimal

if TYPE_CHECKING:
    from tollway.policy.model import KeyPolicy
    from tollway.state import AppState

log = logging.getLogger("tollway")


class PolicyStage:
    def __init__(self, state: "AppState", metered: bool = True) -> None:
        self._state = state
        self._metered = metered  # false on pass-through routes
        self._open_logged = 0.0

    async def before(self, ctx: RequestContext) -> None:
        state = self._state
        key = ctx.key
        kp = key.policy if key is not None else None
        if kp is not None and kp.static_checks and self._metered:
            check_request(ctx, key, kp)  # type: ignore[arg-type]
        limits = admission.applicable(state.directory, ctx)
        try:
            adm = admission.build_now(state, ctx, limits, self._metered)
        except admission.CountFirst:  # a large prompt: counted off the event loop
            adm = await admission.build(state, ctx, limits, self._metered)
        if adm is None:
            return
        ctx.admission = adm  # settled in after() once acquired, even if this request is cancelled
        counters = state.counters
        try:
            if adm.slot is not None and kp is not None and kp.queue_timeout_ms:
                refusal = await self._queued(adm, kp)
            elif type(counters) is MemoryCounters:  # checks and charges at once, nothing to wait for
                refusal = counters.acquire_now(adm)
            else:
                refusal = await counters.acquire(adm)
        except CountersUnavailable as e:
            if state.settings.redis.on_error == "fail_open":
                now = time.monotonic()
                if now - self._open_logged > 10:
                    self._open_logged = now
                    log.error("counters unavailable (%s): calls pass UNCOUNTED ([redis] on_error = fail_open)", e)
                return
            raise ProxyError("unavailable", "Limits and budgets cannot be checked right now (the shared counter "
                                            "store is unreachable), so this call is refused; try again shortly.",
                             code="limits_unavailable") from None
        if refusal is not None:
            if state.metrics is not None:
                _count_refusal(state, adm, refusal)
            err, extra = admission.refusal_error(adm, refusal)
            ctx.response_headers.extend(admission.headers(adm, with_budget=refusal.kind != "budget"))
            ctx.response_headers.extend(extra)
            raise err
        ctx.response_headers.extend(admission.headers(adm))

    async def _queued(self, adm: Admission, kp: "KeyPolicy") -> Refusal | None:
        """Acquire for a key whose requests wait for a concurrency slot (`queue_timeout_ms`)."""
        counters = self._state.counters
        slot = adm.slot
        assert slot is not None
        queues = self._state.slot_queues
        if not queues.busy(slot.key):
            refusal = await counters.acquire(adm)
            if refusal is None or refusal.kind != "slot":
                return refusal
        return await queues.wait_turn(slot.key, kp.queue_timeout_ms / 1000.0, lambda: counters.acquire(adm),
                                      lambda r: r is not None and r.kind == "slot")

    async def after(self, ctx: RequestContext) -> None:
        adm = ctx.admission
        if adm is None or not adm.acquired:
            return
        state = self._state
        if not ctx.metered:
            await meter(state, ctx)  # idempotent: accounting records the very same cost
        cost = 0
        if ctx.cost is not None:
            try:
                cost = nanousd_from_decimal(ctx.cost) or 0
            except ValueError:
                cost = 0
        usage = ctx.usage
        tokens: int | None
        if usage is not None and usage.known:
            tokens = usage.total_tokens
        else:
            tokens = 0 if ctx.status >= 400 or ctx.status == 0 else None
        state.counters.settle(Settlement(adm, cost if cost > 0 else 0, tokens))


def _count_refusal(state: "AppState", adm: Admission, refusal: Refusal) -> None:
    metrics = state.metrics
    assert metrics is not None
    if refusal.kind == "budget":
        metrics.budget_exceeded(adm.budgets[refusal.index].rule[0].scope)
    elif refusal.kind == "slot":
        metrics.rate_limited("key")
    else:
        metrics.rate_limited(adm.rates[refusal.index].key.split(":", 2)[1])
