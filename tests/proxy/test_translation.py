"""Translation behaviour the conformance matrix does not cover: dropped parameters, strict
mode, and the Responses conversation state Tollway keeps for non-OpenAI providers."""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, standard_config

HELLO = [{"role": "user", "content": "Hello"}]


def test_dropped_params_are_named_in_a_header(oai: openai.OpenAI, fake: FakeProvider) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="claude-haiku-4-5", messages=HELLO, seed=7,
                                                        logprobs=True, presence_penalty=0.5)
    assert set(raw.headers["x-tollway-dropped-params"].split(",")) == {"seed", "logprobs", "presence_penalty"}
    sent = fake.requests[-1].json
    assert fake.requests[-1].path == "/v1/messages"
    assert not {"seed", "logprobs", "presence_penalty"} & set(sent)
    assert raw.parse().choices[0].message.content == "Hello from the fake provider!"


def test_nothing_dropped_means_no_header(oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="claude-haiku-4-5", messages=HELLO, temperature=0.2)
    assert "x-tollway-dropped-params" not in raw.headers


def test_strict_mode_refuses_what_it_would_drop(fake: FakeProvider, workdir) -> None:
    tw = Tollway(workdir, standard_config(fake.url, translation={"strict": True}))
    try:
        client = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
        before = len(fake.requests)
        with pytest.raises(openai.BadRequestError) as ei:
            client.chat.completions.create(model="claude-haiku-4-5", messages=HELLO, seed=7)
        assert ei.value.body["param"] == "seed" and "seed" in ei.value.body["message"]
        assert len(fake.requests) == before  # nothing went upstream
        rec = tw.record(ei.value.response.headers["x-tollway-trace-id"])
        assert rec["status"] == 400 and rec["error_type"] == "invalid_request"
        ok = client.chat.completions.create(model="claude-haiku-4-5", messages=HELLO)  # nothing to drop: fine
        assert ok.choices[0].message.content
    finally:
        tw.stop()


def test_responses_conversation_continues_on_anthropic(oai: openai.OpenAI, fake: FakeProvider,
                                                       tollway: Tollway) -> None:
    first = oai.responses.create(model="claude-haiku-4-5", instructions="Be brief.", input="My name is Ada.")
    assert first.output_text == "Hello from the fake provider!" and first.id.startswith("resp_")
    second = oai.responses.create(model="claude-haiku-4-5", previous_response_id=first.id,
                                  input="What is my name? [[echo]]")
    received = json.loads(second.output_text)
    texts = [(m["role"], "".join(b["text"] for b in m["content"])) for m in received["messages"]]
    assert texts == [("user", "My name is Ada."), ("assistant", "Hello from the fake provider!"),
                     ("user", "What is my name? [[echo]]")]
    assert second.previous_response_id == first.id

    again = oai.responses.retrieve(first.id)
    assert again.id == first.id and again.output_text == first.output_text
    rec = tollway.records(limit=5)
    assert any(r["route"] == "openai.responses" and r["provider"] == "anthropic" for r in rec)

    oai.responses.delete(first.id)
    # gone from Tollway's store: the id is then asked of the OpenAI provider, which has no such response
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(first.id)


def test_streamed_responses_are_stored_too(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="claude-haiku-4-5", input="Hello") as stream:
        final = stream.get_final_response()
    stored = oai.responses.retrieve(final.id)
    assert stored.output_text == final.output_text == "Hello from the fake provider!"
    assert stored.usage.output_tokens == final.usage.output_tokens


def test_store_false_keeps_nothing(oai: openai.OpenAI) -> None:
    resp = oai.responses.create(model="claude-haiku-4-5", input="Hello", store=False)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(resp.id)


