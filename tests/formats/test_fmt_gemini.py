"""Gemini generateContent ⇄ canonical: provider-side table tests, plus the symmetrical
client side."""

from __future__ import annotations

import json

import pytest

from fmt_support import g_chunk, sse
from tollway.formats import anthropic as fa
from tollway.formats import gemini as fg
from tollway.formats import openai_chat as fo
from tollway.formats.canonical import (
    CanonicalRequest, CanonicalResponse, Document, Image, Message, NamedToolChoice, Reasoning,
    ResponseFormat, Text, Thinking, ToolCall, ToolResult,
)
from tollway.formats.errors import TranslationError
from tollway.formats.stream import Accumulator, Finish, StreamError
from tollway.usage import Usage


def openai_req(**kw):
    b = {"model": "gpt-4o", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "weather?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                                     {"type": "image_url", "image_url": {"url": "https://x.test/cat.webp"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 18}"},
        {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
        {"role": "user", "content": "thanks"},
    ], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "w",
                                                   "parameters": {"type": "object", "additionalProperties": False,
                                                                  "properties": {"city": {"type": ["string", "null"]}}}}},
                 {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]}
    b.update(kw)
    return fo.request_to_canonical(b)


def test_openai_to_gemini_request():
    req = openai_req(max_tokens=100, temperature=0.3, top_p=0.8, stop=["x"], seed=5, presence_penalty=0.5,
                     tool_choice={"type": "function", "function": {"name": "get_weather"}},
                     response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
                     logit_bias={"1": 1}, parallel_tool_calls=False)
    b, dropped = fg.request_from_canonical(req, "gemini-2.5-flash")
    assert b["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    c = b["contents"]
    assert [x["role"] for x in c] == ["user", "model", "user"]
    assert c[0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}
    assert c[0]["parts"][2] == {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/cat.webp"}}
    assert c[1]["parts"] == [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                             {"functionCall": {"name": "get_time", "args": {}}}]
    # parallel function responses together, in order, named from the matching calls
    assert c[2]["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                             {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
                             {"text": "thanks"}]
    decl = b["tools"][0]["functionDeclarations"][0]
    assert decl["parametersJsonSchema"]["additionalProperties"] is False
    assert b["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    gc = b["generationConfig"]
    assert gc == {"maxOutputTokens": 100, "temperature": 0.3, "topP": 0.8, "stopSequences": ["x"],
                  "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"},
                  "seed": 5, "presencePenalty": 0.5}
    assert sorted(dropped) == ["logit_bias", "parallel_tool_calls"]
    assert "model" not in b


def test_openapi_schema_mode_sanitizes():
    req = openai_req(response_format={"type": "json_schema", "json_schema": {
        "name": "r", "schema": {"type": "object", "additionalProperties": False, "$schema": "x",
                                "properties": {"a": {"type": ["integer", "null"]}}}}})
    b, _ = fg.request_from_canonical(req, "gemini-1.5-pro", schema_mode="openapi")
    params = b["tools"][0]["functionDeclarations"][0]["parameters"]
    assert params == {"type": "object", "properties": {"city": {"type": "string", "nullable": True}}}
    assert b["generationConfig"]["responseSchema"] == {"type": "object", "properties": {
        "a": {"type": "integer", "nullable": True}}}


@pytest.mark.parametrize("choice,fcc", [
    ("auto", {"mode": "AUTO"}), ("required", {"mode": "ANY"}), ("none", {"mode": "NONE"}),
])
def test_tool_choice_modes(choice, fcc):
    b, _ = fg.request_from_canonical(openai_req(tool_choice=choice), "gemini-2.5-flash")
    assert b["toolConfig"]["functionCallingConfig"] == fcc


def test_json_object_and_reasoning():
    req = openai_req(response_format={"type": "json_object"}, reasoning_effort="low")
    gc = fg.request_from_canonical(req, "gemini-2.5-flash")[0]["generationConfig"]
    assert gc["responseMimeType"] == "application/json" and "responseJsonSchema" not in gc
    assert gc["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}
    req.reasoning = Reasoning(budget_tokens=3000)
    assert fg.request_from_canonical(req, "g")[0]["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 3000
    req.reasoning = Reasoning(enabled=False)
    assert fg.request_from_canonical(req, "g")[0]["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}


def test_thought_signatures_only_go_back_to_gemini_and_gemini3_gets_fallback():
    req = CanonicalRequest(model="m", messages=[
        Message("user", [Text("q")]),
        Message("assistant", [Thinking("plan", "gemini:SIG1"), Thinking("anthropic thinking", "EqQB"),
                              ToolCall("c1", "f", "{}", "SIGFC"), ToolCall("c2", "g", "{}")]),
        Message("tool", [ToolResult("c1", [Text("1")]), ToolResult("c2", [Text("2")])]),
        Message("assistant", [ToolCall("c3", "f", "{}")]),
        Message("tool", [ToolResult("c3", [Text("3")], is_error=True)]),
    ])
    b, _ = fg.request_from_canonical(req, "gemini-2.5-pro")
    parts = b["contents"][1]["parts"]
    assert parts[0] == {"text": "plan", "thought": True, "thoughtSignature": "SIG1"}
    assert parts[1] == {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "SIGFC"}
    assert "thoughtSignature" not in parts[2]
    assert "thoughtSignature" not in b["contents"][3]["parts"][0]
    assert b["contents"][4]["parts"][0]["functionResponse"]["response"] == {"error": "3"}
    b3, _ = fg.request_from_canonical(req, "gemini-3-pro-preview")
    assert b3["contents"][3]["parts"][0]["thoughtSignature"] == fg.SKIP_SIGNATURE
    assert b3["contents"][1]["parts"][1]["thoughtSignature"] == "SIGFC"  # real ones never overwritten
    assert "thoughtSignature" not in b3["contents"][1]["parts"][2]  # only the first call of a turn


def test_tool_result_without_matching_call_raises():
    req = CanonicalRequest(model="m", messages=[Message("tool", [ToolResult("nope", [Text("x")])])])
    with pytest.raises(TranslationError):
        fg.request_from_canonical(req, "g")


def test_documents_and_file_ids():
    req = CanonicalRequest(model="m", messages=[Message("user", [
        Document(data="JVBER", media_type="application/pdf"),
        Document(url="https://generativelanguage.googleapis.com/v1beta/files/abc", media_type="application/pdf"),
        Image(url="gs://bucket/x.png")])])
    parts = fg.request_from_canonical(req, "g")[0]["contents"][0]["parts"]
    assert parts[0] == {"inlineData": {"mimeType": "application/pdf", "data": "JVBER"}}
    assert parts[1]["fileData"]["fileUri"].endswith("files/abc")
    assert parts[2] == {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/x.png"}}


# --- responses ---------------------------------------------------------------------------------

G_RESPONSE = {
    "candidates": [{"content": {"role": "model", "parts": [
        {"text": "Thinking about it", "thought": True, "thoughtSignature": "TSIG"},
        {"text": "Checking "}, {"text": "now."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "FSIG"},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]}, "finishReason": "STOP", "index": 0, "safetyRatings": []}],
    "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 45, "cachedContentTokenCount": 64,
                      "thoughtsTokenCount": 12, "totalTokenCount": 177},
    "modelVersion": "gemini-2.5-flash", "responseId": "abc123",
}


def test_response_to_canonical():
    r = fg.response_to_canonical(G_RESPONSE)
    assert r.content[0] == Thinking("Thinking about it", "gemini:TSIG")
    assert [p.text for p in r.content if p.kind == "text"] == ["Checking now."]
    calls = r.tool_calls
    assert [(c.name, json.loads(c.arguments_json), c.signature) for c in calls] == [
        ("get_weather", {"city": "Paris"}, "FSIG"), ("get_time", {}, None)]
    assert calls[0].id != calls[1].id
    assert r.stop_reason == "tool_use"
    assert r.usage == Usage(120, 57, cached_tokens=64, reasoning_tokens=12)
    assert (r.id, r.model) == ("abc123", "gemini-2.5-flash")


@pytest.mark.parametrize("finish,stop", [("STOP", "end_turn"), ("MAX_TOKENS", "max_tokens"),
                                         ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
                                         ("MALFORMED_FUNCTION_CALL", "error"), ("NEW_REASON", "end_turn")])
def test_finish_reasons(finish, stop):
    body = {"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": finish}]}
    assert fg.response_to_canonical(body).stop_reason == stop


def test_prompt_blocked_is_content_filter():
    r = fg.response_to_canonical({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}})
    assert r.stop_reason == "content_filter" and r.content == [] and r.usage.input_tokens == 5


@pytest.mark.parametrize("bad", [{}, {"candidates": []}, [], "x"])
def test_malformed_response(bad):
    with pytest.raises(TranslationError):
        fg.response_to_canonical(bad)  # type: ignore[arg-type]


def test_gemini_response_to_anthropic_client():
    import anthropic

    b = fa.response_from_canonical(fg.response_to_canonical(G_RESPONSE))
    m = anthropic.types.Message.model_validate(b)
    assert m.content[0].type == "thinking" and m.content[0].signature == "gemini:TSIG"
    assert [c.type for c in m.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert m.usage.input_tokens == 56 and m.usage.cache_read_input_tokens == 64


def test_stream_prompt_block_and_error_and_array_wrapping():
    p = fg.StreamParser()
    ds = p.feed_bytes(sse({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                           "usageMetadata": {"promptTokenCount": 7}}))
    assert isinstance(ds[-1], Finish) and ds[-1].stop_reason == "content_filter"
    p = fg.StreamParser()
    ds = p.feed_bytes(sse({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}))
    assert ds == [StreamError("rate_limit_error", "Resource has been exhausted")]
    p = fg.StreamParser()
    ds = p.feed_bytes(sse([json.loads(g_chunk([{"text": "hi"}], "STOP", {"promptTokenCount": 1}).decode()[6:])]))
    assert any(getattr(d, "text", None) == "hi" for d in ds)


# --- client side (symmetry) --------------------------------------------------------------------

def test_gemini_client_request_round_trip():
    body = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "AA"}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "S"}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": True}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.1, "topK": 3, "stopSequences": ["Z"],
                             "responseMimeType": "application/json", "seed": 4,
                             "thinkingConfig": {"thinkingBudget": 2048}},
    }
    req = fg.request_to_canonical(body, "gemini-2.5-flash")
    assert req.tool_choice == NamedToolChoice("f")
    assert req.response_format == ResponseFormat("json_object")
    assert req.reasoning == Reasoning(budget_tokens=2048)
    call = req.messages[1].content[0]
    assert req.messages[2].content[0].tool_call_id == call.id and call.signature == "S"
    back, dropped = fg.request_from_canonical(req, "gemini-2.5-flash")
    assert back["contents"][1]["parts"][0]["thoughtSignature"] == "S"
    assert back["generationConfig"]["topK"] == 3 and "seed" in dropped  # seed: gemini-source extra name
    ab, _ = fa.request_from_canonical(req, "claude")
    assert ab["messages"][1]["content"][0]["input"] == {"a": 1}


