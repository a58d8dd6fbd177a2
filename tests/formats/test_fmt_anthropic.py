"""Anthropic Messages ⇄ canonical: table tests for both directions, checked against the
Anthropic spec (CreateMessageParams, Message)."""

from __future__ import annotations

import json

import pytest

from tests import specs

from tollway.formats import anthropic as fa
from tollway.formats import openai_chat as fo
from tollway.formats.canonical import (
    CanonicalRequest, CanonicalResponse, Document, Image, Message, NamedToolChoice, Reasoning,
    ResponseFormat, Text, Thinking, ToolCall, ToolDef, ToolResult,
)
from tollway.formats.errors import TranslationError
from tollway.usage import Usage



def ok(b: dict) -> dict:
    errs = specs.errors("anthropic", "CreateMessageParams", b)
    assert errs == [], errs
    return b


# --- client request → canonical ----------------------------------------------------------------

FULL = {
    "model": "claude-sonnet-4-5", "max_tokens": 1024,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "What's in this and the weather?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
             "title": "r.pdf"},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "need weather", "signature": "EqQB"},
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
            {"type": "text", "text": "and tomorrow?"},
        ]},
    ],
    "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object", "properties": {}}}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"], "stream": True,
    "metadata": {"user_id": "u-1"}, "thinking": {"type": "enabled", "budget_tokens": 2048},
    "service_tier": "auto",
}


def test_request_to_canonical_full():
    ok(FULL)
    r = fa.request_to_canonical(FULL)
    assert r.system == [Text("Be brief.")]
    u = r.messages[0].content
    assert u[1] == Image(data="iVBOR", media_type="image/png")
    assert u[2] == Image(url="https://x.test/a.jpg")
    assert u[3] == Document(data="JVBER", media_type="application/pdf", filename="r.pdf")
    a = r.messages[1].content
    assert a == [Thinking("need weather", "EqQB"), Thinking("EmwKAhgB", redacted=True), Text("Checking."),
                 ToolCall("toolu_01", "get_weather", '{"city":"Paris"}')]
    # tool results split out into a tool message, the trailing text stays a user message
    assert [m.role for m in r.messages] == ["user", "assistant", "tool", "user"]
    assert r.messages[2].content == [ToolResult("toolu_01", [Text("18C")], "get_weather")]
    assert r.tool_choice == "required" and r.parallel_tool_calls is False
    assert (r.max_tokens, r.temperature, r.top_p, r.top_k, r.stop) == (1024, 0.5, 0.9, 40, ["END"])
    assert r.reasoning == Reasoning(budget_tokens=2048)
    assert r.user == "u-1" and r.stream and r.include_usage
    assert r.extra == {"service_tier": "auto"}


@pytest.mark.parametrize("tc,expected", [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "f"}, NamedToolChoice("f")),
])
def test_tool_choice_in(tc, expected):
    b = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tool_choice": tc}
    assert fa.request_to_canonical(b).tool_choice == expected


def test_output_config_json_schema_and_effort():
    b = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
         "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": {"type": "object"}}},
         "thinking": {"type": "adaptive"}}
    r = fa.request_to_canonical(b)
    assert r.response_format == ResponseFormat("json_schema", schema={"type": "object"})
    assert r.reasoning == Reasoning(effort="low")


@pytest.mark.parametrize("bad,param", [
    ({"model": "m", "max_tokens": 1}, "messages"),
    ({"model": "m", "messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "bogus"}]}]}, "messages[0].content[0].type"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "x", "name": "y", "input": {}}]}]},
     "messages[0].content[0].type"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]},
     "messages[0].content[0].source.data"),
    ({"model": "m", "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
    ({"model": "m", "messages": [], "tool_choice": {"type": "maybe"}}, "tool_choice.type"),
    ({"model": "m", "messages": [], "thinking": {"type": "sometimes"}}, "thinking.type"),
    ({"model": "m", "messages": [], "max_tokens": 1.5}, "max_tokens"),
])
def test_malformed_requests(bad, param):
    with pytest.raises(TranslationError) as e:
        fa.request_to_canonical(bad)
    assert e.value.param == param


# --- canonical → provider request --------------------------------------------------------------

def openai_client_body(**kw) -> dict:
    b = {"model": "gpt-4o", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "weather?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "3C"},
        {"role": "user", "content": "thanks"},
    ], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}
    b.update(kw)
    return b


