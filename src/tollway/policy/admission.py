"""From a request to what the counters must check (`build`), and from their answer to the
headers and errors a client sees (`headers`, `refusal_error`).

Which limits apply: the key's own (RPM, TPM, budgets, max concurrency), its team's, the
request's project's and customer's. Every budget that applies must allow the request.
A key's own (and team's) limits come with their `Recipe` (policy.model), made once by the
same `recipe()` that reads project and customer limits per request: the same charges and
holds in the same order either way.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tollway.counters.base import Admission, BudgetHold, RateCharge, Refusal, SlotHold
from tollway.errors import ProxyError
from tollway.policy.model import recipe
from tollway.policy.worstcase import input_tokens, input_tokens_inline, requested_output, worst_case

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tollway.pipeline.context import RequestContext
    from tollway.policy.directory import Directory
    from tollway.policy.model import Limits
    from tollway.state import AppState

_MINUTE_MS = 60_000


def _usd(nanos: int) -> str:
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    return f"{sign}{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"


def _usd_b(nanos: int) -> bytes:
    """`_usd(nanos).encode()` in one step (a header value on every answer)."""
    if nanos >= 0:
        return b"%d.%09d" % divmod(nanos, 1_000_000_000)
    return b"-%d.%09d" % divmod(-nanos, 1_000_000_000)


def _duration(ms: int) -> str:
    """OpenAI's reset format: "20ms", "1.5s", "6m0s"."""
    if ms < 1000:
        return f"{ms}ms" if ms >= 0 else "0ms"
    s = ms / 1000.0
    if s < 60:
        return f"{s:.3f}".rstrip("0").rstrip(".") + "s"
    m, rest = divmod(s, 60)
    return f"{int(m)}m" + (f"{rest:.3f}".rstrip("0").rstrip(".") or "0") + "s"


_MS: tuple[bytes, ...] = tuple(f"{ms}ms".encode() for ms in range(1000))  # _duration(ms) of the usual short resets


def applicable(d: "Directory", ctx: "RequestContext") -> "Sequence[Limits]":
    key = ctx.key
    kp = key.policy if key is not None else None
    own: tuple[Limits, ...] = kp.limits if kp is not None else ()
    project = d.projects.get(ctx.project) if d.projects and ctx.project is not None else None
    customer = d.customers.get(ctx.customer) if d.customers and ctx.customer is not None else None
    if project is None and customer is None:
        return own  # the common case: the key's (and its team's) limits, made once
    out = list(own)
    if project is not None:
        out.append(project)
    if customer is not None:
        out.append(customer)
    return out


class CountFirst(Exception):
    """The prompt must be counted off the event loop before the admission can be built."""


async def build(state: "AppState", ctx: "RequestContext", limits: "Sequence[Limits]", metered_call: bool
                ) -> Admission | None:
    """The admission for this request, or None when nothing applies. `metered_call` is false on
    pass-through routes: no estimate exists there, so budgets only need to have room left and
    the real cost is settled afterwards. (Awaits only to count a large prompt off the loop.)"""
    try:
        return build_now(state, ctx, limits, metered_call)
    except CountFirst:
        return build_now(state, ctx, limits, metered_call, await input_tokens(state, ctx))