def test_gemini_client_stream_writer():
    from fmt_support import translate, events_of

    out = translate(fa.StreamParser(), fg.StreamWriter(), [__import__("fmt_support").anthropic_stream()])
    chunks = [d for _, d in events_of(out)]
    calls = [p["functionCall"] for c in chunks for p in c["candidates"][0]["content"]["parts"] if "functionCall" in p]
    assert [(c["name"], c["args"]) for c in calls] == [("get_weather", {"city": "Paris"}),
                                                       ("get_time", {"tz": "Asia/Tokyo", "n": 2})]
    text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]
                   if "text" in p and not p.get("thought"))
    assert text == "Hello, world! ünï 😀"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["promptTokenCount"] == 120
    # and the Gemini parser reads the writer's output back to the same canonical response
    acc = Accumulator()
    p = fg.StreamParser()
    for d in p.feed_bytes(out) + p.close():
        acc.feed(d)
    r = acc.response()
    assert r.text == "Hello, world! ünï 😀" and len(r.tool_calls) == 2 and r.stop_reason == "tool_use"


def test_response_from_canonical_client_side():
    resp = CanonicalResponse("r1", "gemini-x", [Text("hi"), ToolCall("c", "f", "{\"a\":1}")], "tool_use",
                             usage=Usage(10, 5, 2, 0, 1))
    b = fg.response_from_canonical(resp)
    assert b["candidates"][0]["content"]["parts"][1]["functionCall"]["args"] == {"a": 1}
    assert b["usageMetadata"] == {"promptTokenCount": 10, "candidatesTokenCount": 4, "totalTokenCount": 15,
                                  "cachedContentTokenCount": 2, "thoughtsTokenCount": 1}
    assert fg.response_to_canonical(b).usage == resp.usage