def test_unknown_previous_response_is_404_openai_shaped(oai: openai.OpenAI, tollway: Tollway) -> None:
    with pytest.raises(openai.NotFoundError) as ei:
        oai.responses.create(model="claude-haiku-4-5", input="hi", previous_response_id="resp_nope")
    assert ei.value.body["param"] == "previous_response_id" and "resp_nope" in ei.value.body["message"]
    rec = tollway.record(ei.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == 404


def test_unknown_response_id_without_openai_provider_is_404(fake: FakeProvider, workdir) -> None:
    cfg = standard_config(fake.url, aliases={})
    cfg["providers"] = [p for p in cfg["providers"] if p["kind"] == "anthropic"]
    tw = Tollway(workdir, cfg)
    try:
        client = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(openai.NotFoundError) as ei:
            client.responses.retrieve("resp_missing")
        assert "resp_missing" in ei.value.body["message"]
    finally:
        tw.stop()


JSON_ASK = [{"role": "user", "content": "Where is it sunny? Answer in JSON. [[tool:json_response]]"}]


@pytest.mark.parametrize("stream", [False, True])
def test_json_mode_to_anthropic_is_emulated_with_a_forced_tool(oai: openai.OpenAI, fake: FakeProvider,
                                                              stream: bool) -> None:
    kw = {"model": "claude-haiku-4-5", "messages": JSON_ASK, "response_format": {"type": "json_object"}}
    if stream:
        chunks = list(oai.chat.completions.create(**kw, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finish == ["stop"]
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    else:
        raw = oai.chat.completions.with_raw_response.create(**kw)
        assert "x-tollway-dropped-params" not in raw.headers  # emulated, not dropped
        out = raw.parse()
        text, finish = out.choices[0].message.content, out.choices[0].finish_reason
        assert finish == "stop" and not out.choices[0].message.tool_calls
    assert json.loads(text) == {"city": "Paris"}
    sent = fake.requests[-1].json
    assert [t["name"] for t in sent["tools"]] == ["json_response"]
    assert sent["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert "JSON object" in sent["system"][-1]["text"]


def test_json_mode_with_client_tools_lets_the_model_call_them(oai: openai.OpenAI, fake: FakeProvider) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    out = oai.chat.completions.create(model="claude-haiku-4-5", response_format={"type": "json_object"}, tools=[tool],
                                      messages=[{"role": "user", "content": "Weather? [[tool:get_weather]]"}])
    assert out.choices[0].finish_reason == "tool_calls"
    assert out.choices[0].message.tool_calls[0].function.name == "get_weather"
    sent = fake.requests[-1].json
    assert [t["name"] for t in sent["tools"]] == ["get_weather", "json_response"]
    assert sent["tool_choice"] == {"type": "any"}


def test_responses_json_object_to_anthropic(oai: openai.OpenAI, fake: FakeProvider) -> None:
    out = oai.responses.create(model="claude-haiku-4-5", input=JSON_ASK[0]["content"],
                               text={"format": {"type": "json_object"}})
    assert json.loads(out.output_text) == {"city": "Paris"} and out.status == "completed"
    assert fake.requests[-1].json["tool_choice"] == {"type": "tool", "name": "json_response"}


TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("stream", [False, True])
def test_client_headers_reach_the_upstream_and_its_request_id_comes_back(tollway: Tollway, fake: FakeProvider,
                                                                        stream: bool) -> None:
    import anthropic

    oai = openai.OpenAI(base_url=tollway.url + "/v1", api_key=MASTER_KEY, max_retries=0, default_headers={
        "traceparent": TRACE, "tracestate": "vendor=1", "X-Client-Request-Id": "client-42"})
    raw = oai.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=HELLO, stream=stream, extra_headers={"Idempotency-Key": "idem-1"})
    if stream:
        list(raw.parse())
    up = fake.requests[-1]
    assert up.path == "/v1/messages"
    assert (up.headers["traceparent"], up.headers["tracestate"], up.headers["x-client-request-id"],
            up.headers["idempotency-key"]) == (TRACE, "vendor=1", "client-42", "idem-1")
    assert up.headers["user-agent"].startswith("OpenAI/Python") and up.headers["user-agent"].endswith(" tollway/0.1.0")
    assert "authorization" not in up.headers and "x-tollway-key" not in up.headers
    # Anthropic's request id (the fake's are req_011C…), under the name the OpenAI SDK reads
    assert raw.headers["x-request-id"].startswith("req_011C") and raw.request_id == raw.headers["x-request-id"]

    claude = anthropic.Anthropic(base_url=tollway.url, api_key=MASTER_KEY, max_retries=0)
    msg = claude.messages.with_raw_response.create(model="gpt-4o-mini", max_tokens=32, messages=HELLO)
    assert fake.requests[-1].path == "/v1/chat/completions"
    assert msg.headers["request-id"].startswith("req_") and msg.request_id == msg.headers["request-id"]
    same = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)  # fast path too
    assert fake.requests[-1].headers["user-agent"].endswith(" tollway/0.1.0")
    assert fake.requests[-1].headers["traceparent"] == TRACE and same.headers["x-request-id"].startswith("req_")
