"""Round trips: client request → canonical → provider request (spec-checked) → provider response
→ canonical → client response, for every client × provider pair; the client's SDK parses the
result (non-stream, through a mock HTTP transport) and gets what a direct call would give."""

from __future__ import annotations

import json

import pytest

from tests import specs

from fmt_support import CLIENT_REQUESTS, PROVIDER_RESPONSES, anthropic_client, openai_client
from tollway.formats import anthropic as fa
from tollway.formats import gemini as fg
from tollway.formats import openai_chat as fo
from tollway.formats import responses as fr


CLIENT_MODULES = {"openai_chat": fo, "anthropic": fa, "responses": fr}


def provider_request(provider: str, req):
    if provider == "openai_chat":
        b, dropped = fo.request_from_canonical(req, "gpt-4o")
        assert specs.errors("openai", "CreateChatCompletionRequest", b) == []
    elif provider == "anthropic":
        b, dropped = fa.request_from_canonical(req, "claude-sonnet-4-5")
        assert specs.errors("anthropic", "CreateMessageParams", b) == []
    else:
        b, dropped = fg.request_from_canonical(req, "gemini-2.5-flash")
    return b, dropped


def check_provider_request(provider: str, b: dict) -> None:
    """The conversation arrived intact in the provider's own shape."""
    text = json.dumps(b)
    assert "Be brief." in text and "And Paris?" in text and "iVBOR" in text
    if provider == "openai_chat":
        assert b["messages"][0]["role"] == "system"
        assert b["messages"][2]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert b["messages"][3]["role"] == "tool" and b["max_completion_tokens"] == 256
    elif provider == "anthropic":
        assert [m["role"] for m in b["messages"]] == ["user", "assistant", "user"]
        assert b["messages"][1]["content"][0]["input"] == {"city": "Lyon"}
        assert b["messages"][2]["content"][0]["type"] == "tool_result"
        assert b["max_tokens"] == 256 and b.get("stop_sequences", ["END"]) == ["END"]
    else:
        assert [c["role"] for c in b["contents"]] == ["user", "model", "user"]
        assert b["contents"][2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": {"temp": 20}}
        assert b["generationConfig"]["maxOutputTokens"] == 256


@pytest.mark.parametrize("provider", ["openai_chat", "anthropic", "gemini"])
@pytest.mark.parametrize("client", ["openai_chat", "anthropic", "responses"])
def test_round_trip(client, provider):
    body = CLIENT_REQUESTS[client]
    req = CLIENT_MODULES[client].request_to_canonical(body)
    pb, dropped = provider_request(provider, req)
    assert dropped == []
    check_provider_request(provider, pb)
    presp = {"openai_chat": fo, "anthropic": fa, "gemini": fg}[provider].response_to_canonical(PROVIDER_RESPONSES[provider])
    if client == "openai_chat":
        out = fo.response_from_canonical(presp, model="alias")
        assert specs.errors("openai", "CreateChatCompletionResponse", out) == []
        c = openai_client(json.dumps(out).encode(), "application/json").chat.completions.create(**body)
        msg = c.choices[0].message
        assert (c.model, msg.content, c.choices[0].finish_reason) == ("alias", "Checking Paris.", "tool_calls")
        assert [(t.id, t.function.name, json.loads(t.function.arguments)) for t in msg.tool_calls] == [
            ("call_1", "get_weather", {"city": "Paris"})]
        assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.prompt_tokens_details.cached_tokens) == (300, 40, 128)
    elif client == "anthropic":
        out = fa.response_from_canonical(presp, model="alias")
        assert specs.errors("anthropic", "Message", out) == []
        m = anthropic_client(json.dumps(out).encode(), "application/json").messages.create(
            model=body["model"], max_tokens=body["max_tokens"], messages=body["messages"], tools=body["tools"])
        assert [b.type for b in m.content] == ["text", "tool_use"]
        assert m.content[0].text == "Checking Paris." and m.stop_reason == "tool_use"
        assert (m.content[1].id, m.content[1].name, m.content[1].input) == ("call_1", "get_weather", {"city": "Paris"})
        assert (m.usage.input_tokens, m.usage.cache_read_input_tokens, m.usage.output_tokens) == (172, 128, 40)
    else:
        out = fr.response_from_canonical(presp, body, model="alias")
        assert specs.errors("openai", "Response", out) == []
        r = openai_client(json.dumps(out).encode(), "application/json").responses.create(**body)
        assert r.output_text == "Checking Paris." and r.status == "completed"
        fc = [o for o in r.output if o.type == "function_call"]
        assert [(f.call_id, f.name, json.loads(f.arguments)) for f in fc] == [("call_1", "get_weather", {"city": "Paris"})]
        assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.input_tokens_details.cached_tokens) == (300, 40, 128)
        assert r.instructions == "Be brief." and r.tools[0].name == "get_weather"
        # the next turn (previous_response_id) sees the whole conversation from storage
        history = fr.input_items(body) + fr.output_items(presp, out["id"])
        nxt = fr.request_to_canonical({"model": "alias", "input": [
            {"type": "function_call_output", "call_id": "call_1", "output": "22C"}]}, history)
        pb2, _ = provider_request(provider, nxt)
        assert "22C" in json.dumps(pb2) and "Checking Paris." in json.dumps(pb2)


@pytest.mark.parametrize("client", ["openai_chat", "anthropic"])  # Responses is client-only
def test_same_format_round_trip_is_lossless_for_modelled_fields(client):
    """client → canonical → same format (as a provider) keeps the conversation and params."""
    mod = CLIENT_MODULES[client]
    body = CLIENT_REQUESTS[client]
    back, dropped = mod.request_from_canonical(mod.request_to_canonical(body), "alias")
    assert dropped == []
    again = mod.request_to_canonical(back)
    first = mod.request_to_canonical(body)
    assert again.messages == first.messages and again.tools == first.tools and again.system == first.system
    assert (again.max_tokens, again.temperature, again.stop, again.tool_choice) == (
        first.max_tokens, first.temperature, first.stop, first.tool_choice)
