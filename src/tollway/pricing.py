"""Prices: USD cost of one call, as an exact `Decimal`.

Where prices come from, in order:

1. **Overrides** from config: `{pattern: ModelPrice}`. A pattern is a model name or an
   `fnmatch` glob, optionally prefixed by a provider kind (`"openai:gpt-4o*"`, `"my-model"`,
   `"ollama:*"`). Matching is case-insensitive. Precedence: exact `kind:model`, exact
   `model`, then globs (those containing `:` first, e.g. provider-prefixed ones), each group
   in config order.
2. **genai-prices**, the maintained price data set. It is queried once per
   `(provider_kind, model)` through its public `calc_price()`, first with the genai provider id
   for the kind (openai, anthropic, google for gemini, azure, ...), then with a normalised
   model name (`models/x` -> `x`, `anthropic/x` -> provider `anthropic`), then without a provider.

The resolved per-million-token rates are cached on the instance (bounded), so the steady-state
`cost()` is one dict lookup and a few `Decimal` multiplications. Prices that change with the
date or the time of day (genai-prices' conditional prices) carry an expiry and are resolved
again after it. An unknown model costs `None` with a note, never zero.

Semantics of `Usage` (see usage.py): `input_tokens` is the whole prompt, `cached_tokens` and
`cache_creation_tokens` are parts of it; `reasoning_tokens` is part of `output_tokens`.
Cached reads are priced at the cached rate, cache writes at the write rate, the rest of the
prompt at the input rate. Per-request fees in the data (e.g. Perplexity) are added; prices of
units Tollway does not meter (web searches, audio seconds, ...) are not.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any

from tollway.usage import Usage

__all__ = ["ModelPrice", "PriceBook"]

log = logging.getLogger(__name__)

_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1_000)
_ZERO = Decimal(0)
_INF = float("inf")
_CACHE_MAX = 4096
_UNKNOWN = object()  # a context window not looked up yet (None: the price data has none)

# Tollway provider kind -> genai-prices provider id. A kind that is itself a genai-prices
# provider id (e.g. "novita") is used as is; others (ollama, vllm, lmstudio, llamacpp,
# openai_compatible, ...) are looked up by model name alone.
GENAI_PROVIDER_IDS: Mapping[str, str] = MappingProxyType({
    "openai": "openai",
    "azure": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "google": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "bedrock": "aws",
    "aws": "aws",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "openrouter": "openrouter",
    "together": "together",
    "fireworks": "fireworks",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "cerebras": "cerebras",
})


def _dec(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))  # 0.1 -> Decimal("0.1"), not the binary expansion
    return Decimal(value)


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens. `None` cache rates mean "same as input"."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None

    def __post_init__(self) -> None:
        # Accept ints/strings/floats from config; store Decimal only.
        for name in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Decimal):
                object.__setattr__(self, name, _dec(value))


class _Rates:
    """Rates in USD per million tokens for one price tier, cache rates already defaulted."""

    __slots__ = ("input", "output", "cache_read", "cache_write", "reasoning")

    def __init__(
        self,
        input: Decimal,
        output: Decimal,
        cache_read: Decimal | None,
        cache_write: Decimal | None,
        reasoning: Decimal | None = None,
    ) -> None:
        self.input = input
        self.output = output
        self.cache_read = input if cache_read is None else cache_read
        self.cache_write = input if cache_write is None else cache_write
        # Only kept when it differs from the output rate: the extra per reasoning token.
        self.reasoning = None if reasoning is None or reasoning == output else reasoning - output


class _Entry:
    """A cached lookup result: rates (or why there are none) and when to look again."""

    __slots__ = ("rates", "tiers", "per_request", "expires", "price", "note", "source", "ceiling")

    def __init__(
        self,
        rates: _Rates | None,
        *,
        tiers: tuple[tuple[int, _Rates], ...] = (),
        per_request: Decimal | None = None,
        expires: float = _INF,
        price: ModelPrice | None = None,
        note: str | None = None,
        source: str | None = None,
    ) -> None:
        self.rates = rates
        self.tiers = tiers  # ((start, rates), ...) highest start first; used when input > start
        self.per_request = per_request
        self.expires = expires
        self.price = price
        self.note = note
        self.source = source
        self.ceiling: Any = None  # integer rates per tier, see PriceBook.ceiling_nanos


class PriceBook:
    """Cost of calls in USD. One per process (hangs off AppState); safe to share."""

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self._exact: dict[str, ModelPrice] = {}
        globs_prefixed: list[tuple[str, ModelPrice]] = []
        globs_plain: list[tuple[str, ModelPrice]] = []
        for key, price in (overrides or {}).items():
            if not isinstance(price, ModelPrice):
                raise TypeError(f"price override {key!r} must be a ModelPrice, got {type(price).__name__}")
            pattern = key.strip().lower()
            if any(ch in pattern for ch in "*?["):
                (globs_prefixed if ":" in pattern else globs_plain).append((pattern, price))
            else:
                self._exact[pattern] = price
        self._globs = tuple(globs_prefixed + globs_plain)
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._known: dict[str, list[str]] = {}
        self._windows: dict[tuple[str, str], int | None] = {}
        self._genai_ids: frozenset[str] | None = None

    @staticmethod
    def warm() -> None:
        """Load the price data (genai-prices: a fifth of a second of imports) now, at start-up in
        a worker thread, rather than on the event loop at the first priced request."""
        import genai_prices
        from genai_prices import data_snapshot

        data_snapshot.get_snapshot()
        with contextlib.suppress(LookupError):
            genai_prices.calc_price(genai_prices.Usage(), "gpt-4o-mini", provider_id="openai")

    # ---- public API ------------------------------------------------------------------------

    def cost(self, provider_kind: str, model: str, usage: Usage) -> tuple[Decimal | None, str | None]:
        """(cost in USD, None) or (None, why not). Never raises on odd usage numbers."""
        entry = self._cache.get((provider_kind, model))
        if entry is None or (entry.expires != _INF and time.time() >= entry.expires):
            entry = self._resolve(provider_kind, model)
        rates = entry.rates
        if rates is None:
            return None, entry.note

        inp = usage.input_tokens
        out = usage.output_tokens
        if inp is None and out is None:
            return None, "no usage reported"
        inp = inp or 0
        out = out or 0
        cached = usage.cached_tokens or 0
        written = usage.cache_creation_tokens or 0
        if entry.tiers:
            for start, tier_rates in entry.tiers:
                if inp > start:
                    rates = tier_rates
                    break
        plain = inp - cached - written
        if plain < 0:  # provider reported parts larger than the whole; trust the parts
            plain = 0

        total = rates.input * plain + rates.output * out
        if cached:
            total += rates.cache_read * cached
        if written:
            total += rates.cache_write * written
        if rates.reasoning is not None and usage.reasoning_tokens:
            total += rates.reasoning * min(usage.reasoning_tokens, out)
        total /= _MILLION
        if entry.per_request is not None:
            total += entry.per_request
        return total, None

    def ceiling_nanos(self, provider_kind: str, model: str, input_tokens: int) -> tuple[int, int, int] | None:
        """(nano-USD per input token, per output token, per request) for a call with this many
        input tokens (its price tier), each rounded up: integers whose sum bounds `cost()` of
        plain input and output tokens from above, for pricing a worst case on the request path
        without Decimal arithmetic. None: unpriced."""
        entry = self._cache.get((provider_kind, model))
        if entry is None or (entry.expires != _INF and time.time() >= entry.expires):
            entry = self._resolve(provider_kind, model)
        if entry.rates is None:
            return None
        ceiling = entry.ceiling
        if ceiling is None:
            def up(usd: Decimal) -> int:
                return max(0, int(usd.scaleb(9).to_integral_value(rounding=ROUND_CEILING)))

            per_req = up(entry.per_request or Decimal(0))
            tiers = tuple((start, (up(r.input / _MILLION), up(r.output / _MILLION), per_req)) for start, r in entry.tiers)
            base = (up(entry.rates.input / _MILLION), up(entry.rates.output / _MILLION), per_req)
            ceiling = entry.ceiling = (tiers, base)
        tiers, base = ceiling
        for start, rates in tiers:
            if input_tokens > start:
                return rates
        return base

    def known_models(self, provider_kind: str) -> list[str]:
        """Current model ids the price data knows for a provider kind (for GET /v1/models,
        where a provider is configured with patterns such as `gpt-*`)."""
        cached = self._known.get(provider_kind)
        if cached is None:
            from genai_prices import data

            pid = GENAI_PROVIDER_IDS.get(provider_kind, provider_kind)
            cached = []
            for prov in data.providers:
                if prov.id == pid:
                    cached = sorted(m.id for m in prov.models
                                    if not getattr(m, "deprecated", False) and m.id[-1:] not in "-:/"
                                    and ":" not in m.id)
            self._known[provider_kind] = cached
        return cached

    def price_of(self, provider_kind: str, model: str) -> ModelPrice | None:
        """Base per-million-token prices for a model (lowest tier), or None when unknown."""
        entry = self._cache.get((provider_kind, model))
        if entry is None or (entry.expires != _INF and time.time() >= entry.expires):
            entry = self._resolve(provider_kind, model)
        return entry.price

    def context_window(self, provider_kind: str, model: str) -> int | None:
        """The model's context window from the price data (input + output tokens), or None."""
        key = (provider_kind, model)
        known = self._windows.get(key, _UNKNOWN)  # one lookup on the request path (a worst case)
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]
        window = None
        try:
            calc = _genai_lookup(self._genai_provider_id(provider_kind), model)
            window = getattr(calc.model, "context_window", None) if calc is not None else None
        except Exception:  # the price data is optional here: no window, no harm
            window = None
        if len(self._windows) >= _CACHE_MAX:
            self._windows.clear()
        found = self._windows[key] = window if isinstance(window, int) and window > 0 else None
        return found

    def source_of(self, provider_kind: str, model: str) -> str | None:
        """Where the price came from: "override:<pattern>" or "genai-prices:<provider>/<model id>"."""
        entry = self._cache.get((provider_kind, model)) or self._resolve(provider_kind, model)
        return entry.source

    def clear_cache(self) -> None:
        """Forget resolved prices (e.g. after genai-prices data was updated at run time)."""
        self._cache.clear()

    # ---- resolution (cold path) ------------------------------------------------------------

    def _resolve(self, provider_kind: str, model: str) -> _Entry:
        try:
            entry = self._override_entry(provider_kind, model) or self._genai_entry(provider_kind, model)
        except Exception as exc:  # accounting must never fail a request
            log.warning("price lookup failed for %s:%s: %r", provider_kind, model, exc)
            entry = _Entry(None, note=f"price lookup failed for model {model!r}: {exc}", expires=time.time() + 60)
        cache = self._cache
        if len(cache) >= _CACHE_MAX:
            try:
                del cache[next(iter(cache))]  # drop the oldest; dicts keep insertion order
            except (KeyError, RuntimeError, StopIteration):  # raced with another thread
                cache.clear()
        cache[(provider_kind, model)] = entry
        return entry

    def _override_entry(self, provider_kind: str, model: str) -> _Entry | None:
        if not self._exact and not self._globs:
            return None
        kind = (provider_kind or "").lower()
        name = (model or "").lower()
        qualified = f"{kind}:{name}"
        found: tuple[str, ModelPrice] | None = None
        for key in (qualified, name):
            if key in self._exact:
                found = key, self._exact[key]
                break
        else:
            for pattern, price in self._globs:
                if fnmatchcase(qualified, pattern) or fnmatchcase(name, pattern):
                    found = pattern, price
                    break
        if found is None:
            return None
        pattern, price = found
        rates = _Rates(price.input_per_mtok, price.output_per_mtok, price.cached_input_per_mtok, price.cache_write_per_mtok)
        return _Entry(rates, price=price, source=f"override:{pattern}")

    def _genai_provider_id(self, provider_kind: str) -> str | None:
        kind = (provider_kind or "").lower()
        if kind in GENAI_PROVIDER_IDS:
            return GENAI_PROVIDER_IDS[kind]
        if self._genai_ids is None:
            from genai_prices import data_snapshot

            self._genai_ids = frozenset(p.id for p in data_snapshot.get_snapshot().providers)
        return kind if kind in self._genai_ids else None

    def _genai_entry(self, provider_kind: str, model: str) -> _Entry:
        calc = _genai_lookup(self._genai_provider_id(provider_kind), model)
        if calc is None:
            return _Entry(None, note=f"no price known for model {model!r}")
        info, provider, model_price = calc.model, calc.provider, calc.model_price
        source = f"genai-prices:{provider.id}/{info.id}"
        base = _rates_from_genai(model_price, None)
        if base is None:
            if any(value is not None for value in model_price.__dict__.values()):
                # Priced only in units Tollway does not meter (characters, audio seconds, ...).
                return _Entry(None, note=f"no token price known for model {model!r} ({source})", source=source)
            base = _Rates(_ZERO, _ZERO, None, None)  # listed with no prices at all: free (":free", gemma, moderation)
        starts = sorted(
            {tier.start for value in model_price.__dict__.values() if _is_tiered(value) for tier in value.tiers},
            reverse=True,
        )
        tiers = tuple((start, _rates_from_genai(model_price, start)) for start in starts)
        per_request = model_price.__dict__.get("requests_kcount")
        if per_request is not None and not _is_tiered(per_request) and per_request:
            per_request = per_request / _THOUSAND
        else:
            per_request = None
        price = ModelPrice(
            base.input,
            base.output,
            _plain(model_price.__dict__.get("cache_read_mtok")),
            _plain(model_price.__dict__.get("cache_write_mtok")),
        )
        return _Entry(
            base,
            tiers=tiers,  # type: ignore[arg-type]  # never None: base exists so every tier does
            per_request=per_request,
            expires=_next_price_change(info.prices),
            price=price,
            source=source,
        )


