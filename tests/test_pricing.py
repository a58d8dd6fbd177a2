"""PriceBook against the real genai-prices data (no mocks)."""

from __future__ import annotations

import random
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import data_snapshot

from tollway.pricing import ModelPrice, PriceBook
from tollway.usage import Usage

M = Decimal(1_000_000)


def genai_total(model: str, provider_id: str | None, usage: Usage) -> Decimal:
    """genai-prices' own calculation for the same usage (its input_tokens also includes cache parts)."""
    return genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cache_read_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_creation_tokens,
            output_reasoning_tokens=usage.reasoning_tokens,
        ),
        model,
        provider_id=provider_id,
    ).total_price


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def test_gpt_4o_mini_matches_published_prices(book: PriceBook) -> None:
    published = genai_prices.calc_price(genai_prices.Usage(), "gpt-4o-mini", provider_id="openai").model_price
    # OpenAI's list price for gpt-4o-mini, as carried by genai-prices.
    assert (published.input_mtok, published.output_mtok, published.cache_read_mtok) == (
        Decimal("0.15"),
        Decimal("0.6"),
        Decimal("0.075"),
    )
    usage = Usage(input_tokens=1234, output_tokens=567, cached_tokens=200)
    expected = (
        (1234 - 200) * published.input_mtok + 200 * published.cache_read_mtok + 567 * published.output_mtok
    ) / M
    cost, note = book.cost("openai", "gpt-4o-mini", usage)
    assert note is None
    assert isinstance(cost, Decimal)
    assert cost == expected == Decimal("0.0005103")
    assert cost == genai_total("gpt-4o-mini", "openai", usage)


def test_anthropic_cache_read_and_write(book: PriceBook) -> None:
    # claude-3-5-haiku: $0.80 in, $4 out, $0.08 cache read, $1 cache write (5m) per MTok.
    usage = Usage(input_tokens=10_000, output_tokens=1_000, cached_tokens=6_000, cache_creation_tokens=2_000)
    expected = (2_000 * Decimal("0.8") + 6_000 * Decimal("0.08") + 2_000 * Decimal("1") + 1_000 * Decimal("4")) / M
    cost, note = book.cost("anthropic", "claude-3-5-haiku-20241022", usage)
    assert (cost, note) == (expected, None)
    assert cost == Decimal("0.00808")
    assert cost == genai_total("claude-3-5-haiku-20241022", "anthropic", usage)
    price = book.price_of("anthropic", "claude-3-5-haiku-20241022")
    assert price == ModelPrice(Decimal("0.8"), Decimal("4"), Decimal("0.08"), Decimal("1"))


@pytest.mark.parametrize(
    ("kind", "dated", "alias"),
    [
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"),
        ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4-0"),
        ("azure", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ],
)
def test_dated_model_names(book: PriceBook, kind: str, dated: str, alias: str) -> None:
    usage = Usage(input_tokens=1000, output_tokens=100)
    cost, note = book.cost(kind, dated, usage)
    assert note is None and cost is not None and cost > 0
    assert cost == book.cost(kind, alias, usage)[0]


def test_dated_snapshot_with_its_own_price(book: PriceBook) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=0)
    assert book.cost("openai", "gpt-4o-2024-05-13", usage)[0] == Decimal("5")  # the launch price
    assert book.cost("openai", "gpt-4o-2024-08-06", usage)[0] == Decimal("2.5")


def test_sonnet_4_cache_and_price_of(book: PriceBook) -> None:
    usage = Usage(input_tokens=5000, output_tokens=800, cached_tokens=3000, cache_creation_tokens=1000)
    cost, _ = book.cost("anthropic", "claude-sonnet-4-20250514", usage)
    assert cost == (1000 * 3 + 3000 * Decimal("0.3") + 1000 * Decimal("3.75") + 800 * 15) / M


def test_unknown_model_is_none_with_note(book: PriceBook) -> None:
    usage = Usage(input_tokens=10, output_tokens=10)
    assert book.cost("ollama", "llama3.1:8b", usage) == (None, "no price known for model 'llama3.1:8b'")
    assert book.cost("openai", "gpt-nonexistent-9", usage)[0] is None
    assert book.price_of("ollama", "llama3.1:8b") is None


