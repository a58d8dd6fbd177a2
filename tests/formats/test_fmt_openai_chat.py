"""OpenAI Chat Completions ⇄ canonical: table tests for both directions, checked against the
OpenAI spec (CreateChatCompletionRequest / CreateChatCompletionResponse)."""

from __future__ import annotations

import json

import pytest

from tests import specs

from tollway.formats import openai_chat as fo
from tollway.formats.canonical import (
    CanonicalRequest, CanonicalResponse, Document, Image, Message, NamedToolChoice, Reasoning,
    ResponseFormat, Text, Thinking, ToolCall, ToolDef, ToolResult,
)
from tollway.formats.errors import TranslationError
from tollway.usage import Usage


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


def body(**kw) -> dict:
    b = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    b.update(kw)
    return b


# --- client request → canonical ----------------------------------------------------------------

def test_system_and_developer_messages_become_system():
    r = fo.request_to_canonical(body(messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "hi"},
    ]))
    assert [p.text for p in r.system] == ["You are terse.", "Answer in French."]
    assert [m.role for m in r.messages] == ["user"]
    assert r.source_format == "openai_chat"


def test_multi_turn_images_url_and_base64_and_files():
    r = fo.request_to_canonical(body(messages=[
        {"role": "user", "content": [
            {"type": "text", "text": "compare"},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/AAAA"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
        ]},
        {"role": "assistant", "content": "They differ."},
        {"role": "user", "content": "why?"},
    ]))
    u = r.messages[0].content
    assert u[0] == Text("compare")
    assert u[1] == Image(url="https://x.test/a.png", detail="high")
    assert u[2] == Image(data="/9j/AAAA", media_type="image/jpeg")
    assert u[3] == Document(data="JVBERi0x", media_type="application/pdf", filename="a.pdf")
    assert [m.role for m in r.messages] == ["user", "assistant", "user"]


def test_tools_tool_calls_and_results_round_trip_names():
    r = fo.request_to_canonical(body(
        messages=[
            {"role": "user", "content": "weather in Paris and Tokyo?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
        ],
        tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False))
    assert r.tools == [ToolDef("get_weather", "Weather for a city", WEATHER["function"]["parameters"])]
    assert r.tool_choice == NamedToolChoice("get_weather")
    assert r.parallel_tool_calls is False
    calls = r.messages[1].content
    assert calls == [ToolCall("call_1", "get_weather", "{\"city\":\"Paris\"}"),
                     ToolCall("call_2", "get_weather", "{\"city\":\"Tokyo\"}")]
    assert r.messages[2].content == [ToolResult("call_1", [Text("18C")], "get_weather")]
    assert r.messages[3].content[0].text == "25C"


@pytest.mark.parametrize("choice,expected", [
    ("auto", "auto"), ("none", "none"), ("required", "required"),
    ({"type": "function", "function": {"name": "get_weather"}}, NamedToolChoice("get_weather")),
])
def test_tool_choice_variants(choice, expected):
    assert fo.request_to_canonical(body(tools=[WEATHER], tool_choice=choice)).tool_choice == expected


def test_allowed_tools_choice_restricts_tools():
    other = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}
    r = fo.request_to_canonical(body(tools=[WEATHER, other], tool_choice={
        "type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
            {"type": "function", "function": {"name": "get_weather"}}]}}))
    assert [t.name for t in r.tools] == ["get_weather"] and r.tool_choice == "required"