# ---- genai-prices helpers ----------------------------------------------------------------------


def _genai_lookup(provider_id: str | None, model: str) -> Any | None:
    """PriceCalculation for a zero usage (carries model, provider, current prices) or None."""
    import genai_prices

    zero = genai_prices.Usage()
    refs: list[tuple[str, str | None]] = []
    name = (model or "").strip()
    if not name:
        return None
    if provider_id:
        refs.append((name, provider_id))
    bare = name[len("models/") :] if name.lower().startswith("models/") else name  # Gemini style
    if bare != name and provider_id:
        refs.append((bare, provider_id))
    if "/" in bare:  # "anthropic/claude-..." (OpenRouter/LiteLLM style names)
        prefix, _, rest = bare.partition("/")
        prefix_id = GENAI_PROVIDER_IDS.get(prefix.lower(), prefix.lower())
        refs.append((rest, prefix_id))
    refs.append((bare, None))
    seen: set[tuple[str, str | None]] = set()
    for ref, pid in refs:
        if (ref, pid) in seen:
            continue
        seen.add((ref, pid))
        try:
            return genai_prices.calc_price(zero, ref, provider_id=pid)
        except LookupError:
            continue
    return None


def _is_tiered(value: Any) -> bool:
    return value is not None and hasattr(value, "tiers") and hasattr(value, "base")


