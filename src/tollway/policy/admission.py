"""From a request to what the counters must check (`build`), and from their answer to the
headers and errors a client sees (`headers`, `refusal_error`).

Which limits apply: the key's own (RPM, TPM, budgets, max concurrency), its team's, the
request's project's and customer's. Every budget that applies must allow the request.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tollway.counters.base import Admission, BudgetHold, RateCharge, Refusal, SlotHold
from tollway.errors import ProxyError
from tollway.policy.worstcase import input_tokens, requested_output, worst_case

if TYPE_CHECKING:
    from tollway.pipeline.context import RequestContext
    from tollway.policy.directory import Directory
    from tollway.policy.model import Limits
    from tollway.state import AppState

_MINUTE_MS = 60_000


def _usd(nanos: int) -> str:
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    return f"{sign}{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"


def _duration(ms: int) -> str:
    """OpenAI's reset format: "20ms", "1.5s", "6m0s"."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    s = ms / 1000.0
    if s < 60:
        return f"{s:.3f}".rstrip("0").rstrip(".") + "s"
    m, rest = divmod(s, 60)
    return f"{int(m)}m" + (f"{rest:.3f}".rstrip("0").rstrip(".") or "0") + "s"


def applicable(d: "Directory", ctx: "RequestContext") -> list["Limits"]:
    out: list[Limits] = []
    key = ctx.key
    kp = key.policy if key is not None else None
    if kp is not None:
        if kp.own is not None:
            out.append(kp.own)
        if kp.team is not None:
            out.append(kp.team)
    if d.projects and ctx.project is not None:
        lim = d.projects.get(ctx.project)
        if lim is not None:
            out.append(lim)
    if d.customers and ctx.customer is not None:
        lim = d.customers.get(ctx.customer)
        if lim is not None:
            out.append(lim)
    return out


def build(state: "AppState", ctx: "RequestContext", limits: list["Limits"], metered_call: bool) -> Admission | None:
    """The admission for this request, or None when nothing applies. `metered_call` is false on
    pass-through routes: no estimate exists there, so budgets only need to have room left and
    the real cost is settled afterwards."""
    key = ctx.key
    kp = key.policy if key is not None else None
    slot = SlotHold("c:" + key.id, kp.max_concurrency) if kp is not None and kp.max_concurrency else None  # type: ignore[union-attr]
    if not limits and slot is None:
        return None
    adm = Admission(ctx.trace_id, state.lease_ms, slot=slot)
    needs_tokens = any(lim.tpm is not None for lim in limits)
    needs_cost = any(lim.budgets for lim in limits)
    n_input = out_req = 0
    if metered_call and (needs_tokens or needs_cost):
        n_input = input_tokens(state, ctx)
        out_req = requested_output(ctx.json)
    for lim in limits:
        if lim.rpm is not None:
            adm.rates.append(RateCharge(lim.rpm_key, lim.rpm, _MINUTE_MS, 1, False,
                                        f"{lim.scope} '{lim.id}' requests per minute"))
        if lim.tpm is not None:
            adm.rates.append(RateCharge(lim.tpm_key, lim.tpm, _MINUTE_MS, n_input + (out_req or 0), True,
                                        f"{lim.scope} '{lim.id}' tokens per minute"))
    if needs_cost:
        worst = 0
        if metered_call and ctx.plan:
            worst, unpriced = worst_case(state, ctx, n_input, out_req)
            if unpriced is not None and state.settings.budgets.unpriced == "refuse":
                raise ProxyError("invalid_request", f"No price is known for model '{unpriced}', and a budget applies "
                                                    "to this request. Add a [[prices]] entry for it to tollway.toml "
                                                    "(or set [budgets] unpriced = \"allow\").", param="model",
                                 code="model_unpriced")
        for lim in limits:
            for b in lim.budgets:
                win, counter = b.current(ctx.started)
                adm.budgets.append(BudgetHold(counter, b.limit, worst, win.ttl_s(ctx.started), (b, win)))
    return adm