def test_legacy_functions_and_function_call():
    r = fo.request_to_canonical(body(
        messages=[{"role": "user", "content": "x"},
                  {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": "{}"}},
                  {"role": "function", "name": "get_weather", "content": "sunny"}],
        functions=[WEATHER["function"]], function_call={"name": "get_weather"}))
    assert r.tools[0].name == "get_weather" and r.tool_choice == NamedToolChoice("get_weather")
    call = r.messages[1].content[0]
    assert r.messages[2].content[0].tool_call_id == call.id


@pytest.mark.parametrize("kw,expected", [
    ({"max_tokens": 100}, 100),
    ({"max_completion_tokens": 200}, 200),
    ({"max_tokens": 100, "max_completion_tokens": 200}, 200),
    ({}, None),
])
def test_max_tokens_params(kw, expected):
    assert fo.request_to_canonical(body(**kw)).max_tokens == expected


@pytest.mark.parametrize("rf,expected", [
    ({"type": "text"}, ResponseFormat("text")),
    ({"type": "json_object"}, ResponseFormat("json_object")),
    ({"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}, "strict": True}},
     ResponseFormat("json_schema", "p", {"type": "object"}, True)),
])
def test_response_format(rf, expected):
    assert fo.request_to_canonical(body(response_format=rf)).response_format == expected


def test_sampling_stop_stream_reasoning_user_and_extras():
    r = fo.request_to_canonical(body(temperature=0.2, top_p=0.9, stop="END", stream=True,
                                     stream_options={"include_usage": True}, reasoning_effort="high",
                                     user="u-1", metadata={"k": "v"}, seed=7, logprobs=True, n=1))
    assert (r.temperature, r.top_p, r.stop, r.stream, r.include_usage) == (0.2, 0.9, ["END"], True, True)
    assert r.reasoning == Reasoning(effort="high")
    assert (r.user, r.metadata) == ("u-1", {"k": "v"})
    assert r.extra == {"seed": 7, "logprobs": True, "n": 1}
    assert fo.request_to_canonical(body(stop=["a", "b"])).stop == ["a", "b"]
    assert fo.request_to_canonical(body(stream=True)).include_usage is False


def test_assistant_reasoning_content_from_compat_clients_is_thinking():
    r = fo.request_to_canonical(body(messages=[{"role": "user", "content": "q"},
                                               {"role": "assistant", "content": "a", "reasoning_content": "hmm"}]))
    assert r.messages[1].content == [Thinking("hmm"), Text("a")]


@pytest.mark.parametrize("bad,param", [
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "messages[0].content[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}]},
     "messages[0].tool_calls[0].function"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "custom", "custom": {}}]},
     "tools[0].type"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "10"}, "max_tokens"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}},
     "response_format.type"),
])
def test_malformed_requests_raise_translation_error(bad, param):
    with pytest.raises(TranslationError) as e:
        fo.request_to_canonical(bad)
    assert e.value.param == param


def test_non_dict_body():
    with pytest.raises(TranslationError):
        fo.request_to_canonical([])  # type: ignore[arg-type]


# --- canonical → provider request --------------------------------------------------------------

def canonical_full() -> CanonicalRequest:
    return CanonicalRequest(
        model="x", source_format="anthropic",
        system=[Text("Be brief."), Text("Use metric.")],
        messages=[
            Message("user", [Text("look"), Image(data="iVBOR", media_type="image/png"), Image(url="https://x.test/a.jpg"),
                             Document(data="JVBER", media_type="application/pdf", filename="r.pdf")]),
            Message("assistant", [Thinking("plan", "sig"), Text("Checking."),
                                  ToolCall("toolu_1", "get_weather", "{\"city\":\"Paris\"}"),
                                  ToolCall("toolu_2", "get_weather", "{\"city\":\"Oslo\"}")]),
            Message("tool", [ToolResult("toolu_1", [Text("18C")], "get_weather"),
                             ToolResult("toolu_2", [Text("3C"), Image(data="AAA", media_type="image/png")], is_error=True)]),
            Message("user", [Text("thanks")]),
        ],
        tools=[ToolDef("get_weather", "w", {"type": "object", "properties": {"city": {"type": "string"}}})],
        tool_choice="required", parallel_tool_calls=False, max_tokens=500, temperature=0.7, top_p=0.9, top_k=40,
        stop=["\n\nHuman:"], response_format=ResponseFormat("json_schema", None, {"type": "object"}),
        stream=True, reasoning=Reasoning(budget_tokens=5000), user="u1",
        extra={"service_tier": "standard_only", "cache_control": {"type": "ephemeral"}},
    )


