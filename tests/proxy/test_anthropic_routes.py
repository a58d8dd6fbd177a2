"""The Anthropic surface through the official `anthropic` SDK."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway

HELLO = [{"role": "user", "content": "Hello"}]


def test_message_is_relayed_and_recorded(claude: anthropic.Anthropic, tollway: Tollway, fake: FakeProvider) -> None:
    raw = claude.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=100, messages=HELLO,
                                                   extra_headers={"x-source": "cli-tool"})
    msg = raw.parse()
    assert msg.content[0].text == "Hello from the fake provider!"
    upstream = fake.requests[-1]
    assert upstream.headers["x-api-key"] == "sk-ant-fake"
    # the client's API version goes upstream as it sent it
    assert upstream.headers["anthropic-version"] == raw.http_request.headers["anthropic-version"]
    assert "x-source" not in upstream.headers
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "anthropic.messages" and rec["provider"] == "anthropic"
    assert (rec["input_tokens"], rec["output_tokens"]) == (msg.usage.input_tokens, msg.usage.output_tokens)
    assert rec["source"] == "cli-tool"
    assert Decimal(raw.headers["x-tollway-cost-usd"]) == Decimal(rec["cost_usd"]) > 0


def test_cache_tokens_are_summed_into_input_and_priced(claude: anthropic.Anthropic, tollway: Tollway) -> None:
    raw = claude.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=100,
                                                   messages=[{"role": "user", "content": "hi [[cache]]"}])
    u = raw.parse().usage
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["cached_tokens"] == u.cache_read_input_tokens == 5
    assert rec["cache_creation_tokens"] == u.cache_creation_input_tokens == 3
    assert rec["input_tokens"] == u.input_tokens + 5 + 3


def test_stream_final_message_and_record(claude: anthropic.Anthropic, tollway: Tollway) -> None:
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=HELLO) as stream:
        final = stream.get_final_message()
        trace = stream.response.headers["x-tollway-trace-id"]
    assert final.content[0].text == "Hello from the fake provider!"
    assert final.stop_reason == "end_turn"
    rec = tollway.record(trace)
    assert rec["stream"] is True
    assert (rec["input_tokens"], rec["output_tokens"]) == (final.usage.input_tokens, final.usage.output_tokens)
    assert rec["ttft_ms"] is not None and rec["tokens_estimated"] is False


def test_stream_tool_use(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=100,
                                tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
                                messages=[{"role": "user", "content": "weather [[tool:get_weather]]"}]) as stream:
        final = stream.get_final_message()
    tool = next(b for b in final.content if b.type == "tool_use")
    assert tool.name == "get_weather" and tool.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


def test_count_tokens(claude: anthropic.Anthropic, tollway: Tollway) -> None:
    raw = claude.messages.with_raw_response.count_tokens(model="claude-haiku-4-5", messages=HELLO)
    assert raw.parse().input_tokens > 0
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "anthropic.count_tokens" and Decimal(rec["cost_usd"]) == 0


def test_bearer_also_authenticates_on_anthropic_routes(tollway: Tollway) -> None:
    client = anthropic.Anthropic(base_url=tollway.url, auth_token=MASTER_KEY, api_key=None, max_retries=0)
    msg = client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
    assert msg.content[0].text


def test_wrong_key_is_401_anthropic_shaped(tollway: Tollway) -> None:
    client = anthropic.Anthropic(base_url=tollway.url, api_key="nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as ei:
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
    assert ei.value.body == {"type": "error", "error": {"type": "authentication_error",
                                                         "message": ei.value.body["error"]["message"]}}
