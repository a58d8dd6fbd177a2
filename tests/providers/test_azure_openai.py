"""Azure OpenAI through the official SDKs: deployment URLs, api-version, api-key, metered streams,
the Responses API, translation from Anthropic clients, and local token counting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import Tollway, anthropic_client, openai_client
from tests.providers.support import base_config, cost, nonce, only_upstream
from tollway.tokens import TokenCounter

DEPLOYMENT = "prod-gpt41-mini"
EMBED_DEPLOYMENT = "embed-small"
API_VERSION = "2025-01-01-preview"
PRICE = ("0.40", "1.60")  # gpt-4.1-mini per million tokens (an override, so the numbers are fixed)


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = base_config([{
        "id": "azure", "kind": "azure_openai", "base_url": fake.url, "api_key": "azure-key-123",
        "api_version": API_VERSION,
        "deployments": {"gpt-4.1-mini": DEPLOYMENT, "text-embedding-3-small": EMBED_DEPLOYMENT},
        "models": ["gpt-4.1-mini", "text-embedding-3-small", "gpt-4o"],
    }], prices=[{"model": "gpt-4.1-mini*", "input_per_mtok": PRICE[0], "output_per_mtok": PRICE[1]}])
    t = Tollway(tmp_path_factory.mktemp("azure"), cfg)
    yield t
    t.stop()


@pytest.fixture
def oai(tw: Tollway) -> openai.OpenAI:
    return openai_client(tw)


def test_chat_goes_to_the_deployment_with_api_version_and_api_key(oai: openai.OpenAI, tw: Tollway,
                                                                   fake: FakeProvider) -> None:
    n = nonce()
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4.1-mini",
                                                        messages=[{"role": "user", "content": f"Hi {n}"}])
    c = raw.parse()
    assert c.choices[0].message.content == "Hello from the fake provider!"
    up = only_upstream(fake, n)
    assert up.provider == "azure"
    assert up.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert up.query == {"api-version": API_VERSION}
    assert up.headers["api-key"] == "azure-key-123" and "authorization" not in up.headers
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["provider"] == "azure" and rec["model_requested"] == "gpt-4.1-mini"
    assert rec["model_served"] == "gpt-4.1-mini"  # a model, not the deployment name
    assert (rec["input_tokens"], rec["output_tokens"], rec["tokens_estimated"]) == (11, 7, False)
    assert Decimal(rec["cost_usd"]) == cost(11, 7, PRICE) == Decimal(raw.headers["x-tollway-cost-usd"])


def test_a_model_without_a_deployment_entry_uses_its_own_name(oai: openai.OpenAI, fake: FakeProvider) -> None:
    n = nonce()
    oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"Hi {n}"}])
    assert only_upstream(fake, n).path == "/openai/deployments/gpt-4o/chat/completions"


def test_stream_is_metered_past_azures_prompt_filter_chunk(oai: openai.OpenAI, tw: Tollway,
                                                           fake: FakeProvider) -> None:
    n = nonce()
    with oai.chat.completions.with_streaming_response.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": f"Hi {n}"}], stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        chunks = list(raw.parse())
    up = only_upstream(fake, n)
    assert up.json["stream_options"] == {"include_usage": True}  # asked for by Tollway...
    assert all(c.usage is None for c in chunks)  # ...and invisible to a client that did not
    assert chunks[0].choices == [] and chunks[0].model == ""  # Azure's annotation chunk is relayed as is
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake provider!"
    rec = tw.record(trace)
    assert rec["stream"] is True and (rec["input_tokens"], rec["output_tokens"]) == (11, 7)
    assert rec["tokens_estimated"] is False and rec["model_served"] == "gpt-4.1-mini"
    assert rec["ttft_ms"] is not None and Decimal(rec["cost_usd"]) == cost(11, 7, PRICE)


def test_stream_with_include_usage_keeps_the_usage_chunk(oai: openai.OpenAI, tw: Tollway) -> None:
    with oai.chat.completions.with_streaming_response.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "Hi"}], stream=True,
            stream_options={"include_usage": True}) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        chunks = list(raw.parse())
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    assert tw.record(trace)["output_tokens"] == 7


def test_embeddings_go_to_the_embedding_deployment(oai: openai.OpenAI, tw: Tollway, fake: FakeProvider) -> None:
    n = nonce()
    raw = oai.embeddings.with_raw_response.create(model="text-embedding-3-small", input=[f"a {n}", "b"])
    e = raw.parse()
    assert len(e.data) == 2 and len(e.data[0].embedding) == 16
    up = only_upstream(fake, n)
    assert up.path == f"/openai/deployments/{EMBED_DEPLOYMENT}/embeddings" and up.query["api-version"] == API_VERSION
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "openai.embeddings" and rec["input_tokens"] == e.usage.prompt_tokens


def test_responses_use_the_v1_api_with_the_deployment_as_model(oai: openai.OpenAI, tw: Tollway,
                                                               fake: FakeProvider) -> None:
    n = nonce()
    raw = oai.responses.with_raw_response.create(model="gpt-4.1-mini", input=f"Hello {n}")
    r = raw.parse()
    assert r.output_text == "Hello from the fake provider!"
    up = only_upstream(fake, n)
    assert up.path == "/openai/v1/responses" and up.json["model"] == DEPLOYMENT
    assert up.headers["api-key"] == "azure-key-123"
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "openai.responses" and rec["model_served"] == "gpt-4.1-mini"
    assert Decimal(rec["cost_usd"]) == cost(rec["input_tokens"], rec["output_tokens"], PRICE)

    n = nonce()
    with oai.responses.with_streaming_response.create(model="gpt-4.1-mini", input=f"Hello {n}", stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        events = list(raw.parse())
    final = events[-1].response
    assert events[-1].type == "response.completed" and final.output_text == "Hello from the fake provider!"
    assert only_upstream(fake, n).path == "/openai/v1/responses"
    rec = tw.record(trace)
    assert rec["stream"] is True and rec["output_tokens"] == final.usage.output_tokens
    assert rec["model_served"] == "gpt-4.1-mini" and rec["cost_usd"] is not None


def test_anthropic_client_is_translated_to_the_chat_deployment(tw: Tollway, fake: FakeProvider) -> None:
    claude = anthropic_client(tw)
    n = nonce()
    m = claude.messages.create(model="gpt-4.1-mini", max_tokens=100, system="Be brief.",
                               messages=[{"role": "user", "content": f"Hi {n}"}])
    assert m.content[0].text == "Hello from the fake provider!" and m.stop_reason == "end_turn"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (12, 7)  # the system message counts on OpenAI
    up = only_upstream(fake, n)
    assert up.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert up.json["messages"][0] == {"role": "system", "content": "Be brief."}

    n = nonce()
    with claude.messages.stream(model="gpt-4.1-mini", max_tokens=100,
                                messages=[{"role": "user", "content": f"Hi {n} [[tool:get_weather]]"}],
                                tools=[{"name": "get_weather", "input_schema": {"type": "object"}}]) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[-1].name == "get_weather"
    assert final.content[-1].input == {"city": "Paris"}


def test_count_tokens_is_counted_locally_and_exactly(tw: Tollway, fake: FakeProvider) -> None:
    before = len(fake.requests)
    raw = anthropic_client(tw).messages.with_raw_response.count_tokens(
        model="gpt-4.1-mini", system="Be brief.", messages=[{"role": "user", "content": "Hello there"}])
    n = raw.parse().input_tokens
    # what OpenAI would count for the same conversation as a Chat Completions request
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]}
    assert (n, True) == TokenCounter().count_openai_chat("gpt-4.1-mini", chat) and n > 10
    assert "x-tollway-tokens-estimated" not in raw.headers
    assert len(fake.requests) == before  # nothing went upstream
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "anthropic.count_tokens" and rec["status"] == 200
    assert rec["tokens_estimated"] is False and Decimal(rec["cost_usd"]) == 0


def test_provider_errors_are_relayed_in_azures_own_shape(oai: openai.OpenAI, tw: Tollway) -> None:
    with pytest.raises(openai.RateLimitError) as ei:
        oai.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "Hi [[fault:429]]"}])
    assert "rate limit" in json.dumps(ei.value.body)
    rec = tw.record(ei.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == 429 and rec["provider"] == "azure"
