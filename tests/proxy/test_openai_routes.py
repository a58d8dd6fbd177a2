"""The OpenAI surface through the official `openai` SDK: what a user sees, and what is recorded."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway

HELLO = [{"role": "user", "content": "Hello"}]


def test_chat_completion_is_relayed_and_recorded(oai: openai.OpenAI, tollway: Tollway, fake: FakeProvider) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO,
        extra_headers={"x-tollway-project": "proj-a", "x-tollway-source": "unit", "x-tollway-customer": "cust-9"})
    resp = raw.parse()
    assert resp.choices[0].message.content == "Hello from the fake provider!"
    assert resp.usage.prompt_tokens == 11 and resp.usage.completion_tokens == 7
    trace = raw.headers["x-tollway-trace-id"]
    cost = Decimal(raw.headers["x-tollway-cost-usd"])
    assert cost > 0

    upstream = fake.requests[-1]
    assert upstream.headers["authorization"] == "Bearer sk-fake-openai"  # the provider key, not ours
    assert not any(h.startswith(("x-tollway", "x-project", "x-source")) for h in upstream.headers)

    rec = tollway.record(trace)
    assert rec["route"] == "openai.chat" and rec["provider"] == "openai"
    assert rec["model_requested"] == "gpt-4o-mini" and rec["model_served"] == "gpt-4o-mini"
    assert (rec["input_tokens"], rec["output_tokens"], rec["total_tokens"]) == (11, 7, 18)
    assert rec["tokens_estimated"] is False and rec["stream"] is False
    assert Decimal(rec["cost_usd"]) == cost
    # gpt-4o-mini: $0.15 / $0.60 per million tokens
    assert cost == Decimal(11) * Decimal("0.15") / 1_000_000 + Decimal(7) * Decimal("0.60") / 1_000_000
    assert (rec["project"], rec["source"], rec["customer"], rec["key_id"]) == ("proj-a", "unit", "cust-9", "master")
    assert rec["status"] == 200 and rec["error_type"] is None and rec["latency_ms"] > 0


def test_stream_without_include_usage_looks_exactly_like_upstream(oai: openai.OpenAI, tollway: Tollway,
                                                                  fake: FakeProvider) -> None:
    with oai.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=HELLO,
                                                              stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        chunks = list(raw.parse())
    # Tollway asked upstream for usage, but the client did not: it sees no usage anywhere.
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    assert all(c.usage is None and c.choices for c in chunks)
    assert all("usage" not in c.model_dump(exclude_unset=True) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Hello from the fake provider!"
    assert chunks[-1].choices[0].finish_reason == "stop"
    rec = tollway.record(trace)
    assert rec["stream"] is True and (rec["input_tokens"], rec["output_tokens"]) == (11, 7)
    assert rec["tokens_estimated"] is False and rec["ttft_ms"] is not None and rec["cost_usd"] is not None


def test_stream_with_include_usage_keeps_the_usage_chunk(oai: openai.OpenAI, tollway: Tollway) -> None:
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True,
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7


def test_stream_helper_accumulates_tool_calls(oai: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    with oai.chat.completions.stream(model="gpt-4o-mini", tools=tools,
                                     messages=[{"role": "user", "content": "weather? [[tools:2]]"}]) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert all(c.id for c in calls)
    assert final.choices[0].finish_reason == "tool_calls"


def test_legacy_completions(oai: openai.OpenAI, tollway: Tollway) -> None:
    raw = oai.completions.with_raw_response.create(model="gpt-4o-mini", prompt="Say hi")
    resp = raw.parse()
    assert resp.choices[0].text == "Hello from the fake provider!"
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "openai.completions" and rec["output_tokens"] == 7
    chunks = list(oai.completions.create(model="gpt-4o-mini", prompt="Say hi", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from the fake provider!"


def test_legacy_completions_to_a_provider_without_them_say_what_to_use(oai: openai.OpenAI, fake: FakeProvider) -> None:
    """LlamaIndex's OpenAILike and LangChain's OpenAI (not ChatOpenAI) send /v1/completions: for an
    Anthropic model that is a 400 in OpenAI's shape that says to use chat completions, and nothing
    reaches a provider."""
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as err:
        oai.completions.create(model="claude-haiku-4-5", prompt="Say hi")
    assert err.value.body["param"] == "model" and "/v1/chat/completions" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        oai.embeddings.create(model="claude-haiku-4-5", input="hi")
    assert "Embeddings need a model" in err.value.body["message"]
    assert len(fake.requests) == before


def test_embeddings(oai: openai.OpenAI, tollway: Tollway) -> None:
    raw = oai.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
    resp = raw.parse()
    assert len(resp.data) == 2 and len(resp.data[0].embedding) > 0
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "openai.embeddings" and rec["input_tokens"] == resp.usage.prompt_tokens
    assert rec["output_tokens"] == 0 and rec["cost_usd"] is not None


def test_responses_plain_and_stream(oai: openai.OpenAI, tollway: Tollway) -> None:
    raw = oai.responses.with_raw_response.create(model="gpt-4o-mini", input="Hello")
    resp = raw.parse()
    assert resp.output_text == "Hello from the fake provider!"
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "openai.responses" and rec["output_tokens"] == resp.usage.output_tokens

    with oai.responses.stream(model="gpt-4o-mini", input="Hello") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Hello from the fake provider!"
    recs = tollway.records(model="gpt-4o-mini", limit=5)
    streamed = next(r for r in recs if r["route"] == "openai.responses" and r["stream"])
    assert streamed["output_tokens"] == final.usage.output_tokens and streamed["ttft_ms"] is not None


def test_models_lists_routable_names(oai: openai.OpenAI) -> None:
    models = {m.id: m.owned_by for m in oai.models.list()}
    assert {"fast", "gpt-4o-mini", "gpt-4o", "text-embedding-3-small"} <= set(models)
    assert not any("*" in i for i in models)
    # patterns list the models they match that the upstream serves (its own model list), owned by their provider
    assert models.get("gpt-4.1-mini") == "openai" and models.get("claude-haiku-4-5-20251001") == "anthropic"
    assert "claude-3-5-haiku-latest" not in models  # in the price data, but the upstream does not serve it
    assert "gpt-3.5-turbo-instruct" not in models  # served upstream, but no configured pattern routes it


def test_alias_routes_to_its_target(oai: openai.OpenAI, tollway: Tollway, fake: FakeProvider) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="fast", messages=HELLO)
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["model_requested"] == "fast" and rec["model_served"] == "gpt-4o-mini"


def test_project_path_wins_over_header(tollway: Tollway) -> None:
    client = openai.OpenAI(base_url=tollway.url + "/projects/billing/v1", api_key=MASTER_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO,
                                                           extra_headers={"x-project": "other"})
    assert tollway.record(raw.headers["x-tollway-trace-id"])["project"] == "billing"


def test_key_default_project_and_key_id(tollway: Tollway) -> None:
    from tests.harness import TEAM_KEY

    client = openai.OpenAI(base_url=tollway.url + "/v1", api_key=TEAM_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert (rec["key_id"], rec["project"]) == ("team-alpha", "alpha")


def test_missing_key_is_401(tollway: Tollway) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(tollway.url + "/v1/chat/completions", method="POST",
                                 data=json.dumps({"model": "gpt-4o-mini", "messages": HELLO}).encode())
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(req, timeout=5)
    assert ei.value.code == 401
    assert json.loads(ei.value.read())["error"]["code"] == "invalid_api_key"


def test_wrong_key_is_401_openai_shaped(tollway: Tollway) -> None:
    client = openai.OpenAI(base_url=tollway.url + "/v1", api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as ei:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert ei.value.status_code == 401
    assert ei.value.body["type"] == "invalid_request_error" and ei.value.body["code"] == "invalid_api_key"
    trace = ei.value.response.headers["x-tollway-trace-id"]
    # logged, not recorded (README, Keys): the line is written after the record would be queued
    deadline = time.time() + 5
    while trace not in tollway.log():
        assert time.time() < deadline, "no access-log line for the 401"
        time.sleep(0.05)
    line = next(ln for ln in tollway.log().splitlines() if trace in ln)
    assert "status=401" in line and "error=authentication" in line
    assert tollway.get(f"/v1/records/{trace}")[0] == 404
