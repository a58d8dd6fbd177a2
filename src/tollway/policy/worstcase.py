"""A request's worst case before it is sent: its input tokens, counted locally, and the most
output it may produce, priced with the same price data as the ledger.

Output: the request's own limit (`max_tokens`, `max_completion_tokens`, `max_output_tokens`),
else what the model can produce at most (its context window minus the input, from the price
data), else `[budgets] default_output_tokens`. Input: exact for models with a known tokenizer
(OpenAI's); for others the local count is an estimate and a 25 % margin is added. With several
deployments in the plan (fallbacks), the most expensive one is reserved. Prices are the price book's integer ceilings
(nano-USD per token, rounded up): a reservation may be a few nano-dollars high, never low.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tollway.estimate import prompt_tokens
from tollway.providers.base import Endpoint

if TYPE_CHECKING:
    from tollway.pipeline.context import RequestContext
    from tollway.state import AppState

_ESTIMATE_MARGIN = 1.25
_NO_OUTPUT = frozenset({Endpoint.EMBEDDINGS, Endpoint.COUNT_TOKENS, Endpoint.EMBED_CONTENT,
                        Endpoint.GEMINI_COUNT_TOKENS})
_FREE = frozenset({Endpoint.COUNT_TOKENS, Endpoint.GEMINI_COUNT_TOKENS})
_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def requested_output(body: dict[str, Any] | None) -> int | None:
    """The output limit the request asks for, if any: the largest, when it names several (which
    one a provider obeys is its business; the reservation and the key's cap take the worst)."""
    if not body:
        return None
    found = None
    for name in _OUTPUT_FIELDS:
        v = body.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0 and (found is None or v > found):
            found = v
    if found is None:  # Gemini: generationConfig.maxOutputTokens (google-genai may send snake_case)
        gen = body.get("generationConfig") or body.get("generation_config")
        if isinstance(gen, dict):
            v = gen.get("maxOutputTokens", gen.get("max_output_tokens"))
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                found = v
    return found


async def input_tokens(state: "AppState", ctx: "RequestContext") -> int:
    """Prompt tokens counted locally (a large prompt off the event loop), with a margin where the
    count is only an estimate."""
    n = input_tokens_inline(state, ctx)
    if n is not None:
        return n
    model = ctx.plan[0].model if ctx.plan else (ctx.model or "")
    n = await state.counting.run(len(ctx.body), prompt_tokens, state.tokens, ctx.endpoint, model, ctx.json)
    if not state.tokens.exact_for(model):
        n = math.ceil(n * _ESTIMATE_MARGIN)
    return n


def input_tokens_inline(state: "AppState", ctx: "RequestContext") -> int | None:
    """`input_tokens` of a prompt small enough to count on the event loop (no await); None
    for a larger one."""
    if len(ctx.body) >= state.counting.inline_chars:
        return None
    model = ctx.plan[0].model if ctx.plan else (ctx.model or "")
    n = prompt_tokens(state.tokens, ctx.endpoint, model, ctx.json)
    if not state.tokens.exact_for(model):
        n = math.ceil(n * _ESTIMATE_MARGIN)
    return n


def worst_case(state: "AppState", ctx: "RequestContext", n_input: int, out_requested: int | None
               ) -> tuple[int, str | None]:
    """(nano-USD, None), or (what is known, the first unpriced model) for the policy to judge."""
    endpoint = ctx.endpoint
    if endpoint in _FREE:
        return 0, None
    worst = 0
    unpriced = None
    prices = state.prices
    no_output = endpoint in _NO_OUTPUT
    for dep in ctx.plan:
        kind, model = dep.provider.kind, dep.model
        if no_output:
            out = 0
        elif out_requested is not None:
            out = out_requested
        else:
            window = prices.context_window(kind, model)
            out = max(0, window - n_input) if window else state.settings.budgets.default_output_tokens
        rates = prices.ceiling_nanos(kind, model, n_input)
        if rates is None:
            unpriced = unpriced or model
            continue
        nanos = n_input * rates[0] + out * rates[1] + rates[2]
        if nanos > worst:
            worst = nanos
    return worst, unpriced