def headers(adm: Admission, with_budget: bool = True) -> list[tuple[bytes, bytes]]:
    """x-ratelimit-* for the tightest request and token limits, x-tollway-budget-* for the
    budget with the least room (as it was before this request)."""
    out: list[tuple[bytes, bytes]] = []
    best: dict[bool, int] = {}
    for i, r in enumerate(adm.rates):
        j = best.get(r.tokens)
        if j is None or adm.rate_remaining[i] < adm.rate_remaining[j]:
            best[r.tokens] = i
    for tokens, i in best.items():
        r = adm.rates[i]
        kind = b"tokens" if tokens else b"requests"
        out += ((b"x-ratelimit-limit-" + kind, str(r.limit).encode()),
                (b"x-ratelimit-remaining-" + kind, str(adm.rate_remaining[i]).encode()),
                (b"x-ratelimit-reset-" + kind, _duration(adm.rate_reset_ms[i]).encode()))
    if with_budget and adm.budgets and adm.budget_spent:
        j = min(range(len(adm.budgets)), key=lambda k: adm.budgets[k].limit - adm.budget_spent[k]
                - adm.budget_reserved[k])
        out += _budget_headers(adm, j)
    return out


def _budget_headers(adm: Admission, j: int) -> list[tuple[bytes, bytes]]:
    h = adm.budgets[j]
    budget, win = h.rule
    return [(b"x-tollway-budget", budget.name.encode()),
            (b"x-tollway-budget-limit", _usd(h.limit).encode()),
            (b"x-tollway-budget-spent", _usd(adm.budget_spent[j]).encode()),
            (b"x-tollway-budget-reset", (win.resets_at() or "never").encode())]


def refusal_error(adm: Admission, refusal: Refusal) -> tuple[ProxyError, list[tuple[bytes, bytes]]]:
    """The 429 and its extra headers (retry-after, the budget's headers)."""
    if refusal.kind == "budget":
        h = adm.budgets[refusal.index]
        budget, win = h.rule
        spent, reserved = adm.budget_spent[refusal.index], adm.budget_reserved[refusal.index]
        resets = win.resets_at()
        msg = (f"Budget exhausted: {budget.scope} '{budget.target}' may spend {_usd(h.limit)} USD "
               f"{'in total' if budget.window == 'total' else 'per ' + budget.window}; {_usd(spent)} spent and "
               f"{_usd(reserved)} reserved by calls in flight, and this call may cost up to {_usd(h.amount)} "
               f"(a lower max_tokens reserves less). "
               + (f"The budget resets at {resets}." if resets else "It does not reset."))
        extra = _budget_headers(adm, refusal.index)
        if resets:
            secs = max(1, math.ceil(win.end - datetime.now(UTC).timestamp()))
            extra.append((b"retry-after", str(secs).encode()))
        return (ProxyError("rate_limit", msg, type_="budget_exceeded", code=f"{budget.scope}_budget_exceeded"),
                extra)
    if refusal.kind == "slot":
        assert adm.slot is not None
        return (ProxyError("rate_limit", f"Too many requests in flight for key '{adm.slot.key[2:]}' (at most "
                                         f"{adm.slot.limit} at once).", code="concurrency_limit_exceeded"),
                [(b"retry-after", b"1")])
    r = adm.rates[refusal.index]
    if refusal.kind == "too_large":
        return (ProxyError("rate_limit", f"This request needs {r.cost} tokens, more than the {r.label} limit "
                                         f"({r.limit}) allows at all; send less or ask for fewer output tokens.",
                           code="tokens_over_limit"), [])
    retry_ms = max(refusal.retry_after_ms, 1)
    return (ProxyError("rate_limit", f"Rate limit reached: {r.label} is {r.limit}. Try again in "
                                     f"{_duration(retry_ms)}.", code="rate_limit_exceeded"),
            [(b"retry-after", str(max(1, math.ceil(retry_ms / 1000))).encode()),
             (b"retry-after-ms", str(retry_ms).encode())])
