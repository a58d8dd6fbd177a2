"""The demo speaks every format: `tollway serve --demo` adds demo-claude (acting as Anthropic) and
demo-gemini (acting as Gemini), so a new user's OpenAI SDK exercises translation, metered like
a real provider."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.harness import Tollway, anthropic_client, openai_client
from tests.providers.support import base_config

HELLO = [{"role": "user", "content": "Hello translated demo"}]


@pytest.fixture
def oai(demo: Tollway) -> openai.OpenAI:
    return openai_client(demo, api_key="no-key-needed")  # no Tollway key is configured


@pytest.fixture
def claude(demo: Tollway) -> anthropic.Anthropic:
    return anthropic_client(demo, api_key="no-key-needed")


def metered(demo: Tollway, trace: str, provider: str, *, stream: bool, route: str = "openai.chat") -> dict[str, Any]:
    rec = demo.record(trace)
    assert (rec["route"], rec["provider"], rec["status"], rec["error_type"], rec["stream"]) == (
        route, provider, 200, None, stream)
    assert rec["input_tokens"] > 0 and rec["output_tokens"] > 0 and rec["tokens_estimated"] is False
    assert Decimal(rec["cost_usd"]) > 0
    return rec


def test_the_demo_has_three_providers_and_lists_them(demo: Tollway, oai: openai.OpenAI) -> None:
    _, health = demo.get("/health", key=None)
    assert health["providers"] == ["demo-claude", "demo-gemini", "demo"]
    ids = [m.id for m in oai.models.list()]
    assert {"demo", "demo-claude", "demo-gemini"} <= set(ids)


@pytest.mark.parametrize("model", ["demo-claude", "demo-gemini", "demo-gemini-pro"])
def test_openai_sdk_chat_is_translated(oai: openai.OpenAI, demo: Tollway, model: str) -> None:
    raw = oai.chat.completions.with_raw_response.create(model=model, messages=HELLO)
    c = raw.parse()
    text = c.choices[0].message.content
    assert "Hello translated demo" in text and c.choices[0].finish_reason == "stop"
    assert c.model == model and c.id
    provider = "demo-claude" if model.startswith("demo-claude") else "demo-gemini"
    rec = metered(demo, raw.headers["x-tollway-trace-id"], provider, stream=False)
    assert (rec["input_tokens"], rec["output_tokens"]) == (c.usage.prompt_tokens, c.usage.completion_tokens)
    assert rec["model_served"] == model
    assert Decimal(raw.headers["x-tollway-cost-usd"]) == Decimal(rec["cost_usd"])


@pytest.mark.parametrize("model", ["demo-claude", "demo-gemini"])
def test_openai_sdk_stream_is_translated(oai: openai.OpenAI, demo: Tollway, model: str) -> None:
    with oai.chat.completions.with_streaming_response.create(model=model, messages=HELLO, stream=True,
                                                              stream_options={"include_usage": True}) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        chunks = list(raw.parse())
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 5 and "Hello translated demo" in "".join(pieces)  # word by word, as it came
    usage = chunks[-1].usage
    rec = metered(demo, trace, model, stream=True)
    assert (rec["input_tokens"], rec["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert rec["ttft_ms"] is not None

    with oai.chat.completions.stream(model=model, messages=HELLO) as s:
        final = s.get_final_completion()
    assert "Hello translated demo" in final.choices[0].message.content
    assert final.choices[0].finish_reason == "stop"


def test_same_prompt_same_usage_in_every_format(oai: openai.OpenAI) -> None:
    """Realistic counts: the prompt is counted the same whichever wire format the demo acts in."""
    native = oai.chat.completions.create(model="demo", messages=HELLO).usage
    for model in ("demo-claude", "demo-gemini"):
        u = oai.chat.completions.create(model=model, messages=HELLO).usage
        assert u.completion_tokens == native.completion_tokens
        assert abs(u.prompt_tokens - native.prompt_tokens) <= 2, (model, u, native)


def test_anthropic_sdk_to_demo_gemini(claude: anthropic.Anthropic, demo: Tollway) -> None:
    raw = claude.messages.with_raw_response.create(model="demo-gemini", max_tokens=100, messages=HELLO)
    m = raw.parse()
    assert "Hello translated demo" in m.content[0].text and m.stop_reason == "end_turn"
    metered(demo, raw.headers["x-tollway-trace-id"], "demo-gemini", stream=False, route="anthropic.messages")
    with claude.messages.stream(model="demo-gemini", max_tokens=100, messages=HELLO) as s:
        final = s.get_final_message()
    assert "Hello translated demo" in final.content[0].text and final.usage.output_tokens > 0


def test_responses_to_demo_claude(oai: openai.OpenAI, demo: Tollway) -> None:
    raw = oai.responses.with_raw_response.create(model="demo-claude", input="Hello translated demo")
    r = raw.parse()
    assert "Hello translated demo" in r.output_text and r.status == "completed"
    metered(demo, raw.headers["x-tollway-trace-id"], "demo-claude", stream=False, route="openai.responses")


def test_demo_gemini_embeddings_and_token_counting(oai: openai.OpenAI, claude: anthropic.Anthropic,
                                                   demo: Tollway) -> None:
    e = oai.embeddings.create(model="demo-gemini-embedding", input=["one", "two"], dimensions=8)
    assert [len(d.embedding) for d in e.data] == [8, 8] and e.data[0].embedding != e.data[1].embedding
    assert e.usage.prompt_tokens > 0
    one = oai.embeddings.create(model="demo-gemini-embedding", input="one", dimensions=8)
    assert one.data[0].embedding == e.data[0].embedding  # :embedContent and :batchEmbedContents agree

    raw = claude.messages.with_raw_response.count_tokens(model="demo-gemini", messages=HELLO)
    n = raw.parse().input_tokens
    assert n > 0 and "x-tollway-tokens-estimated" not in raw.headers  # Gemini's own countTokens answered
    rec = demo.record(raw.headers["x-tollway-trace-id"])
    assert rec["provider"] == "demo-gemini" and Decimal(rec["cost_usd"]) == 0


def test_a_demo_configured_to_act_as_openai(tmp_path: Path) -> None:
    cfg = base_config([{"id": "fake-openai", "kind": "demo", "wire_format": "openai", "models": ["pretend-*"]}])
    tw = Tollway(tmp_path, cfg)
    try:
        claude = anthropic.Anthropic(base_url=tw.url, api_key=cfg["server"]["master_key"], max_retries=0)
        with claude.messages.stream(model="pretend-gpt", max_tokens=50, messages=HELLO) as s:
            final = s.get_final_message()
        assert "Hello translated demo" in final.content[0].text
        assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
        r = openai_client(tw).responses.create(model="pretend-gpt", input="Hello translated demo")
        assert "Hello translated demo" in r.output_text  # OpenAI's own Responses API: no translation needed
        raw = claude.messages.with_raw_response.count_tokens(model="pretend-gpt", messages=HELLO)
        assert raw.headers["x-tollway-tokens-estimated"] == "true"  # a demo is no OpenAI model
    finally:
        tw.stop()