def test_openai_client_to_anthropic_request():
    req = fo.request_to_canonical(openai_client_body(
        max_completion_tokens=300, temperature=1.5, stop=["x"], tool_choice="required", parallel_tool_calls=False,
        user="u1", seed=3, logprobs=True, top_logprobs=2, n=2, presence_penalty=0.1, frequency_penalty=0.2,
        logit_bias={"1": 2}, response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
        stream=True, stream_options={"include_usage": True}))
    b, dropped = fa.request_from_canonical(req, "claude-sonnet-4-5")
    ok(b)
    assert b["system"] == [{"type": "text", "text": "Be brief."}]
    assert b["messages"][0]["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}
    assert b["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}}]}
    # both tool results and the following text merge into one user message, results first
    assert b["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "3C"},
        {"type": "text", "text": "thanks"}]}
    assert b["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert (b["max_tokens"], b["temperature"], b["stop_sequences"]) == (300, 1.0, ["x"])
    assert b["metadata"] == {"user_id": "u1"}
    assert b["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    assert b["stream"] is True and "stream_options" not in b
    assert sorted(dropped) == sorted(["seed", "logprobs", "top_logprobs", "n", "presence_penalty",
                                      "frequency_penalty", "logit_bias"])


def test_default_max_tokens_is_a_parameter():
    req = fo.request_to_canonical({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert fa.request_from_canonical(req, "c")[0]["max_tokens"] == fa.DEFAULT_MAX_TOKENS == 4096
    assert fa.request_from_canonical(req, "c", default_max_tokens=999)[0]["max_tokens"] == 999


def test_reasoning_effort_becomes_thinking_budget_and_drops_incompatible_sampling():
    req = fo.request_to_canonical({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                   "reasoning_effort": "high", "temperature": 0.2, "max_completion_tokens": 20000})
    b, dropped = fa.request_from_canonical(req, "c")
    ok(b)
    assert b["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert b["max_tokens"] == 20000 and "temperature" not in b and dropped == ["temperature"]
    # no max tokens: the default is added on top of the budget
    req.max_tokens = None
    assert fa.request_from_canonical(req, "c")[0]["max_tokens"] == 4096 + 16384
    # budget larger than max tokens is clamped below it
    req.max_tokens = 4000
    assert fa.request_from_canonical(req, "c")[0]["thinking"]["budget_tokens"] == 2000
    req.reasoning = Reasoning(effort="none", enabled=False)
    assert "thinking" not in fa.request_from_canonical(req, "c")[0]


def test_thinking_off_when_last_tool_turn_has_no_signed_thinking():
    """An OpenAI client cannot carry thinking blocks; Anthropic would 400 a thinking request
    whose last assistant tool_use turn lacks one, so thinking is turned off and reported."""
    req = fo.request_to_canonical(openai_client_body(reasoning_effort="medium"))
    req.messages.pop()  # end on the tool results: mid tool loop
    b, dropped = fa.request_from_canonical(req, "c")
    assert "thinking" not in b and dropped == ["reasoning_effort"]  # named as the client sent it


def test_thinking_history_kept_only_with_anthropic_signatures():
    req = CanonicalRequest(model="m", messages=[
        Message("user", [Text("q")]),
        Message("assistant", [Thinking("a", "EqQB"), Thinking("b", "gemini:CiQ"), Thinking("c"),
                              Thinking("RED", redacted=True), Text("x")]),
        Message("user", [Text("q2")])])
    b, _ = fa.request_from_canonical(req, "c")
    ok(b)
    assert b["messages"][1]["content"] == [{"type": "thinking", "thinking": "a", "signature": "EqQB"},
                                           {"type": "redacted_thinking", "data": "RED"},
                                           {"type": "text", "text": "x"}]


def test_tool_ids_sanitized_consistently_and_media_in_tool_results():
    req = CanonicalRequest(model="m", messages=[
        Message("user", [Text("q")]),
        Message("assistant", [ToolCall("call:1/a", "f", "{}")]),
        Message("tool", [ToolResult("call:1/a", [Text("see"), Image(data="AA", media_type="image/png")], is_error=True)])])
    b, _ = fa.request_from_canonical(req, "c")
    ok(b)
    assert b["messages"][1]["content"][0]["id"] == b["messages"][2]["content"][0]["tool_use_id"] == "call_1_a"
    assert b["messages"][2]["content"][0]["is_error"] is True
    assert b["messages"][2]["content"][0]["content"][1]["type"] == "image"


@pytest.mark.parametrize("part", [Image(data="x", media_type="image/tiff"), Image(url="gs://b/x.png"),
                                  Document(file_id="file-abc"), Document(data="x", media_type="application/zip")])
def test_unsupported_media_raises(part):
    req = CanonicalRequest(model="m", messages=[Message("user", [part])])
    with pytest.raises(TranslationError):
        fa.request_from_canonical(req, "c")


def test_invalid_tool_arguments_raise_translation_error():
    req = CanonicalRequest(model="m", messages=[Message("user", [Text("q")]),
                                                Message("assistant", [ToolCall("c", "f", "{not json")])])
    with pytest.raises(TranslationError):
        fa.request_from_canonical(req, "c")


def test_json_object_is_dropped_and_named_choice_and_none():
    req = CanonicalRequest(model="m", messages=[Message("user", [Text("q")])], tools=[ToolDef("f")],
                           tool_choice=NamedToolChoice("f"), response_format=ResponseFormat("json_object"),
                           metadata={"a": "b"})
    b, dropped = fa.request_from_canonical(req, "c")
    ok(b)
    assert b["tool_choice"] == {"type": "tool", "name": "f"}
    assert dropped == ["response_format", "metadata"]
    req.tool_choice = "none"
    assert fa.request_from_canonical(req, "c")[0]["tool_choice"] == {"type": "none"}


def test_text_document_source():
    import base64
    req = CanonicalRequest(model="m", messages=[Message("user", [Document(
        data=base64.b64encode(b"hello").decode(), media_type="text/plain", filename="a.txt")])])
    b, _ = fa.request_from_canonical(req, "c")
    ok(b)
    assert b["messages"][0]["content"][0] == {"type": "document", "title": "a.txt",
                                              "source": {"type": "text", "media_type": "text/plain", "data": "hello"}}


# --- responses ---------------------------------------------------------------------------------

A_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "Let me think", "signature": "EqQB"},
        {"type": "text", "text": "I'll check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 50, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 100,
              "output_tokens": 30, "output_tokens_details": {"thinking_tokens": 12}},
}


def test_response_to_canonical_sums_cache_into_input():
    r = fa.response_to_canonical(A_MESSAGE)
    assert r.content == [Thinking("Let me think", "EqQB"), Text("I'll check."),
                         ToolCall("toolu_01", "get_weather", '{"city":"Paris"}')]
    assert r.stop_reason == "tool_use"
    assert r.usage == Usage(170, 30, cached_tokens=100, cache_creation_tokens=20, reasoning_tokens=12)


@pytest.mark.parametrize("reason,stop", [("end_turn", "end_turn"), ("max_tokens", "max_tokens"),
                                         ("stop_sequence", "stop_sequence"), ("refusal", "content_filter"),
                                         ("pause_turn", "end_turn"), ("tool_use", "tool_use")])
def test_stop_reasons_in(reason, stop):
    m = dict(A_MESSAGE, stop_reason=reason)
    assert fa.response_to_canonical(m).stop_reason == stop


def test_response_from_canonical_spec_and_sdk():
    import anthropic

    resp = CanonicalResponse("chatcmpl-1", "gpt-4o", [Text("Hi"), ToolCall("call_1", "f", '{"a": [1, 2]}')],
                             "tool_use", None, Usage(170, 30, cached_tokens=100, cache_creation_tokens=20))
    b = fa.response_from_canonical(resp)
    # no `citations` key when there are none: `citations: null` breaks the Vercel AI SDK's Anthropic
    # provider (the spec check fills it in: see specs.with_citations)
    assert "citations" not in b["content"][0]
    assert specs.errors("anthropic", "Message", b) == []
    m = anthropic.types.Message.model_validate(b)
    assert m.id.startswith("msg_") and m.stop_reason == "tool_use"
    assert m.content[1].input == {"a": [1, 2]}
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens,
            m.usage.output_tokens) == (50, 100, 20, 30)


def test_stop_sequence_survives():
    r = fa.response_to_canonical(dict(A_MESSAGE, stop_reason="stop_sequence", stop_sequence="END"))
    assert (r.stop_reason, r.stop_sequence) == ("stop_sequence", "END")
    b = fa.response_from_canonical(r)
    assert (b["stop_reason"], b["stop_sequence"]) == ("stop_sequence", "END")


@pytest.mark.parametrize("bad", [{}, {"content": "x"}, [], None])
def test_malformed_provider_response(bad):
    with pytest.raises(TranslationError):
        fa.response_to_canonical(bad)  # type: ignore[arg-type]


def test_usage_round_trip():
    u = Usage(170, 30, cached_tokens=100, cache_creation_tokens=20, reasoning_tokens=5)
    assert fa.usage_to_canonical(fa.usage_from_canonical(u)) == u
    delta = fa.usage_to_canonical({"output_tokens": 99}, Usage(170, 1, 100, 20))
    assert delta == Usage(170, 99, 100, 20)
    delta = fa.usage_to_canonical({"output_tokens": 99, "cache_read_input_tokens": 110}, Usage(170, 1, 100, 20))
    assert delta.input_tokens == 180 and delta.cached_tokens == 110
    assert json.dumps(fa.usage_from_canonical(Usage()))  # unknown usage renders as zeros


def test_dropped_names_use_the_clients_own_param_names():
    body = {"model": "m", "max_tokens": 100, "top_k": 5, "stop_sequences": list("abcdef"),
            "messages": [{"role": "user", "content": "x"}]}
    _, dropped = fo.request_from_canonical(fa.request_to_canonical(body), "gpt-4o")
    assert sorted(dropped) == ["stop_sequences", "top_k"]
