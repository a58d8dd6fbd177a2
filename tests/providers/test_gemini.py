"""Gemini through the official openai and anthropic SDKs: every call translated (generateContent,
SSE streams, tool calls, embeddings, countTokens), errors in the client's format, usage and cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.fakes.scenario import embedding_vector
from tests.harness import Tollway, anthropic_client, openai_client
from tests.providers.support import base_config, cost, nonce, only_upstream

MODEL = "gemini-2.0-flash"
EMBED = "text-embedding-004"
PRICE = ("0.10", "0.40")
EMBED_PRICE = ("0.02", "0")
TOOLS_OA = [{"type": "function", "function": {"name": n, "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    for n in ("get_weather", "get_time")]
REPLY = "Hello from the fake provider!"


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = base_config([{"id": "google", "kind": "gemini", "base_url": fake.url, "api_key": "gemini-key-456"}],
                      prices=[{"model": "gemini:gemini-2.0-flash*", "input_per_mtok": PRICE[0],
                               "output_per_mtok": PRICE[1]},
                              {"model": EMBED, "input_per_mtok": EMBED_PRICE[0], "output_per_mtok": EMBED_PRICE[1]}])
    t = Tollway(tmp_path_factory.mktemp("gemini"), cfg)
    yield t
    t.stop()


@pytest.fixture
def oai(tw: Tollway) -> openai.OpenAI:
    return openai_client(tw)


@pytest.fixture
def claude(tw: Tollway) -> anthropic.Anthropic:
    return anthropic_client(tw)


# ---------------------------------------------------------------- chat


def test_openai_chat_is_translated_to_generate_content(oai: openai.OpenAI, tw: Tollway, fake: FakeProvider) -> None:
    n = nonce()
    raw = oai.chat.completions.with_raw_response.create(
        model=MODEL, temperature=0.3, max_tokens=50,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Hi {n}"}])
    c = raw.parse()
    assert c.choices[0].message.content == REPLY and c.choices[0].finish_reason == "stop"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens) == (11, 7, 18)
    up = only_upstream(fake, n)
    assert up.provider == "gemini" and up.path == f"/v1beta/models/{MODEL}:generateContent"
    assert up.headers["x-goog-api-key"] == "gemini-key-456" and "authorization" not in up.headers
    assert up.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert up.json["contents"] == [{"role": "user", "parts": [{"text": f"Hi {n}"}]}]
    assert up.json["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.3}
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "openai.chat" and rec["provider"] == "google" and rec["model_served"] == MODEL
    assert (rec["input_tokens"], rec["output_tokens"], rec["tokens_estimated"]) == (11, 7, False)
    assert Decimal(rec["cost_usd"]) == cost(11, 7, PRICE) == Decimal(raw.headers["x-tollway-cost-usd"])


def test_openai_chat_stream(oai: openai.OpenAI, tw: Tollway, fake: FakeProvider) -> None:
    n = nonce()
    with oai.chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": f"Hi {n}"}], stream=True,
            stream_options={"include_usage": True}) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        chunks = list(raw.parse())
    assert only_upstream(fake, n).path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert only_upstream(fake, n).query == {"alt": "sse"}
    text = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(text) == REPLY and len(text) == 5  # relayed as Gemini sent it, piece by piece
    assert chunks[-1].usage.prompt_tokens == 11 and chunks[-1].usage.completion_tokens == 7
    rec = tw.record(trace)
    assert rec["stream"] is True and (rec["input_tokens"], rec["output_tokens"]) == (11, 7)
    assert rec["ttft_ms"] is not None and Decimal(rec["cost_usd"]) == cost(11, 7, PRICE)

    # a client that does not ask for usage sees none, and the call is metered all the same
    with oai.chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)
    assert tw.record(trace)["output_tokens"] == 7


def test_anthropic_messages_plain_and_stream(claude: anthropic.Anthropic, tw: Tollway, fake: FakeProvider) -> None:
    n = nonce()
    raw = claude.messages.with_raw_response.create(model=MODEL, max_tokens=64, system="Be brief.",
                                                   messages=[{"role": "user", "content": f"Hi {n}"}])
    m = raw.parse()
    assert m.content[0].text == REPLY and m.stop_reason == "end_turn"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (11, 7)
    assert only_upstream(fake, n).json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "anthropic.messages" and Decimal(rec["cost_usd"]) == cost(11, 7, PRICE)

    with claude.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hi"}]) as s:
        final = s.get_final_message()
    assert final.content[0].text == REPLY and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)


def test_parallel_tool_calls_through_the_openai_sdk(oai: openai.OpenAI, fake: FakeProvider) -> None:
    n = nonce()
    c = oai.chat.completions.create(model=MODEL, tools=TOOLS_OA, tool_choice="auto",
                                    messages=[{"role": "user", "content": f"Weather and time? {n} [[tools:2]]"}])
    calls = c.choices[0].message.tool_calls
    assert c.choices[0].finish_reason == "tool_calls"
    assert [(t.function.name, json.loads(t.function.arguments)) for t in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"city": "Tokyo"})]
    assert len({t.id for t in calls}) == 2
    up = only_upstream(fake, n)
    decls = up.json["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in decls] == ["get_weather", "get_time"]
    assert up.json["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    # the tool results go back as functionResponse parts, under the names of their calls
    follow = [{"role": "user", "content": "Weather and time?"}, c.choices[0].message.model_dump(exclude_none=True),
              *({"role": "tool", "tool_call_id": t.id, "content": f"result {i} {n}"} for i, t in enumerate(calls))]
    c2 = oai.chat.completions.create(model=MODEL, tools=TOOLS_OA, messages=follow)
    said = c2.choices[0].message.content
    assert said.startswith("Tool said: ") and f"result 0 {n}" in said and f"result 1 {n}" in said
    last = [r for r in fake.requests if n in r.text][-1].json["contents"]
    responses = [p["functionResponse"] for p in last[-1]["parts"]]
    assert [r["name"] for r in responses] == ["get_weather", "get_time"]

    with oai.chat.completions.stream(model=MODEL, tools=TOOLS_OA,
                                     messages=[{"role": "user", "content": "weather? [[tools:2]]"}]) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [json.loads(t.function.arguments) for t in calls] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert final.choices[0].finish_reason == "tool_calls"


def test_tool_use_through_the_anthropic_sdk(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=64,
                                tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
                                messages=[{"role": "user", "content": "Weather? [[tool:get_weather]]"}]) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    use = final.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"} and use.id


# ---------------------------------------------------------------- embeddings


def test_embeddings_one_input_floats(oai: openai.OpenAI, tw: Tollway, fake: FakeProvider) -> None:
    n = nonce()
    raw = oai.embeddings.with_raw_response.create(model=EMBED, input=f"hello {n}", encoding_format="float",
                                                  dimensions=8)
    e = raw.parse()
    up = only_upstream(fake, n)
    assert up.path == f"/v1beta/models/{EMBED}:embedContent" and up.headers["x-goog-api-key"] == "gemini-key-456"
    assert up.json == {"content": {"parts": [{"text": f"hello {n}"}]}, "outputDimensionality": 8}
    assert e.object == "list" and e.model == EMBED and len(e.data) == 1
    assert e.data[0].embedding == pytest.approx(embedding_vector(f"hello {n}", 8))
    # Gemini reports no usage for embeddings: counted here, and said so
    assert e.usage.prompt_tokens == e.usage.total_tokens > 0
    assert raw.headers["x-tollway-tokens-estimated"] == "true"
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "openai.embeddings" and rec["provider"] == "google" and rec["model_served"] == EMBED
    assert rec["input_tokens"] == e.usage.prompt_tokens and rec["output_tokens"] == 0
    assert rec["tokens_estimated"] is True
    assert Decimal(rec["cost_usd"]) == cost(rec["input_tokens"], 0, EMBED_PRICE)


def test_embeddings_list_base64_as_the_sdk_asks_by_default(oai: openai.OpenAI, fake: FakeProvider) -> None:
    n = nonce()
    texts = [f"one {n}", "two", "three"]
    e = oai.embeddings.create(model=EMBED, input=texts)  # the SDK asks for base64 and decodes it
    up = only_upstream(fake, n)
    assert up.path == f"/v1beta/models/{EMBED}:batchEmbedContents"
    assert [r["content"]["parts"][0]["text"] for r in up.json["requests"]] == texts
    assert all(r["model"] == f"models/{EMBED}" for r in up.json["requests"])
    assert [d.index for d in e.data] == [0, 1, 2]
    for d, t in zip(e.data, texts, strict=True):
        assert d.embedding == pytest.approx(embedding_vector(t), abs=1e-7)


def test_embedding_params_gemini_cannot_honour_are_named(oai: openai.OpenAI) -> None:
    raw = oai.embeddings.with_raw_response.create(model=EMBED, input="x", user="u-1",
                                                  extra_body={"truncate_prompt_tokens": 8})
    assert raw.headers["x-tollway-dropped-params"] == "truncate_prompt_tokens"  # `user` is not worth reporting
    assert len(raw.parse().data) == 1


def test_embeddings_of_token_ids_are_refused_in_openais_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        oai.embeddings.create(model=EMBED, input=[[1, 2, 3]])
    assert ei.value.body["param"] == "input" and ei.value.body["type"] == "invalid_request_error"


def test_embedding_errors_come_back_in_openais_shape(oai: openai.OpenAI, tw: Tollway) -> None:
    with pytest.raises(openai.InternalServerError) as ei:
        oai.embeddings.create(model=EMBED, input="x [[fault:503]]")
    assert ei.value.status_code == 503 and ei.value.body["type"] == "server_error"
    rec = tw.record(ei.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == 503 and rec["error_type"] == "provider:overloaded_error"


# ---------------------------------------------------------------- token counting


def test_count_tokens_asks_gemini(claude: anthropic.Anthropic, tw: Tollway, fake: FakeProvider) -> None:
    n = nonce()
    raw = claude.messages.with_raw_response.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": f"Hello {n}"}])
    assert raw.parse().input_tokens == 11  # the fake: 10 + one content
    up = only_upstream(fake, n)
    assert up.path == f"/v1beta/models/{MODEL}:countTokens" and up.headers["x-goog-api-key"] == "gemini-key-456"
    assert up.json == {"contents": [{"role": "user", "parts": [{"text": f"Hello {n}"}]}]}
    assert "x-tollway-tokens-estimated" not in raw.headers
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "anthropic.count_tokens" and rec["status"] == 200 and rec["provider"] == "google"
    assert rec["tokens_estimated"] is False and Decimal(rec["cost_usd"]) == 0

    # a system prompt and tools count too: countTokens then takes the whole request
    n = nonce()
    claude.messages.count_tokens(model=MODEL, system="Be brief.",
                                 tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
                                 messages=[{"role": "user", "content": f"Hello {n}"},
                                           {"role": "assistant", "content": "Hi!"},
                                           {"role": "user", "content": "Weather?"}])
    gcr = only_upstream(fake, n).json["generateContentRequest"]
    assert gcr["model"] == f"models/{MODEL}" and len(gcr["contents"]) == 3
    assert gcr["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert gcr["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


def test_count_tokens_errors_come_back_in_anthropics_shape(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as ei:
        claude.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "x [[fault:429]]"}])
    assert ei.value.body["type"] == "error" and ei.value.body["error"]["type"] == "rate_limit_error"


# ---------------------------------------------------------------- errors


def test_rate_limit_reaches_the_openai_client_as_rate_limit_error(oai: openai.OpenAI, tw: Tollway) -> None:
    with pytest.raises(openai.RateLimitError) as ei:
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi [[fault:429]]"}])
    body = ei.value.body
    assert set(body) == {"message", "type", "param", "code"}  # OpenAI's error shape, not Google's
    assert body["type"] == "rate_limit_error" and body["code"] == "rate_limit_exceeded" and "quota" in body["message"]
    assert ei.value.response.headers["retry-after"] == "1"
    rec = tw.record(ei.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == 429 and rec["error_type"] == "provider:rate_limit_error" and rec["cost_usd"] is None


def test_errors_reach_the_anthropic_client_in_its_shape(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as ei:
        claude.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi [[fault:500]]"}])
    assert ei.value.body["type"] == "error" and ei.value.body["error"]["type"] == "api_error"


def test_stream_error_midway_ends_in_an_sdk_error(oai: openai.OpenAI, tw: Tollway) -> None:
    with pytest.raises(openai.APIError):
        with oai.chat.completions.stream(model=MODEL,
                                         messages=[{"role": "user", "content": "Hi [[stream_error]]"}]) as s:
            s.get_final_completion()
