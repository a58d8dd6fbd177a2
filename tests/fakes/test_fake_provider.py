"""The fake provider, driven directly (no Tollway) by the official SDKs and raw HTTP.

These prove that what the fake sends parses with the real clients, so Tollway's own tests can
trust it as a stand-in for OpenAI, Azure OpenAI, Anthropic, Gemini and local servers.
"""

from __future__ import annotations

import base64
import http.client
import json
import struct
import time
import urllib.error
import urllib.request
from typing import Any

import anthropic
import openai
import pytest

from .provider import FakeProvider, UploadedFile

HELLO = "Hello from the fake provider!"
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def server():
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeProvider) -> FakeProvider:
    server.clear()
    return server


@pytest.fixture
def oai(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-test", max_retries=0, timeout=5)


@pytest.fixture
def ant(fake: FakeProvider) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-test", max_retries=0, timeout=5)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


class Raw:
    """A raw HTTP exchange: status, headers (lower-case), body bytes."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def sse(self, line_end: str = "\n") -> list[dict[str, str]]:
        events = []
        for block in self.body.decode().split(line_end * 2):
            if not block.strip():
                continue
            ev: dict[str, str] = {}
            for line in block.split(line_end):
                name, _, value = line.partition(": ")
                ev[name] = value
            events.append(ev)
        return events


def raw(fake: FakeProvider, path: str, body: Any = None, headers: dict[str, str] | None = None,
        method: str | None = None) -> Raw:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(fake.url + path, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return Raw(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Raw(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


OPENAI_AUTH = {"authorization": "Bearer sk-test"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_AUTH = {"x-goog-api-key": "AIza-test"}


# ====================================================================== OpenAI chat


def test_chat_plain_usage_and_recording(fake, oai):
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "be brief"}, *user("hi")], extra_query={"trace": "1"})
    assert r.object == "chat.completion"
    assert r.choices[0].message.content == HELLO
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "gpt-4o-mini"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (12, 7, 19)
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r.usage.completion_tokens_details.reasoning_tokens == 0
    (rec,) = fake.requests
    assert (rec.method, rec.path, rec.provider, rec.completed) == ("POST", "/v1/chat/completions", "openai", True)
    assert rec.query == {"trace": "1"}
    assert rec.headers["authorization"] == "Bearer sk-test"
    assert rec.json["messages"][1]["content"] == "hi" and json.loads(rec.body) == rec.json


def test_chat_dated_cache_thinking(oai):
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=user("hi [[dated]] [[cache]] [[thinking]]"))
    assert r.model == "gpt-4o-mini-2024-07-18"
    assert r.usage.prompt_tokens_details.cached_tokens == 5
    assert r.usage.completion_tokens_details.reasoning_tokens == 3


def test_chat_stream_include_usage_exactly_like_openai(fake, oai):
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == HELLO
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 5
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 18
    assert chunks[-2].choices[0].finish_reason == "stop"
    # on the wire: "usage": null on every chunk but the last, then [DONE]
    resp = raw(fake, "/v1/chat/completions", {"model": "m", "messages": user("hi"), "stream": True,
                                              "stream_options": {"include_usage": True}}, OPENAI_AUTH)
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = resp.sse()
    assert events[-1] == {"data": "[DONE]"}
    payloads = [json.loads(e["data"]) for e in events[:-1]]
    assert all("usage" in p for p in payloads)
    assert [p["usage"] is None for p in payloads] == [True] * (len(payloads) - 1) + [False]


def test_chat_stream_without_include_usage_has_no_usage_key(fake):
    resp = raw(fake, "/v1/chat/completions", {"model": "m", "messages": user("hi"), "stream": True}, OPENAI_AUTH)
    payloads = [json.loads(e["data"]) for e in resp.sse()[:-1]]
    assert payloads and all("usage" not in p for p in payloads)
    assert all("obfuscation" in p for p in payloads)


def test_chat_stream_tool_call_accumulated_by_sdk_helper(oai):
    with oai.chat.completions.stream(model="gpt-4o-mini", messages=user("weather? [[tool:get_weather]]"),
                                     tools=[WEATHER_TOOL]) as stream:
        arg_deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert len(arg_deltas) > 1
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")


def test_chat_parallel_tools_and_tool_result_reply(oai):
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=user("two [[tools:2]]"))
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].message.content is None
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"city": "Tokyo"})]
    follow_up = [*user("two [[tools:2]]"), r.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": calls[0].id, "content": "Sunny"},
                 {"role": "tool", "tool_call_id": calls[1].id, "content": [{"type": "text", "text": "09:00"}]}]
    r2 = oai.chat.completions.create(model="gpt-4o-mini", messages=follow_up)
    assert r2.choices[0].message.content == "Tool said: Sunny | 09:00"
    assert r2.usage.prompt_tokens == 10 + 4


def test_stream_parallel_tool_calls_by_hand(oai):
    calls: dict[int, dict[str, str]] = {}
    for chunk in oai.chat.completions.create(model="m", messages=user("[[tools:2]]"), stream=True):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            c = calls.setdefault(tc.index, {"name": "", "args": ""})
            c["name"] += tc.function.name or ""
            c["args"] += tc.function.arguments or ""
    assert {i: (c["name"], json.loads(c["args"])) for i, c in calls.items()} == {
        0: ("get_weather", {"city": "Paris"}), 1: ("get_time", {"city": "Tokyo"})}


def test_only_the_last_turn_carries_directives(oai):
    msgs = [*user("[[fault:500]]"), {"role": "assistant", "content": "ok"}, *user("hi again")]
    assert oai.chat.completions.create(model="m", messages=msgs).choices[0].message.content == HELLO


def test_max_tokens_and_echo(fake, oai):
    r = oai.chat.completions.create(model="m", messages=user("hi [[max_tokens]]"))
    assert r.choices[0].finish_reason == "length" and r.choices[0].message.content == "Hello from the"
    r = oai.chat.completions.create(model="m", messages=user("[[echo]]"), temperature=0.5)
    assert json.loads(r.choices[0].message.content) == fake.requests[-1].json
    assert json.loads(r.choices[0].message.content)["temperature"] == 0.5


def test_no_usage_ignores_include_usage(fake, oai):
    r = oai.chat.completions.create(model="m", messages=user("[[no_usage]]"))
    assert r.usage is None
    resp = raw(fake, "/v1/chat/completions", {"model": "m", "messages": user("[[no_usage]]"), "stream": True,
                                              "stream_options": {"include_usage": True}}, OPENAI_AUTH)
    payloads = [json.loads(e["data"]) for e in resp.sse()[:-1]]
    assert all("usage" not in p for p in payloads) and all(p["choices"] for p in payloads)


def test_missing_model_is_a_400(oai):
    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(model="", messages=user("hi"))
    assert exc.value.body["param"] == "model"


# ====================================================================== OpenAI other endpoints


def test_legacy_completions_plain_and_stream(oai):
    r = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert r.object == "text_completion" and r.choices[0].text == HELLO
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (11, 7)
    chunks = list(oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True,
                                         stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == HELLO
    assert chunks[-1].usage.total_tokens == 18 and chunks[-2].choices[0].finish_reason == "stop"


def test_embeddings_float_and_base64_agree(fake, oai):
    default = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])  # SDK asks for base64
    assert fake.requests[-1].json["encoding_format"] == "base64"
    floats = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format="float")
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    assert len(floats.data) == 2 and floats.data[1].index == 1 and len(floats.data[0].embedding) == 16
    assert floats.data[0].embedding != floats.data[1].embedding
    assert (floats.usage.prompt_tokens, floats.usage.total_tokens) == (12, 12)
    resp = raw(fake, "/v1/embeddings", {"model": "e", "input": "a", "encoding_format": "base64", "dimensions": 4},
               OPENAI_AUTH)
    vec = struct.unpack("<4f", base64.b64decode(resp.json()["data"][0]["embedding"]))
    assert len(vec) == 4


def test_files_upload_arrives_intact(fake, oai):
    content = b"line one\r\n--not-a-boundary\r\n\x00\xff binary \xe2\x82\xac\n" * 50
    f = oai.files.create(file=("data.jsonl", content, "application/jsonl"), purpose="batch")
    assert f.object == "file" and f.bytes == len(content) and f.filename == "data.jsonl" and f.purpose == "batch"
    rec = fake.requests[-1]
    assert rec.json is None
    upload = rec.form["file"]
    assert isinstance(upload, UploadedFile)
    assert (upload.filename, upload.content_type, upload.data) == ("data.jsonl", "application/jsonl", content)
    assert rec.form["purpose"] == "batch"
    listed = oai.files.list()
    assert [x.id for x in listed.data] == [f.id]
    assert oai.files.retrieve(f.id).bytes == len(content)
    assert oai.files.content(f.id).read() == content


def test_models_openai_and_local(fake, oai):
    assert "gpt-4o-mini" in [m.id for m in oai.models.list()]
    local = openai.OpenAI(base_url=fake.local_url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in local.models.list()][0] == "llama3.2:1b"
    r = local.chat.completions.create(model="llama3.2:1b", messages=user("hi [[no_usage]]"))
    assert r.choices[0].message.content == HELLO and r.usage is None
    assert fake.requests[-1].provider == "local"
    resp = raw(fake, "/local/v1/chat/completions", {"model": "llama3.2:1b", "messages": user("hi"),
                                                    "stream": True})  # no auth needed
    assert resp.status == 200 and all("obfuscation" not in e["data"] for e in resp.sse())


def test_responses_plain_and_tool_result(oai):
    r = oai.responses.create(model="gpt-4.1", input="hi", instructions="be brief")
    assert r.object == "response" and r.status == "completed" and r.output_text == HELLO
    assert r.instructions == "be brief" and r.model == "gpt-4.1"
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (11, 7, 18)
    r2 = oai.responses.create(model="gpt-4.1", input=[
        {"role": "user", "content": "weather? [[tool:get_weather]]"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "Rainy"}])
    assert r2.output_text == "Tool said: Rainy" and r2.usage.input_tokens == 13


def test_responses_stream_via_sdk(oai):
    with oai.responses.stream(model="gpt-4.1", input=[{"role": "user", "content": "hi [[thinking]]"}],
                              reasoning={"effort": "low", "summary": "auto"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    for t in ("response.output_item.added", "response.content_part.added", "response.output_text.done",
              "response.content_part.done", "response.output_item.done", "response.reasoning_summary_text.delta"):
        assert t in types
    assert types.count("response.output_text.delta") == 5
    assert final.output_text == HELLO and final.output[0].type == "reasoning"
    assert final.usage.output_tokens_details.reasoning_tokens == 3
    assert final.reasoning.effort == "low"


def test_responses_stream_function_call_and_incomplete(oai):
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    with oai.responses.stream(model="gpt-4.1", input="[[tool:get_weather]]", tools=[tool]) as stream:
        deltas = [e for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert len(deltas) > 1
    (call,) = final.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    r = oai.responses.create(model="gpt-4.1", input="[[max_tokens]]")
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    with oai.responses.stream(model="gpt-4.1", input="[[max_tokens]]") as stream:
        types = [e.type for e in stream]
    assert types[-1] == "response.incomplete"


# ====================================================================== faults and transport


@pytest.mark.parametrize("status,exc", [
    (400, openai.BadRequestError), (401, openai.AuthenticationError), (403, openai.PermissionDeniedError),
    (404, openai.NotFoundError), (429, openai.RateLimitError), (500, openai.InternalServerError),
    (503, openai.InternalServerError), (529, openai.InternalServerError)])
def test_openai_faults(oai, status, exc):
    with pytest.raises(exc) as err:
        oai.chat.completions.create(model="m", messages=user(f"[[fault:{status}]]"))
    assert err.value.status_code == status
    assert set(err.value.body) >= {"message", "type", "param", "code"}
    assert (err.value.response.headers.get("retry-after") == "1") == (status == 429)


def test_missing_openai_key_is_401(fake):
    resp = raw(fake, "/v1/chat/completions", {"model": "m", "messages": user("hi")})
    assert resp.status == 401 and resp.json()["error"]["type"] == "invalid_request_error"


def test_scoped_fault_and_fail_next(fake, oai, ant):
    msgs = user("hi [[fault:500@anthropic]]")
    assert oai.chat.completions.create(model="m", messages=msgs).choices[0].message.content == HELLO
    with pytest.raises(anthropic.InternalServerError):
        ant.messages.create(model="claude-x", max_tokens=5, messages=msgs)
    fake.fail_next(503, count=1, scope="gpt-4o")
    assert oai.chat.completions.create(model="other", messages=user("hi")).choices
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert oai.chat.completions.create(model="gpt-4o", messages=user("hi")).choices


def test_reset_after_aborts_mid_stream(fake, oai):
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in oai.chat.completions.create(model="m", messages=user("[[reset_after:3]]"), stream=True):
            seen.append(chunk)
    assert len(seen) == 3
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="m", messages=user("[[reset_after:0]]"))
    assert len(fake.requests) == 2 and not any(r.completed for r in fake.requests)


def test_malformed_body_and_event(fake, oai):
    resp = raw(fake, "/v1/chat/completions", {"model": "m", "messages": user("[[malformed]]")}, OPENAI_AUTH)
    assert resp.status == 200
    with pytest.raises(ValueError):
        resp.json()
    resp = raw(fake, "/v1/chat/completions", {"model": "m", "messages": user("[[malformed]]"), "stream": True},
               OPENAI_AUTH)
    datas = [e["data"] for e in resp.sse()]
    json.loads(datas[0])
    with pytest.raises(ValueError):
        json.loads(datas[1])
    assert datas[-1] == "[DONE]"


def test_delay_and_chunk_delay_stream_event_by_event(fake):
    t0 = time.monotonic()
    raw(fake, "/v1/chat/completions", {"model": "m", "messages": user("[[delay:0.2]]")}, OPENAI_AUTH)
    assert time.monotonic() - t0 >= 0.2
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", json.dumps(
        {"model": "m", "messages": user("[[chunk_delay:0.05]]"), "stream": True}), OPENAI_AUTH)
    t0 = time.monotonic()
    resp = conn.getresponse()
    first = resp.readline()
    t_first = time.monotonic() - t0
    rest = resp.read()
    t_all = time.monotonic() - t0
    conn.close()
    assert first.startswith(b"data: {")
    assert t_all >= 0.3 and t_first < t_all - 0.2  # 8 events 0.05 s apart: the first arrives well before the end
    assert rest.endswith(b"data: [DONE]\n\n")


def test_hang_times_out_and_records_disconnect(fake, oai):
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.3).chat.completions.create(model="m", messages=user("[[hang]]"))
    (rec,) = fake.requests
    deadline = time.monotonic() + 2
    while not rec.disconnected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec.disconnected and not rec.completed


def test_stream_error_event(oai, ant):
    with pytest.raises(openai.APIError):
        for _ in oai.chat.completions.create(model="m", messages=user("[[stream_error]]"), stream=True):
            pass
    with pytest.raises(anthropic.APIStatusError) as err:
        with ant.messages.stream(model="claude-x", max_tokens=5, messages=user("[[stream_error]]")) as s:
            s.get_final_message()
    assert err.value.body["error"]["type"] == "overloaded_error"


# ====================================================================== Azure OpenAI


def test_azure_chat_plain_and_stream(fake):
    az = openai.AzureOpenAI(azure_endpoint=fake.url, api_key="az-key", api_version="2024-10-21", max_retries=0)
    r = az.chat.completions.create(model="my-deployment", messages=user("hi"))
    assert r.choices[0].message.content == HELLO and r.model == "my-deployment"
    assert r.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    rec = fake.requests[-1]
    assert rec.path == "/openai/deployments/my-deployment/chat/completions" and rec.provider == "azure"
    assert rec.query["api-version"] == "2024-10-21" and rec.headers["api-key"] == "az-key"
    chunks = list(az.chat.completions.create(model="my-deployment", messages=user("hi"), stream=True))
    assert chunks[0].choices == [] and chunks[0].model == ""  # Azure's prompt-filter chunk
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO
    e = az.embeddings.create(model="emb", input="x", encoding_format="float")
    assert len(e.data[0].embedding) == 16


def test_azure_auth_and_api_version(fake):
    body = {"messages": user("hi")}
    assert raw(fake, "/openai/deployments/d/chat/completions?api-version=2024-10-21", body).status == 401
    resp = raw(fake, "/openai/deployments/d/chat/completions", body, {"api-key": "k"})
    assert resp.status == 404 and resp.json()["error"]["code"] == "404"
    resp = raw(fake, "/openai/deployments/d/chat/completions?api-version=x", {"messages": user("[[fault:429]]")},
               {"api-key": "k"})
    assert resp.status == 429 and resp.json()["error"]["code"] == "429" and resp.headers["retry-after"] == "1"
    resp = raw(fake, "/openai/v1/responses", {"model": "d", "input": "hi"}, {"api-key": "k"})
    assert resp.status == 200 and resp.json()["output"][0]["content"][0]["text"] == HELLO


# ====================================================================== Anthropic


def test_messages_plain(fake, ant):
    m = ant.messages.create(model="claude-test", max_tokens=100, system="be brief", messages=user("hi"))
    assert m.type == "message" and m.role == "assistant" and m.content[0].text == HELLO
    assert m.stop_reason == "end_turn" and m.model == "claude-test"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (11, 7)
    assert (m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens) == (0, 0)
    assert fake.requests[-1].headers["anthropic-version"]


def test_messages_cache_dated_max_tokens(ant):
    m = ant.messages.create(model="claude-x", max_tokens=5, messages=user("[[cache]] [[dated]] [[max_tokens]]"))
    assert (m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens) == (5, 3)
    assert m.model == "claude-x-20241022" and m.stop_reason == "max_tokens" and m.content[0].text == "Hello from the"


def test_messages_stream_with_pings(fake, ant):
    with ant.messages.stream(model="claude-x", max_tokens=100, messages=user("hi [[cache]]")) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) == 5 and "".join(texts) == HELLO
    assert final.content[0].text == HELLO and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (11, 7, 5)
    resp = raw(fake, "/v1/messages", {"model": "c", "max_tokens": 5, "messages": user("hi"), "stream": True},
               ANTHROPIC_AUTH)
    names = [e["event"] for e in resp.sse()]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert "ping" in names and names.count("content_block_delta") == 5
    assert all(json.loads(e["data"])["type"] == e["event"] for e in resp.sse())


def test_messages_tool_use_stream_and_result(ant):
    tool = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    with ant.messages.stream(model="claude-x", max_tokens=100, tools=[tool],
                             messages=user("weather? [[tool:get_weather]]")) as stream:
        json_deltas = [e for e in stream if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
        final = stream.get_final_message()
    assert len(json_deltas) > 1
    (block,) = final.content
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"
    m = ant.messages.create(model="claude-x", max_tokens=100, tools=[tool], messages=[
        *user("weather? [[tool:get_weather]]"),
        {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id,
                                      "content": [{"type": "text", "text": "Sunny"}]}]}])
    assert m.content[0].text == "Tool said: Sunny" and m.usage.input_tokens == 13


def test_messages_thinking_and_parallel_tools(ant):
    m = ant.messages.create(model="claude-x", max_tokens=2000, messages=user("[[thinking]] [[tools:2]]"),
                            thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in m.content] == ["thinking", "tool_use", "tool_use"]
    assert m.content[0].signature and [b.input for b in m.content[1:]] == [{"city": "Paris"}, {"city": "Tokyo"}]
    with ant.messages.stream(model="claude-x", max_tokens=2000, messages=user("hi [[thinking]]")) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "thinking_delta" in kinds and "signature_delta" in kinds
    assert final.content[0].thinking and final.content[1].text == HELLO


def test_count_tokens_and_models(ant):
    assert ant.messages.count_tokens(model="claude-x", messages=user("hi")).input_tokens == 11
    assert ant.models.list().data[0].id.startswith("claude-")


@pytest.mark.parametrize("status,exc", [
    (400, anthropic.BadRequestError), (401, anthropic.AuthenticationError), (404, anthropic.NotFoundError),
    (429, anthropic.RateLimitError), (500, anthropic.InternalServerError), (529, anthropic.OverloadedError)])
def test_anthropic_faults(ant, status, exc):
    with pytest.raises(exc) as err:
        ant.messages.create(model="claude-x", max_tokens=5, messages=user(f"[[fault:{status}]]"))
    body = err.value.body
    assert body["type"] == "error" and body["request_id"] == err.value.response.headers["request-id"]
    assert (err.value.response.headers.get("retry-after") == "1") == (status == 429)


def test_anthropic_header_checks(fake):
    body = {"model": "c", "max_tokens": 5, "messages": user("hi")}
    resp = raw(fake, "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    assert resp.status == 401 and resp.json()["error"]["type"] == "authentication_error"
    resp = raw(fake, "/v1/messages", body, {"x-api-key": "k"})
    assert resp.status == 400 and "anthropic-version" in resp.json()["error"]["message"]
    resp = raw(fake, "/v1/messages", {"model": "c", "messages": user("hi")}, ANTHROPIC_AUTH)
    assert resp.status == 400 and "max_tokens" in resp.json()["error"]["message"]


# ====================================================================== Gemini


def gemini(fake: FakeProvider, model: str, action: str, body: dict, query: str = "") -> Raw:
    return raw(fake, f"/v1beta/models/{model}:{action}{query}", body, GEMINI_AUTH)


def test_gemini_generate_content(fake):
    resp = gemini(fake, "gemini-2.5-flash", "generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    body = resp.json()
    cand = body["candidates"][0]
    assert cand["content"] == {"parts": [{"text": HELLO}], "role": "model"} and cand["finishReason"] == "STOP"
    u = body["usageMetadata"]
    assert (u["promptTokenCount"], u["candidatesTokenCount"], u["totalTokenCount"]) == (11, 7, 18)
    assert body["modelVersion"] == "gemini-2.5-flash"
    assert fake.requests[-1].provider == "gemini"


def test_gemini_stream_sse_crlf_cumulative_usage(fake):
    resp = gemini(fake, "gemini-2.5-flash", "streamGenerateContent",
                  {"contents": [{"role": "user", "parts": [{"text": "hi [[thinking]] [[cache]]"}]}]}, "?alt=sse")
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert b"\r\n\r\n" in resp.body
    chunks = [json.loads(e["data"]) for e in resp.sse("\r\n")]
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert parts[0]["thought"] is True
    assert "".join(p["text"] for p in parts[1:]) == HELLO
    assert [("finishReason" in c["candidates"][0]) for c in chunks] == [False] * (len(chunks) - 1) + [True]
    counts = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert counts == sorted(counts) and counts[-1] == 7
    last = chunks[-1]["usageMetadata"]
    assert (last["thoughtsTokenCount"], last["cachedContentTokenCount"], last["totalTokenCount"]) == (3, 5, 21)


def test_gemini_function_call_and_response(fake):
    body = gemini(fake, "g", "generateContent", {"contents": [{"parts": [{"text": "[[tools:2]]"}]}]}).json()
    parts = body["candidates"][0]["content"]["parts"]
    assert parts == [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                     {"functionCall": {"name": "get_time", "args": {"city": "Tokyo"}}}]
    follow = {"contents": [{"role": "user", "parts": [{"text": "[[tools:2]]"}]},
                           {"role": "model", "parts": parts[:1]},
                           {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                                           "response": {"result": "Sunny"}}}]}]}
    body = gemini(fake, "g", "generateContent", follow).json()
    assert body["candidates"][0]["content"]["parts"][0]["text"] == "Tool said: Sunny"
    assert body["usageMetadata"]["promptTokenCount"] == 13


def test_gemini_embed_count_and_errors(fake):
    e = gemini(fake, "gemini-embedding-001", "embedContent", {"content": {"parts": [{"text": "a"}]}}).json()
    assert len(e["embedding"]["values"]) == 16
    b = gemini(fake, "gemini-embedding-001", "batchEmbedContents", {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}}]}).json()
    assert [x["values"] for x in b["embeddings"]][0] == e["embedding"]["values"]
    c = gemini(fake, "g", "countTokens", {"contents": [{"parts": [{"text": "a"}]}]}).json()
    assert c["totalTokens"] == 11
    resp = raw(fake, "/v1beta/models/g:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]})
    assert resp.status == 403 and resp.json()["error"]["status"] == "PERMISSION_DENIED"
    resp = gemini(fake, "g", "generateContent", {"contents": [{"parts": [{"text": "[[fault:429]]"}]}]})
    assert resp.status == 429 and resp.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    resp = raw(fake, "/v1beta/models/g:generateContent?key=AIza", {"contents": [{"parts": [{"text": "[[max_tokens]]"}]}]})
    assert resp.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"


# ====================================================================== odds and ends


def test_gzip_body(fake, oai):
    r = oai.chat.completions.create(model="m", messages=user("[[gzip]]"))  # the SDK decodes it
    assert r.choices[0].message.content == HELLO
    resp = raw(fake, "/v1/messages", {"model": "c", "max_tokens": 5, "messages": user("[[gzip]]")},
               {**ANTHROPIC_AUTH, "accept-encoding": "gzip"})
    import gzip
    assert resp.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(resp.body))["content"][0]["text"] == HELLO


def test_gemini_stream_without_sse_is_a_json_array_and_v1_path(fake):
    resp = gemini(fake, "g", "streamGenerateContent", {"contents": [{"parts": [{"text": "hi"}]}]})
    chunks = resp.json()
    assert isinstance(chunks, list) and len(chunks) == 5
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    resp = raw(fake, "/v1/models/g:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]}, GEMINI_AUTH)
    assert resp.json()["candidates"][0]["content"]["parts"][0]["text"] == HELLO
    resp = gemini(fake, "g", "streamGenerateContent", {"contents": [{"parts": [{"text": "[[malformed]]"}]}]},
                  "?alt=sse")
    datas = [e["data"] for e in resp.sse("\r\n")]
    json.loads(datas[0])
    with pytest.raises(ValueError):
        json.loads(datas[1])


def test_azure_responses_and_responses_input_parts(fake):
    resp = raw(fake, "/openai/responses?api-version=2025-04-01-preview",
               {"model": "dep", "input": [{"type": "message", "role": "user",
                                           "content": [{"type": "input_text", "text": "[[echo]]"}]}]},
               {"api-key": "k"})
    assert json.loads(resp.json()["output"][0]["content"][0]["text"])["model"] == "dep"
    assert fake.requests[-1].provider == "azure"


def test_anthropic_malformed_stream_and_tool_error_result(fake, ant):
    resp = raw(fake, "/v1/messages", {"model": "c", "max_tokens": 5, "messages": user("[[malformed]]"),
                                      "stream": True}, ANTHROPIC_AUTH)
    events = resp.sse()
    with pytest.raises(ValueError):
        json.loads(events[1]["data"])
    assert events[-1]["event"] == "message_stop"
    m = ant.messages.create(model="claude-x", max_tokens=5, messages=[
        *user("x"), {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                                      "content": "boom"}]}])
    assert m.content[0].text == "Tool said: boom"


def test_unknown_routes_get_provider_shaped_404(fake):
    resp = raw(fake, "/v1/unknown", {"x": 1}, OPENAI_AUTH)
    assert resp.status == 404 and resp.json()["error"]["message"] == "Invalid URL (POST /v1/unknown)"
    resp = raw(fake, "/v1beta/models/g:unknownAction", {"contents": []}, GEMINI_AUTH)
    assert resp.status == 404 and resp.json()["error"]["status"] == "NOT_FOUND"
