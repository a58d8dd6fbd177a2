"""Responses API as a client format: request → canonical (with previous_response_id history),
canonical → Response object (checked against the spec and the SDK), stored output items."""

from __future__ import annotations

import json

import openai
import pytest

from tests import specs

from fmt_support import openai_client
from tollway.formats import anthropic as fa
from tollway.formats import gemini as fg
from tollway.formats import openai_chat as fo
from tollway.formats import responses as fr
from tollway.formats.canonical import (
    CanonicalResponse, Document, Image, NamedToolChoice, Reasoning, ResponseFormat, Text, Thinking, ToolCall,
    ToolDef, ToolResult,
)
from tollway.formats.errors import TranslationError
from tollway.usage import Usage


TOOL = {"type": "function", "name": "get_weather", "description": "w",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": False}


def test_string_input_and_instructions():
    r = fr.request_to_canonical({"model": "m", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 64,
                                 "temperature": 0.3, "top_p": 0.5, "store": True, "stream": True})
    assert r.system == [Text("Be brief.")]
    assert [(m.role, m.content) for m in r.messages] == [("user", [Text("hi")])]
    assert (r.max_tokens, r.temperature, r.top_p, r.stream, r.include_usage) == (64, 0.3, 0.5, True, True)
    assert r.extra == {}  # store / stream are handled, never dropped


def test_item_input_full():
    body = {"model": "m", "input": [
        {"role": "developer", "content": "Use metric."},
        {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "low"},
                                     {"type": "input_image", "image_url": "https://x.test/a.jpg", "detail": "auto"},
                                     {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBER"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "plan"}]},
        {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "3C"}]},
    ], "tools": [TOOL], "tool_choice": {"type": "function", "name": "get_weather"}, "parallel_tool_calls": True,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}},
        "reasoning": {"effort": "medium", "summary": "auto"}, "metadata": {"k": "v"}, "user": "u1"}
    assert specs.errors("openai", "CreateResponse", body) == []
    r = fr.request_to_canonical(body)
    assert r.system == [Text("Use metric.")]
    assert [m.role for m in r.messages] == ["user", "assistant", "tool"]
    u = r.messages[0].content
    assert u[1] == Image(data="iVBOR", media_type="image/png", detail="low")
    assert u[2] == Image(url="https://x.test/a.jpg", detail="auto")
    assert u[3] == Document(data="JVBER", media_type="application/pdf", filename="a.pdf")
    assert r.messages[1].content == [Thinking("plan"), Text("Checking."),
                                     ToolCall("call_1", "get_weather", "{\"city\":\"Paris\"}"),
                                     ToolCall("call_2", "get_weather", "{\"city\":\"Oslo\"}")]
    assert r.messages[2].content == [ToolResult("call_1", [Text("18C")], "get_weather"),
                                     ToolResult("call_2", [Text("3C")], "get_weather")]
    assert r.tools == [ToolDef("get_weather", "w", TOOL["parameters"], False)]
    assert r.tool_choice == NamedToolChoice("get_weather") and r.parallel_tool_calls is True
    assert r.response_format == ResponseFormat("json_schema", "w", {"type": "object"}, True)
    assert r.reasoning == Reasoning(effort="medium", summary="auto")
    assert (r.metadata, r.user) == ({"k": "v"}, "u1")


def test_history_for_previous_response_id_comes_first_and_instructions_not_carried():
    history = fr.input_items({"input": "first question"}) + fr.output_items(
        CanonicalResponse("x", "m", [Text("first answer")]), "resp_prev")
    r = fr.request_to_canonical({"model": "m", "input": "second", "previous_response_id": "resp_prev",
                                 "instructions": "new rules"}, history=history)
    assert [(m.role, m.content[0].text) for m in r.messages] == [
        ("user", "first question"), ("assistant", "first answer"), ("user", "second")]
    assert r.system == [Text("new rules")]
    assert "previous_response_id" not in r.extra


def test_hosted_tools_and_unknown_params_reported_as_dropped():
    r = fr.request_to_canonical({"model": "m", "input": "x", "tools": [{"type": "web_search"}, TOOL],
                                 "truncation": "auto", "background": False, "include": ["message.output_text.logprobs"]})
    b, dropped = fa.request_from_canonical(r, "claude")
    assert sorted(dropped) == ["include", "tools[web_search]", "truncation"]
    assert [t["name"] for t in b["tools"]] == ["get_weather"]
    _, dropped = fo.request_from_canonical(r, "gpt-4o")
    assert "tools[web_search]" in dropped


def test_responses_to_openai_chat_keeps_family_params():
    r = fr.request_to_canonical({"model": "m", "input": "x", "prompt_cache_key": "k", "safety_identifier": "s",
                                 "store": True, "text": {"verbosity": "low"}, "reasoning": {"effort": "low", "summary": "auto"}})
    b, dropped = fo.request_from_canonical(r, "gpt-5")
    assert (b["prompt_cache_key"], b["safety_identifier"], b["verbosity"], b["reasoning_effort"]) == ("k", "s", "low", "low")
    assert "store" not in b and dropped == ["reasoning.summary"]


@pytest.mark.parametrize("bad,param", [
    ({"model": "m"}, "input"),
    ({"model": "m", "input": []}, "input"),
    ({"model": "m", "input": 5}, "input"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].type"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "grammar"}}}, "text.format.type"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "web_search"}}, "tool_choice.type"),
    ({"model": "m", "input": "x", "instructions": ["a"]}, "instructions"),
])
def test_malformed(bad, param):
    with pytest.raises(TranslationError) as e:
        fr.request_to_canonical(bad)
    assert e.value.param == param


# --- canonical → Response ----------------------------------------------------------------------