def _plain(value: Any) -> Decimal | None:
    """Base price of a possibly tiered genai price."""
    if value is None:
        return None
    return value.base if _is_tiered(value) else value


def _at(value: Any, input_tokens: int | None) -> Decimal | None:
    """genai-prices tier rule: the highest tier whose start is below the total input applies."""
    if value is None or not _is_tiered(value):
        return value
    if input_tokens is not None:
        for tier in sorted(value.tiers, key=lambda t: t.start, reverse=True):
            if input_tokens > tier.start:
                return tier.price
    return value.base


def _rates_from_genai(model_price: Any, tier_start: int | None) -> _Rates | None:
    # `tier_start + 1` is the smallest input that lands in that tier.
    at = None if tier_start is None else tier_start + 1
    fields = model_price.__dict__
    inp = _at(fields.get("input_mtok"), at)
    if inp is None:
        inp = _at(fields.get("input_text_mtok"), at)
    out = _at(fields.get("output_mtok"), at)
    if out is None:
        out = _at(fields.get("output_text_mtok"), at)
    if inp is None and out is None:
        return None
    return _Rates(
        inp if inp is not None else _ZERO,
        out if out is not None else _ZERO,
        _at(fields.get("cache_read_mtok"), at),
        _at(fields.get("cache_write_mtok"), at),
        _at(fields.get("output_reasoning_mtok"), at),
    )


def _next_price_change(prices: Any) -> float:
    """Unix time of the next date/time-of-day boundary in conditional prices, else infinity."""
    if not isinstance(prices, list):
        return _INF
    now = datetime.now(tz=UTC)
    candidates: list[datetime] = []
    for conditional in prices:
        constraint = getattr(conditional, "constraint", None)
        if constraint is None:
            continue
        start_date = getattr(constraint, "start_date", None)
        if start_date is not None:
            boundary = datetime(start_date.year, start_date.month, start_date.day, tzinfo=UTC)
            if boundary > now:
                candidates.append(boundary)
            continue
        for moment in (getattr(constraint, "start_time", None), getattr(constraint, "end_time", None)):
            if moment is None:
                continue
            tz = moment.tzinfo or UTC
            local_now = now.astimezone(tz)
            boundary = datetime.combine(local_now.date(), moment.replace(tzinfo=None), tzinfo=tz)
            if boundary <= local_now:
                boundary += timedelta(days=1)
            candidates.append(boundary)
    return min(candidates).timestamp() if candidates else _INF
