"""`tollway serve --demo` with no config and no provider key: every endpoint answers and is metered."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.harness import Tollway, anthropic_client, openai_client

HELLO = [{"role": "user", "content": "Hello demo"}]


@pytest.fixture
def oai(demo: Tollway) -> openai.OpenAI:
    return openai_client(demo, api_key="no-key-needed")  # no Tollway key is configured


@pytest.fixture
def claude(demo: Tollway) -> anthropic.Anthropic:
    return anthropic_client(demo, api_key="no-key-needed")


def assert_metered(demo: Tollway, trace: str, *, route: str, stream: bool, free: bool = False,
                   cost_header: str | None = None) -> dict[str, Any]:
    rec = demo.record(trace)
    assert rec["route"] == route and rec["provider"] == "demo" and rec["status"] == 200
    assert rec["stream"] is stream and rec["error_type"] is None
    assert rec["cost_usd"] is not None, rec.get("cost_note")
    if free:  # counting tokens consumes none: a zero cost, said so, and no usage to inflate the stats
        assert Decimal(rec["cost_usd"]) == 0 and rec["cost_note"]
    else:
        assert rec["input_tokens"] > 0
        assert rec["output_tokens"] is not None and rec["total_tokens"] > rec["input_tokens"]
        assert Decimal(rec["cost_usd"]) > 0
    if cost_header is not None:
        assert Decimal(cost_header) == Decimal(rec["cost_usd"])
    return rec


def test_the_server_runs_without_any_provider_or_key(demo: Tollway) -> None:
    status, health = demo.get("/health", key=None)
    assert status == 200 and health["status"] == "ok" and "demo" in health["providers"]
    assert all(p.startswith("demo") for p in health["providers"])  # nothing but the built-in demo
    log = demo.log()
    assert "no master key" in log  # the operator is warned that every route is open
    assert (demo.workdir / ".tollway" / "tollway.db").exists()  # the default store


def test_models_list_names_demo(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]
    assert "demo" in ids


def test_chat(oai: openai.OpenAI, demo: Tollway) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="demo", messages=HELLO)
    c = raw.parse()
    text = c.choices[0].message.content
    assert text and "Hello demo" in text and c.choices[0].finish_reason == "stop"
    rec = assert_metered(demo, raw.headers["x-tollway-trace-id"], route="openai.chat", stream=False,
                         cost_header=raw.headers["x-tollway-cost-usd"])
    assert (rec["input_tokens"], rec["output_tokens"]) == (c.usage.prompt_tokens, c.usage.completion_tokens)
    assert rec["tokens_estimated"] is False


def test_chat_stream(oai: openai.OpenAI, demo: Tollway) -> None:
    with oai.chat.completions.with_streaming_response.create(model="demo", messages=HELLO, stream=True,
                                                              stream_options={"include_usage": True}) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Hello demo" in text and len(chunks) > 3
    usage = chunks[-1].usage
    assert usage is not None
    rec = assert_metered(demo, trace, route="openai.chat", stream=True)
    assert (rec["input_tokens"], rec["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert rec["ttft_ms"] is not None


def test_chat_stream_without_usage_option_is_still_metered(oai: openai.OpenAI, demo: Tollway) -> None:
    with oai.chat.completions.with_streaming_response.create(model="demo", messages=HELLO, stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)  # the client sees the stream it asked for
    assert_metered(demo, trace, route="openai.chat", stream=True)


def test_completions(oai: openai.OpenAI, demo: Tollway) -> None:
    raw = oai.completions.with_raw_response.create(model="demo", prompt="Say hi")
    assert "Say hi" in raw.parse().choices[0].text
    assert_metered(demo, raw.headers["x-tollway-trace-id"], route="openai.completions", stream=False,
                   cost_header=raw.headers["x-tollway-cost-usd"])


def test_completions_stream(oai: openai.OpenAI, demo: Tollway) -> None:
    with oai.completions.with_streaming_response.create(model="demo", prompt="Say hi", stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        text = "".join(c.choices[0].text for c in raw.parse() if c.choices)
    assert "Say hi" in text
    assert_metered(demo, trace, route="openai.completions", stream=True)


def test_embeddings(oai: openai.OpenAI, demo: Tollway) -> None:
    raw = oai.embeddings.with_raw_response.create(model="demo-embed", input=["one", "two"])
    e = raw.parse()
    assert len(e.data) == 2 and len(e.data[0].embedding) > 0 and e.data[0].embedding != e.data[1].embedding
    rec = demo.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "openai.embeddings" and rec["provider"] == "demo" and rec["status"] == 200
    assert rec["input_tokens"] == e.usage.prompt_tokens > 0
    assert rec["cost_usd"] is not None and Decimal(rec["cost_usd"]) > 0


def test_embeddings_base64_as_the_sdk_asks_by_default(oai: openai.OpenAI) -> None:
    # the openai SDK asks for base64 and decodes it: the vectors must survive that
    e = oai.embeddings.create(model="demo", input="hello", dimensions=8)
    assert len(e.data[0].embedding) == 8 and all(-1.0 <= x <= 1.0 for x in e.data[0].embedding)


def test_responses(oai: openai.OpenAI, demo: Tollway) -> None:
    raw = oai.responses.with_raw_response.create(model="demo", input="Hello responses")
    r = raw.parse()
    assert "Hello responses" in r.output_text and r.status == "completed"
    rec = assert_metered(demo, raw.headers["x-tollway-trace-id"], route="openai.responses", stream=False,
                         cost_header=raw.headers["x-tollway-cost-usd"])
    assert (rec["input_tokens"], rec["output_tokens"]) == (r.usage.input_tokens, r.usage.output_tokens)


def test_responses_stream(oai: openai.OpenAI, demo: Tollway) -> None:
    with oai.responses.with_streaming_response.create(model="demo", input="Hello responses", stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        events = list(raw.parse())
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    completed = events[-1]
    assert completed.type == "response.completed" and "Hello responses" in deltas
    rec = assert_metered(demo, trace, route="openai.responses", stream=True)
    assert rec["output_tokens"] == completed.response.usage.output_tokens


def test_messages(claude: anthropic.Anthropic, demo: Tollway) -> None:
    raw = claude.messages.with_raw_response.create(model="demo", max_tokens=100, messages=HELLO)
    m = raw.parse()
    assert "Hello demo" in m.content[0].text and m.stop_reason == "end_turn"
    rec = assert_metered(demo, raw.headers["x-tollway-trace-id"], route="anthropic.messages", stream=False,
                         cost_header=raw.headers["x-tollway-cost-usd"])
    assert (rec["input_tokens"], rec["output_tokens"]) == (m.usage.input_tokens, m.usage.output_tokens)


def test_messages_stream(claude: anthropic.Anthropic, demo: Tollway) -> None:
    with claude.messages.stream(model="demo", max_tokens=100, messages=HELLO) as s:
        final = s.get_final_message()
        trace = s.response.headers["x-tollway-trace-id"]
    assert "Hello demo" in final.content[0].text
    rec = assert_metered(demo, trace, route="anthropic.messages", stream=True)
    assert (rec["input_tokens"], rec["output_tokens"]) == (final.usage.input_tokens, final.usage.output_tokens)


def test_count_tokens(claude: anthropic.Anthropic, demo: Tollway) -> None:
    raw = claude.messages.with_raw_response.count_tokens(model="demo", messages=HELLO)
    n = raw.parse().input_tokens
    assert n > 0
    assert_metered(demo, raw.headers["x-tollway-trace-id"], route="anthropic.count_tokens", stream=False, free=True)


def test_unknown_model_names_demo(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as ei:
        oai.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert "demo" in ei.value.body["message"]


def test_records_and_stats_cover_every_call(demo: Tollway, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model="demo", messages=HELLO, extra_headers={"x-tollway-source": "demo-stats"})
    rows = demo.records(source="demo-stats")
    assert len(rows) == 1 and rows[0]["model_requested"] == "demo"
    status, stats = demo.get("/v1/stats?source=demo-stats", key=None)
    assert status == 200 and stats["totals"]["requests"] == 1 and Decimal(stats["totals"]["cost_usd"]) > 0


def test_demo_model_can_be_asked_for_under_another_demo_name(oai: openai.OpenAI, demo: Tollway) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="demo-large", messages=HELLO)
    assert raw.parse().model == "demo-large"
    assert demo.record(raw.headers["x-tollway-trace-id"])["model_served"] == "demo-large"


@pytest.mark.parametrize("path,shape,body", [
    ("/v1/chat/completions", "openai", {"model": "demo", "messages": 5}),
    ("/v1/chat/completions", "openai", {"model": "demo", "messages": "Hello"}),
    ("/v1/chat/completions", "openai", {"model": "demo", "messages": [1, 2]}),
    ("/v1/chat/completions", "openai", {"model": "demo", "messages": [{"role": "user", "content": 5}]}),
    ("/v1/chat/completions", "openai", {"model": "demo", "stream": True,
                                        "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}),
    ("/v1/completions", "openai", {"model": "demo", "prompt": {"a": 1}}),
    ("/v1/embeddings", "openai", {"model": "demo", "input": {"a": 1}}),
    ("/v1/embeddings", "openai", {"model": "demo", "input": "x", "dimensions": "many"}),
    ("/v1/responses", "openai", {"model": "demo", "input": 5}),
    ("/v1/responses", "openai", {"model": "demo", "input": [{"role": "user", "content": [{"type": "input_text",
                                                                                        "text": None}]}]}),
    ("/v1/messages", "anthropic", {"model": "demo", "max_tokens": 5, "messages": {"role": "user"}}),
    ("/v1/messages", "anthropic", {"model": "demo", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]}),
    ("/v1/messages/count_tokens", "anthropic", {"model": "demo", "messages": [None]}),
    ("/v1/messages", "anthropic", {"model": "demo-claude", "max_tokens": 5, "messages": [{"role": "user",
                                                                                          "content": 5}]}),
    ("/v1/chat/completions", "openai", {"model": "demo-gemini", "messages": [{"role": "user", "content": 5}]}),
])
def test_wrongly_typed_requests_are_a_400_in_the_clients_format(demo: Tollway, path: str, shape: str,
                                                                body: dict) -> None:
    """The demo validates like a real provider: a 400 in the format, never a 500."""
    req = urllib.request.Request(demo.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", "anthropic-version": "2023-06-01"})
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(req, timeout=10)
    assert ei.value.code == 400
    answer = json.loads(ei.value.read())
    if shape == "anthropic":
        assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    else:
        assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["message"]
    rec = demo.record(ei.value.headers["x-tollway-trace-id"])
    assert rec["status"] == 400 and rec["error_type"] != "internal"


def test_workdir_is_the_only_place_written(demo: Tollway) -> None:
    written = {p.name for p in Path(demo.workdir).iterdir()}
    assert written <= {".tollway", "tollway.log"}, written