REQ = {"model": "gpt-alias", "input": "weather?", "instructions": "Be brief.", "tools": [TOOL],
       "temperature": 0.2, "previous_response_id": "resp_prev", "store": True, "max_output_tokens": 500,
       "reasoning": {"effort": "low", "summary": "auto"}}


def canonical_resp(stop="tool_use") -> CanonicalResponse:
    return CanonicalResponse("msg_1", "claude-sonnet-4-5",
                             [Thinking("plan", "EqQB"), Text("Checking."), ToolCall("toolu_1", "get_weather", "{\"city\":\"Paris\"}")],
                             stop, None, Usage(170, 30, cached_tokens=100, cache_creation_tokens=20, reasoning_tokens=12))


def test_response_from_canonical_spec_and_sdk():
    b = fr.response_from_canonical(canonical_resp(), REQ, response_id="resp_abc", created_at=1700000000)
    assert specs.errors("openai", "Response", b) == []
    r = openai.types.responses.Response.model_validate(b)
    assert (r.id, r.object, r.status, r.model) == ("resp_abc", "response", "completed", "claude-sonnet-4-5")
    assert [o.type for o in r.output] == ["reasoning", "message", "function_call"]
    assert r.output[0].summary[0].text == "plan" and r.output[0].encrypted_content is None
    assert r.output_text == "Checking."
    fc = r.output[2]
    assert (fc.call_id, fc.name, json.loads(fc.arguments), fc.status) == ("toolu_1", "get_weather", {"city": "Paris"}, "completed")
    assert fc.id.startswith("fc_") and r.output[1].id.startswith("msg_") and r.output[0].id.startswith("rs_")
    u = r.usage
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == (170, 30, 200)
    assert u.input_tokens_details.cached_tokens == 100 and u.output_tokens_details.reasoning_tokens == 12
    # request params echoed
    assert (r.instructions, r.temperature, r.previous_response_id, r.store, r.max_output_tokens) == (
        "Be brief.", 0.2, "resp_prev", True, 500)
    assert r.tools[0].name == "get_weather" and r.reasoning.effort == "low"
    assert r.tool_choice == "auto" and r.parallel_tool_calls is True


def test_incomplete_on_max_tokens_and_content_filter():
    for stop, reason in (("max_tokens", "max_output_tokens"), ("content_filter", "content_filter")):
        resp = canonical_resp(stop)
        resp.content = resp.content[:2]
        b = fr.response_from_canonical(resp, REQ)
        assert specs.errors("openai", "Response", b) == []
        assert b["status"] == "incomplete" and b["incomplete_details"] == {"reason": reason}
        assert b["output"][-1]["status"] == "incomplete"


def test_encrypted_reasoning_round_trips_to_anthropic_and_gemini():
    req = dict(REQ, include=["reasoning.encrypted_content"])
    b = fr.response_from_canonical(canonical_resp(), req, response_id="resp_1")
    assert b["output"][0]["encrypted_content"] == "tw1:s:EqQB"
    nxt = fr.request_to_canonical({"model": "m", "input": b["output"] + [
        {"type": "function_call_output", "call_id": "toolu_1", "output": "18C"}]})
    ab, dropped = fa.request_from_canonical(nxt, "claude")
    assert ab["messages"][0]["content"][0] == {"type": "thinking", "thinking": "plan", "signature": "EqQB"}
    # a redacted Anthropic block survives too
    red = CanonicalResponse("m", "c", [Thinking("OPAQUE", redacted=True), Text("x")])
    items = fr.output_items(red, "resp_2")
    again = fr.request_to_canonical({"model": "m", "input": [{"role": "user", "content": "q"}] + items})
    assert again.messages[1].content[0] == Thinking("OPAQUE", redacted=True)
    # an OpenAI (untagged) encrypted blob stays unsigned: dropped for Anthropic, no crash
    foreign = fr.request_to_canonical({"model": "m", "input": [
        {"role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_x", "summary": [], "encrypted_content": "gAAAAABfoo"},
        {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}]})
    ab, _ = fa.request_from_canonical(foreign, "claude")
    assert ab["messages"][1]["content"] == [{"type": "text", "text": "a"}]
    gb, _ = fg.request_from_canonical(foreign, "gemini-2.5-flash")
    assert gb["contents"][1]["parts"] == [{"text": "a"}]


def test_output_items_ids_match_response():
    b = fr.response_from_canonical(canonical_resp(), REQ, response_id="resp_zz")
    items = fr.output_items(canonical_resp(), "resp_zz")
    assert [i["id"] for i in items] == [o["id"] for o in b["output"]]
    assert items[0]["encrypted_content"] == "tw1:s:EqQB"


def test_sdk_non_stream_create_through_mock_transport():
    body = fr.response_from_canonical(canonical_resp("end_turn"), REQ)
    client = openai_client(json.dumps(body).encode(), "application/json")
    r = client.responses.create(model="gpt-alias", input="weather?")
    assert r.output_text == "Checking." and r.status == "completed"


def test_codex_style_request_reports_nothing_dropped_for_anthropic():
    """Hints like prompt_cache_key / safety_identifier / store / include are not 'dropped'."""
    body = {"model": "m", "instructions": "sys", "input": [{"role": "user", "content": "hi"}], "tools": [TOOL],
            "tool_choice": "auto", "parallel_tool_calls": False, "reasoning": {"effort": "medium", "summary": "auto"},
            "store": False, "stream": True, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k",
            "safety_identifier": "user-7", "text": {"verbosity": "medium"}}
    b, dropped = fa.request_from_canonical(fr.request_to_canonical(body), "claude")
    assert dropped == []
    assert b["metadata"] == {"user_id": "user-7"} and b["thinking"]["budget_tokens"] == 8192
    assert b["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