def test_request_from_canonical_full_shape_and_dropped():
    b, dropped = fo.request_from_canonical(canonical_full(), "gpt-4o")
    assert specs.errors("openai", "CreateChatCompletionRequest", b) == []
    assert b["messages"][0] == {"role": "system", "content": "Be brief.\n\nUse metric."}
    user = b["messages"][1]["content"]
    assert user[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
    assert user[2] == {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}
    assert user[3]["file"]["file_data"] == "data:application/pdf;base64,JVBER"
    asst = b["messages"][2]
    assert asst["content"] == "Checking." and "thinking" not in json.dumps(asst)
    assert [c["id"] for c in asst["tool_calls"]] == ["toolu_1", "toolu_2"]
    assert b["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}
    assert b["messages"][4] == {"role": "tool", "tool_call_id": "toolu_2", "content": "3C"}
    # the image from the tool result follows as a user message (tool messages are text-only)
    assert b["messages"][5]["role"] == "user" and b["messages"][5]["content"][0]["type"] == "image_url"
    assert b["messages"][6] == {"role": "user", "content": "thanks"}
    assert b["tool_choice"] == "required" and b["parallel_tool_calls"] is False
    assert b["max_completion_tokens"] == 500 and "max_tokens" not in b
    assert b["stop"] == ["\n\nHuman:"]
    assert b["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}}
    assert b["stream_options"] == {"include_usage": True}
    assert b["reasoning_effort"] == "medium"
    assert b["user"] == "u1"
    assert sorted(dropped) == ["service_tier", "top_k"]


def test_request_from_canonical_compat_mode():
    b, dropped = fo.request_from_canonical(canonical_full(), "llama3", compat=True,
                                           reasoning_field="reasoning_content")
    assert b["max_tokens"] == 500 and b["top_k"] == 40 and "top_k" not in dropped
    assert b["messages"][2]["reasoning_content"] == "plan"


def test_openai_family_extras_pass_through_and_others_drop():
    req = fo.request_to_canonical(body(seed=1, logit_bias={"50256": -100}, presence_penalty=0.5, n=1,
                                       prompt_cache_key="k", some_future_param=True))
    b, dropped = fo.request_from_canonical(req, "gpt-4o")
    assert (b["seed"], b["presence_penalty"], b["prompt_cache_key"]) == (1, 0.5, "k")
    assert b["n"] == 1
    assert dropped == ["some_future_param"]


def test_named_tool_choice_and_json_object():
    req = CanonicalRequest(model="x", messages=[Message("user", [Text("q")])],
                           tools=[ToolDef("f")], tool_choice=NamedToolChoice("f"),
                           response_format=ResponseFormat("json_object"), stop=list("abcde"))
    b, dropped = fo.request_from_canonical(req, "gpt-4o")
    assert b["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert b["response_format"] == {"type": "json_object"}
    assert b["stop"] == list("abcd") and dropped == ["stop"]
    assert "parallel_tool_calls" not in b


def test_document_url_cannot_go_to_openai():
    req = CanonicalRequest(model="x", messages=[Message("user", [Document(url="https://x.test/a.pdf")])])
    with pytest.raises(TranslationError):
        fo.request_from_canonical(req, "gpt-4o")


# --- responses ---------------------------------------------------------------------------------

OA_RESPONSE = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion", "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "Checking.", "refusal": None, "annotations": [],
        "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        "logprobs": None, "finish_reason": "tool_calls"}],
    "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
              "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 10, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_fc9f1d7035",
}


def test_response_to_canonical():
    r = fo.response_to_canonical(OA_RESPONSE)
    assert r.content == [Text("Checking."), ToolCall("call_a", "get_weather", "{\"city\":\"Paris\"}")]
    assert r.stop_reason == "tool_use"
    assert r.usage == Usage(1117, 46, cached_tokens=1024, reasoning_tokens=10)
    assert (r.id, r.model, r.created) == (OA_RESPONSE["id"], "gpt-4o-2024-08-06", 1741570283)


@pytest.mark.parametrize("finish,stop", [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
                                         ("content_filter", "content_filter"), ("function_call", "tool_use")])
def test_response_stop_reasons(finish, stop):
    b = json.loads(json.dumps(OA_RESPONSE))
    b["choices"][0]["finish_reason"] = finish
    if finish != "tool_calls":
        b["choices"][0]["message"].pop("tool_calls")
    assert fo.response_to_canonical(b).stop_reason == stop


def test_response_from_canonical_matches_spec_and_sdk():
    import openai

    resp = CanonicalResponse("msg_1", "claude-x", [Thinking("t", "s"), Text("Hi "), Text("there"),
                                                   ToolCall("toolu_1", "f", "{\"a\":1}")],
                             "tool_use", None, Usage(100, 20, 30, 10, 5))
    b = fo.response_from_canonical(resp)
    assert specs.errors("openai", "CreateChatCompletionResponse", b) == []
    c = openai.types.chat.ChatCompletion.model_validate(b)
    assert c.choices[0].message.content == "Hi there"
    assert c.choices[0].finish_reason == "tool_calls"
    assert c.choices[0].message.tool_calls[0].function.arguments == "{\"a\":1}"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens) == (100, 20, 120)
    assert c.usage.prompt_tokens_details.cached_tokens == 30
    assert c.usage.completion_tokens_details.reasoning_tokens == 5
    assert c.id.startswith("chatcmpl")
    assert fo.response_from_canonical(resp, model="alias")["model"] == "alias"


def test_refusal_round_trip():
    b = json.loads(json.dumps(OA_RESPONSE))
    b["choices"][0] = {"index": 0, "finish_reason": "content_filter", "logprobs": None,
                       "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."}}
    r = fo.response_to_canonical(b)
    assert r.refusal == "I can't help with that." and r.text == "I can't help with that."
    out = fo.response_from_canonical(r)
    assert out["choices"][0]["message"]["refusal"] == "I can't help with that."


@pytest.mark.parametrize("bad", [{}, {"choices": []}, {"choices": "x"}, [], {"choices": [None]}])
def test_malformed_provider_response(bad):
    with pytest.raises(TranslationError):
        fo.response_to_canonical(bad)