def test_no_usage(book: PriceBook) -> None:
    assert book.cost("openai", "gpt-4o-mini", Usage()) == (None, "no usage reported")


def test_partial_usage_prices_the_known_part(book: PriceBook) -> None:
    cost, note = book.cost("openai", "gpt-4o-mini", Usage(input_tokens=1_000_000))
    assert (cost, note) == (Decimal("0.15"), None)


def test_overrides_exact_glob_and_provider_prefixed() -> None:
    book = PriceBook(
        {
            "my-local-model": ModelPrice(Decimal("1"), Decimal("2")),
            "gpt-4o*": ModelPrice(Decimal("10"), Decimal("20")),
            "openai:gpt-4o*": ModelPrice(Decimal("3"), Decimal("4"), cached_input_per_mtok=Decimal("0.5")),
            "openai:gpt-4o-mini": ModelPrice("0.1", "0.2"),  # strings from config become Decimal
            "ollama:*": ModelPrice(0, 0),
            "llama3.1:8b": ModelPrice("0.01", "0.02"),  # a model name that itself contains ':'
        }
    )
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=500_000)
    # exact, no prefix, any provider kind
    assert book.cost("vllm", "my-local-model", usage) == (Decimal("3"), None)
    # provider-prefixed exact beats provider-prefixed glob
    assert book.cost("openai", "gpt-4o-mini", usage) == (Decimal("0.3"), None)
    # provider-prefixed glob beats the plain glob; cached rate applies to cached tokens
    assert book.cost("openai", "gpt-4o-2024-08-06", usage) == (Decimal("1.5") + Decimal("0.25") + 4, None)
    # same model on another provider kind: the plain glob
    assert book.cost("azure", "gpt-4o", usage) == (Decimal("30"), None)
    # exact model name with a colon beats the kind glob; other ollama models are free
    assert book.cost("ollama", "llama3.1:8b", usage) == (Decimal("0.03"), None)
    assert book.cost("ollama", "qwen2.5:7b", usage) == (Decimal("0"), None)
    # case-insensitive
    assert book.cost("OpenAI", "GPT-4o-Mini", usage) == (Decimal("0.3"), None)
    # non-overridden models still come from genai-prices
    assert book.cost("anthropic", "claude-3-5-haiku-20241022", Usage(input_tokens=1_000_000))[0] == Decimal("0.8")
    assert book.price_of("openai", "gpt-4o-mini") == ModelPrice(Decimal("0.1"), Decimal("0.2"))


def test_override_values_are_decimal() -> None:
    price = ModelPrice(0.1, 3, "0.05")  # type: ignore[arg-type]
    assert price.input_per_mtok == Decimal("0.1")  # not the binary expansion of 0.1
    assert all(isinstance(v, Decimal) for v in (price.input_per_mtok, price.output_per_mtok, price.cached_input_per_mtok))
    with pytest.raises(TypeError):
        PriceBook({"x": {"input_per_mtok": 1}})  # type: ignore[dict-item]


