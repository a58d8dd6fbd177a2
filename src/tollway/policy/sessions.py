"""Limits and budgets for a session that outlives any one request (Realtime).

A Realtime session is one WebSocket but many model calls: each response is admitted on its own,
as a pass-through call is (the rates that apply are charged, the concurrency slot is held, and
every budget that applies must have room left; its worst case cannot be known before it
runs), and settled with its real cost at `response.done`. A response that is refused is
cancelled upstream and the client gets an `error` event. The session's key is looked up again
for each response, so a revoked, rotated-out or expired key stops a session it opened at its
next response.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tollway.counters.base import Admission, BudgetHold, CountersUnavailable, Settlement
from tollway.errors import ProxyError
from tollway.pipeline.auth import presented_key
from tollway.policy import admission
from tollway.storage.money import nanousd_from_decimal

if TYPE_CHECKING:
    from tollway.pipeline.context import RequestContext
    from tollway.state import AppState

log = logging.getLogger("tollway")
_NO_LIMIT = 1 << 62  # nano-USD: charging money already spent is never refused


class SessionGate:
    """Admits each response of one session (`ctx`: the session's own context)."""

    def __init__(self, state: "AppState", ctx: "RequestContext") -> None:
        self._state = state
        self._ctx = ctx

    async def admit(self, rctx: "RequestContext") -> ProxyError | None:
        """None when the response may go on (its admission, if any, is on `rctx.admission`)."""
        state, ctx = self._state, self._ctx
        if ctx.key is not None and not ctx.key.master and state.keys.lookup(presented_key(ctx)) is None:
            return ProxyError("authentication", f"Key '{ctx.key.id}' was revoked or has expired; the session ends.")
        limits = admission.applicable(state.directory, ctx)
        adm = await admission.build(state, rctx, limits, False)
        if adm is None:
            return None
        try:
            refusal = await state.counters.acquire(adm)
        except CountersUnavailable as e:
            if state.settings.redis.on_error == "fail_open":
                log.error("counters unavailable (%s): a Realtime response passes UNCOUNTED", e)
                return None
            return ProxyError("unavailable", "Limits and budgets cannot be checked right now (the shared counter "
                                             "store is unreachable), so this response is refused.",
                              code="limits_unavailable")
        if refusal is not None:
            return admission.refusal_error(adm, refusal)[0]
        rctx.admission = adm
        return None

    async def settle(self, rctx: "RequestContext") -> None:
        """After `meter(rctx)`: the response's real cost and tokens (idempotent). A response that
        was refused but still ran (the provider finished before the cancel) spent money too: its
        cost is charged to the budgets that apply, past their limits, so counters match the ledger."""
        try:
            cost = (nanousd_from_decimal(rctx.cost) or 0) if rctx.cost is not None else 0
        except ValueError:
            cost = 0
        cost = max(cost, 0)
        usage = rctx.usage
        tokens = usage.total_tokens if usage is not None and usage.known else 0
        adm: Admission | None = rctx.admission
        if adm is None or not adm.acquired:
            if not cost:
                return
            state = self._state
            holds = [BudgetHold(h.key, _NO_LIMIT, 0, h.ttl_s, h.rule)
                     for h in (await admission.build(state, rctx, admission.applicable(state.directory, self._ctx),
                                                     False) or Admission(rctx.trace_id, 0)).budgets]
            if not holds:
                return
            adm = Admission(rctx.trace_id + ":spent", state.lease_ms, budgets=holds)
            try:
                if await state.counters.acquire(adm) is not None:
                    return
            except CountersUnavailable:
                return
            rctx.admission = adm
        self._state.counters.settle(Settlement(adm, cost, tokens))