def build_now(state: "AppState", ctx: "RequestContext", limits: "Sequence[Limits]", metered_call: bool,
              counted: int | None = None) -> Admission | None:
    """`build` without awaiting: raises CountFirst when the prompt is too large to count on the
    event loop (then `counted`, from `input_tokens`, must be given)."""
    key = ctx.key
    kp = key.policy if key is not None else None
    slot = SlotHold("c:" + key.id, kp.max_concurrency) if kp is not None and kp.max_concurrency else None  # type: ignore[union-attr]
    if not limits and slot is None:
        return None
    # a key's own (and team's) limits: their recipe was made with the policy
    rec = kp.recipe if kp is not None and limits is kp.limits else recipe(limits)
    adm = Admission(ctx.trace_id, state.lease_ms, slot=slot)
    needs_cost = rec.needs_cost
    n_input = out_req = 0
    if metered_call and (rec.needs_tokens or needs_cost):
        n = input_tokens_inline(state, ctx) if counted is None else counted
        if n is None:
            raise CountFirst
        n_input = n
        out_req = requested_output(ctx.json)
    if rec.rates:
        rates = adm.rates
        charged = n_input + (out_req or 0)
        for r in rec.rates:
            if type(r) is RateCharge:
                rates.append(r)
            else:  # a TPM limit: its charge is this request's tokens
                rates.append(RateCharge(r.tpm_name, r.tpm, _MINUTE_MS, charged, True, r.tpm_label, r.tpm_b))
    if needs_cost:
        worst = 0
        if metered_call and ctx.plan:
            worst, unpriced = worst_case(state, ctx, n_input, out_req)
            if unpriced is not None and state.settings.budgets.unpriced == "refuse":
                raise ProxyError("invalid_request", f"No price is known for model '{unpriced}', and a budget applies "
                                                    "to this request. Add a [[prices]] entry for it to tollway.toml "
                                                    "(or set [budgets] unpriced = \"allow\").", param="model",
                                 code="model_unpriced")
        holds = adm.budgets
        started = ctx.started
        for b in rec.budgets:
            win, counter = b.current(started)
            holds.append(BudgetHold(counter, b.limit, worst, win.ttl, (b, win)))
    return adm


def headers(adm: Admission, with_budget: bool = True) -> list[tuple[bytes, bytes]]:
    """x-ratelimit-* for the tightest request and token limits, x-tollway-budget-* for the
    budget with the least room (as it was before this request)."""
    out: list[tuple[bytes, bytes]] = []
    rates = adm.rates
    if rates:
        rem = adm.rate_remaining
        req = tok = -1
        for i, r in enumerate(rates):
            if r.tokens:
                if tok < 0 or rem[i] < rem[tok]:
                    tok = i
            elif req < 0 or rem[i] < rem[req]:
                req = i
        resets = adm.rate_reset_ms
        if req >= 0:
            r, ms = rates[req], resets[req]
            out += ((b"x-ratelimit-limit-requests", r.limit_b or str(r.limit).encode()),
                    (b"x-ratelimit-remaining-requests", b"%d" % rem[req]),
                    (b"x-ratelimit-reset-requests", _MS[ms] if 0 <= ms < 1000 else _duration(ms).encode()))
        if tok >= 0:
            r, ms = rates[tok], resets[tok]
            out += ((b"x-ratelimit-limit-tokens", r.limit_b or str(r.limit).encode()),
                    (b"x-ratelimit-remaining-tokens", b"%d" % rem[tok]),
                    (b"x-ratelimit-reset-tokens", _MS[ms] if 0 <= ms < 1000 else _duration(ms).encode()))
    holds = adm.budgets
    if with_budget and holds and adm.budget_spent:
        j = 0
        if len(holds) > 1:
            spent, reserved = adm.budget_spent, adm.budget_reserved
            j = min(range(len(holds)), key=lambda k: holds[k].limit - spent[k] - reserved[k])
        out += _budget_headers(adm, j)
    return out


def _budget_headers(adm: Admission, j: int) -> list[tuple[bytes, bytes]]:
    budget, win = adm.budgets[j].rule
    if budget._win is win:
        name, limit, reset = budget.headers
    else:  # a call that started in the window before the current one
        name, limit, reset = budget.name.encode(), _usd_b(budget.limit), (win.reset or "never").encode()
    return [(b"x-tollway-budget", name), (b"x-tollway-budget-limit", limit),
            (b"x-tollway-budget-spent", _usd_b(adm.budget_spent[j])), (b"x-tollway-budget-reset", reset)]


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