def test_decimal_everywhere(book: PriceBook) -> None:
    for kind, model in [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-20250514"), ("gemini", "gemini-2.5-pro")]:
        cost, _ = book.cost(kind, model, Usage(input_tokens=7, output_tokens=3, cached_tokens=1))
        assert type(cost) is Decimal
        price = book.price_of(kind, model)
        assert price is not None
        for value in (price.input_per_mtok, price.output_per_mtok, price.cached_input_per_mtok):
            assert value is None or type(value) is Decimal


def test_gemini_tiers_and_names(book: PriceBook) -> None:
    small = Usage(input_tokens=100_000, output_tokens=1_000)
    large = Usage(input_tokens=300_000, output_tokens=1_000)
    small_cost, _ = book.cost("gemini", "gemini-2.5-pro", small)
    large_cost, _ = book.cost("gemini", "gemini-2.5-pro", large)
    assert small_cost == genai_total("gemini-2.5-pro", "google", small)
    assert large_cost == genai_total("gemini-2.5-pro", "google", large)
    assert large_cost / 3 > small_cost  # prompts over 200k are billed at the higher tier
    assert book.cost("gemini", "models/gemini-2.5-pro", small)[0] == small_cost


def test_provider_prefixed_model_names(book: PriceBook) -> None:
    usage = Usage(input_tokens=1000, output_tokens=100)
    assert book.cost("openai_compatible", "anthropic/claude-3-5-haiku-20241022", usage)[0] == book.cost(
        "anthropic", "claude-3-5-haiku-20241022", usage
    )[0]


def test_free_models_cost_zero(book: PriceBook) -> None:
    assert book.cost("gemini", "gemma-3", Usage(input_tokens=100, output_tokens=100)) == (Decimal(0), None)


def test_non_token_priced_model_has_a_note(book: PriceBook) -> None:
    cost, note = book.cost("openai", "tts-1", Usage(input_tokens=100, output_tokens=0))
    assert cost is None and note and "tts-1" in note


def test_parts_larger_than_whole_do_not_go_negative(book: PriceBook) -> None:
    cost, _ = book.cost("openai", "gpt-4o-mini", Usage(input_tokens=10, output_tokens=0, cached_tokens=50))
    assert cost == 50 * Decimal("0.075") / M


def test_per_request_fee_and_reasoning_rate(book: PriceBook) -> None:
    usage = Usage(input_tokens=1000, output_tokens=2000, reasoning_tokens=1500)
    assert book.cost("perplexity", "sonar", usage)[0] == genai_total("sonar", "perplexity", usage)
    assert book.cost("perplexity", "sonar-deep-research", usage)[0] == genai_total("sonar-deep-research", "perplexity", usage)


def test_time_of_day_prices_expire(book: PriceBook) -> None:
    import time

    usage = Usage(input_tokens=10_000, output_tokens=1_000, cached_tokens=4_000)
    cost, _ = book.cost("deepseek", "deepseek-chat", usage)
    assert cost == genai_total("deepseek-chat", "deepseek", usage)  # peak or off-peak, whichever is now
    expires = book._cache[("deepseek", "deepseek-chat")].expires
    assert time.time() < expires <= time.time() + 24 * 3600  # re-resolved at the next peak/off-peak switch
    book.cost("openai", "gpt-4o-mini", usage)
    assert book._cache[("openai", "gpt-4o-mini")].expires == float("inf")


def test_cache_is_bounded() -> None:
    book = PriceBook({"*": ModelPrice(1, 1)})
    for i in range(5000):
        book.cost("openai", f"model-{i}", Usage(input_tokens=1))
    assert len(book._cache) <= 4096


@pytest.mark.parametrize("provider_id", ["openai", "anthropic", "google", "azure", "deepseek", "mistral"])
def test_agrees_with_genai_prices_for_every_model(provider_id: str) -> None:
    """Our cached fast path must equal genai-prices' own calc_price, tiers and all."""
    book = PriceBook()
    kind = {"google": "gemini"}.get(provider_id, provider_id)
    provider = next(p for p in data_snapshot.get_snapshot().providers if p.id == provider_id)
    rng = random.Random(provider_id)
    checked = 0
    for model in provider.models:
        for input_tokens in (0, 1_234, 150_000, 250_000):
            cached = rng.randint(0, input_tokens // 2)
            written = rng.randint(0, (input_tokens - cached) // 2)
            output = rng.randint(0, 5_000)
            usage = Usage(input_tokens, output, cached, written, rng.randint(0, output))
            try:
                expected = genai_total(model.id, provider_id, usage)
            except LookupError:
                continue
            cost, note = book.cost(kind, model.id, usage)
            if cost is None:  # only models priced in units we do not meter (audio seconds, characters)
                assert note and "no token price" in note
                continue
            assert cost == expected, (model.id, usage)
            checked += 1
    assert checked > 20

