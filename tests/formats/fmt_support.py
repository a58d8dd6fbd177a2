"""Shared test support: realistic provider streams (built as the real APIs send them), the
translation pipeline, and the official SDKs as validators (over httpx2.MockTransport)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import anthropic
import httpx2
import openai
from pydantic import TypeAdapter

from tollway.formats import anthropic as fa
from tollway.formats import gemini as fg
from tollway.formats import openai_chat as fo
from tollway.formats import responses as fr

# --- provider stream builders ------------------------------------------------------------------


def sse(data: dict | str, event: str | None = None, crlf: bool = False) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    nl = "\r\n" if crlf else "\n"
    head = f"event: {event}{nl}" if event else ""
    return f"{head}data: {payload}{nl}{nl}".encode()


def oa_chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None,
             choices: bool = True, cid: str = "chatcmpl-abc123", model: str = "gpt-4o-2024-08-06") -> bytes:
    c: dict = {"id": cid, "object": "chat.completion.chunk", "created": 1741570283, "model": model,
               "system_fingerprint": "fp_fc9f1d7035", "service_tier": "default",
               "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]
               if choices else [], "usage": usage}
    return sse(c)


OA_USAGE = {"prompt_tokens": 120, "completion_tokens": 57, "total_tokens": 177,
            "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def openai_text_stream() -> bytes:
    return b"".join([
        oa_chunk({"role": "assistant", "content": "", "refusal": None}),
        oa_chunk({"content": "Hello"}),
        oa_chunk({"content": ", wor"}),
        oa_chunk({"content": "ld! ünï 😀"}),
        oa_chunk({}, "stop"),
        oa_chunk(usage=OA_USAGE, choices=False),
        b"data: [DONE]\n\n",
    ])


def openai_tools_stream() -> bytes:
    """Text, then two parallel tool calls whose arguments arrive in fragments."""
    return b"".join([
        oa_chunk({"role": "assistant", "content": None, "refusal": None}),
        oa_chunk({"content": "Let me check."}),
        oa_chunk({"tool_calls": [{"index": 0, "id": "call_paris", "type": "function",
                                  "function": {"name": "get_weather", "arguments": ""}}]}),
        oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
        oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "ty\": \"Paris\"}"}}]}),
        oa_chunk({"tool_calls": [{"index": 1, "id": "call_tokyo", "type": "function",
                                  "function": {"name": "get_time", "arguments": ""}}]}),
        oa_chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{\"tz\": \"Asia/"}}]}),
        oa_chunk({"tool_calls": [{"index": 1, "function": {"arguments": "Tokyo\", \"n\": 2}"}}]}),
        oa_chunk({}, "tool_calls"),
        oa_chunk(usage=OA_USAGE, choices=False),
        b"data: [DONE]\n\n",
    ])


def a_ev(data: dict) -> bytes:
    return sse(data, data["type"])


A_START_USAGE = {"input_tokens": 56, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 64,
                 "output_tokens": 1, "service_tier": "standard"}


def anthropic_stream(thinking: bool = True, tools: bool = True, stop: str | None = None) -> bytes:
    evs = [
        {"type": "message_start", "message": {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message",
                                              "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
                                              "stop_reason": None, "stop_sequence": None, "usage": A_START_USAGE}},
        {"type": "ping"},
    ]
    i = 0
    if thinking:
        evs += [
            {"type": "content_block_start", "index": i, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
            {"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": "The user wants "}},
            {"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": "weather."}},
            {"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}},
            {"type": "content_block_stop", "index": i},
        ]
        i += 1
    evs += [
        {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": ", world! ünï 😀"}},
        {"type": "content_block_stop", "index": i},
    ]
    i += 1
    if tools:
        for tid, name, frags in (("toolu_01A", "get_weather", ["", "{\"city\": ", "\"Paris\"}"]),
                                 ("toolu_01B", "get_time", ["{\"tz\": \"Asia/Tokyo\"", ", \"n\": 2}"])):
            evs.append({"type": "content_block_start", "index": i,
                        "content_block": {"type": "tool_use", "id": tid, "name": name, "input": {}}})
            evs += [{"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": f}}
                    for f in frags]
            evs.append({"type": "content_block_stop", "index": i})
            i += 1
    evs += [
        {"type": "message_delta", "delta": {"stop_reason": stop or ("tool_use" if tools else "end_turn"),
                                            "stop_sequence": None},
         "usage": {"output_tokens": 57}},
        {"type": "message_stop"},
    ]
    return b"".join(a_ev(e) for e in evs)


def g_chunk(parts: list | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    c: dict = {"candidates": [{"content": {"role": "model", "parts": parts or []}, "index": 0}],
               "modelVersion": "gemini-2.5-flash", "responseId": "Hx2bZfKqN9-RmecPi7u0sAk"}
    if finish:
        c["candidates"][0]["finishReason"] = finish
    if usage:
        c["usageMetadata"] = usage
    return sse(c, crlf=True)


G_USAGE = {"promptTokenCount": 120, "candidatesTokenCount": 45, "cachedContentTokenCount": 64,
           "thoughtsTokenCount": 12, "totalTokenCount": 177,
           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 120}]}


def gemini_stream(tools: bool = True, finish: str = "STOP") -> bytes:
    partial = {"promptTokenCount": 120, "cachedContentTokenCount": 64, "totalTokenCount": 120}
    chunks = [
        g_chunk([{"text": "The user wants weather.", "thought": True}], usage=partial),
        g_chunk([{"text": "Hello"}], usage=partial),
        g_chunk([{"text": ", world! ünï 😀"}], usage=partial),
    ]
    if tools:
        chunks.append(g_chunk([
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQB0e2Kb3sig"},
            {"functionCall": {"name": "get_time", "args": {"tz": "Asia/Tokyo", "n": 2}}},
        ], finish, G_USAGE))
    else:
        chunks.append(g_chunk([{"text": ""}], finish, G_USAGE))
    return b"".join(chunks)


# --- the expected canonical truth of each fixture ----------------------------------------------

@dataclass
class Truth:
    text: str
    tools: list[tuple[str, dict]] = field(default_factory=list)
    stop: str = "end_turn"
    input_tokens: int = 0
    output_tokens: int = 0
    cached: int = 0
    reasoning: int = 0
    thinking: str = ""


TEXT = "Hello, world! ünï 😀"
TOOLS = [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Asia/Tokyo", "n": 2})]

PROVIDERS = {
    "openai_text": (fo.StreamParser, openai_text_stream,
                    Truth(TEXT, [], "end_turn", 120, 57, 64, 12)),
    "openai_tools": (fo.StreamParser, openai_tools_stream,
                     Truth("Let me check.", TOOLS, "tool_use", 120, 57, 64, 12)),
    "anthropic": (fa.StreamParser, anthropic_stream,
                  Truth(TEXT, TOOLS, "tool_use", 120, 57, 64, 0, "The user wants weather.")),
    "anthropic_text": (fa.StreamParser, lambda: anthropic_stream(thinking=False, tools=False),
                       Truth(TEXT, [], "end_turn", 120, 57, 64, 0)),
    "gemini": (fg.StreamParser, gemini_stream,
               Truth(TEXT, TOOLS, "tool_use", 120, 57, 64, 12, "The user wants weather.")),
    "gemini_text": (fg.StreamParser, lambda: gemini_stream(tools=False),
                    Truth(TEXT, [], "end_turn", 120, 57, 64, 12, "The user wants weather.")),
    "gemini_max_tokens": (fg.StreamParser, lambda: gemini_stream(tools=False, finish="MAX_TOKENS"),
                          Truth(TEXT, [], "max_tokens", 120, 57, 64, 12, "The user wants weather.")),
}


# --- pipeline ----------------------------------------------------------------------------------

def translate(parser, writer, chunks: list[bytes]) -> bytes:
    out = []
    for c in chunks:
        for d in parser.feed_bytes(c):
            out.append(writer.write(d))
    for d in parser.close():
        out.append(writer.write(d))
    out.append(writer.close())
    return b"".join(out)


def make_writer(client: str, request: dict | None = None):
    if client == "openai_chat":
        return fo.StreamWriter(include_usage=True)
    if client == "anthropic":
        return fa.StreamWriter()
    if client == "responses":
        return fr.StreamWriter(request or {"model": "m", "input": "hi"}, response_id="resp_test1")
    return fg.StreamWriter()


# --- SDK clients over a mock transport ---------------------------------------------------------

def _http(body: bytes, content_type: str, status: int = 200) -> httpx2.Client:
    return httpx2.Client(transport=httpx2.MockTransport(
        lambda request: httpx2.Response(status, content=body, headers={"content-type": content_type})))


def openai_client(body: bytes, content_type: str = "text/event-stream", status: int = 200) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url="http://tollway.test/v1",
                         http_client=_http(body, content_type, status), max_retries=0)


def anthropic_client(body: bytes, content_type: str = "text/event-stream", status: int = 200) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-test", base_url="http://tollway.test",
                               http_client=_http(body, content_type, status), max_retries=0)


def sdk_final(client: str, body: bytes):
    """Feed translated SSE bytes to the official SDK's stream helper; return its final object."""
    if client == "openai_chat":
        # create(stream=True) + the SDK's own accumulator (`.stream()` raises on finish_reason
        # "length" by design, which would hide the snapshot a direct call gives too)
        from openai.lib.streaming.chat import ChatCompletionStreamState

        state = ChatCompletionStreamState()
        for chunk in openai_client(body).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True):
            state.handle_chunk(chunk)
        return state.current_completion_snapshot
    if client == "anthropic":
        with anthropic_client(body).messages.stream(
                model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
            return s.get_final_message()
    if client == "responses":
        # iterate the SDK's stream helper (get_final_response() accepts only response.completed;
        # an incomplete response, as from the API itself, ends with response.incomplete)
        final = None
        with openai_client(body).responses.stream(model="m", input="hi") as s:
            for ev in s:
                if ev.type in ("response.completed", "response.incomplete", "response.failed"):
                    final = ev.response
            if final is not None and final.status == "failed":
                raise RuntimeError("response.failed")
            return final
    raise ValueError(client)


# --- strict validation of every event with the SDK's pydantic models ---------------------------

_CHUNK = TypeAdapter(openai.types.chat.ChatCompletionChunk)
_A_EVENT = TypeAdapter(anthropic.types.RawMessageStreamEvent)
_R_EVENT = TypeAdapter(openai.types.responses.ResponseStreamEvent)


def events_of(body: bytes) -> list[tuple[str | None, dict | str]]:
    from tollway.sse import SSEDecoder

    dec = SSEDecoder()
    out = []
    for ev in dec.feed(body) + dec.flush():
        data = ev.data.decode()
        out.append((ev.event, data if data == "[DONE]" else json.loads(data)))
    return out


def validate_events(client: str, body: bytes) -> list:
    """model_validate every event (strict: required fields and enums are checked)."""
    models = []
    for event, data in events_of(body):
        if client == "openai_chat":
            if data == "[DONE]":
                continue
            if "error" in data:  # a mid-stream error: the SDK raises APIError on it
                assert set(data) == {"error"} and isinstance(data["error"]["message"], str)
                continue
            models.append(_CHUNK.validate_python(data))
        elif client == "anthropic":
            assert event == data["type"], (event, data["type"])
            if event == "error":
                assert isinstance(data["error"]["type"], str) and isinstance(data["error"]["message"], str)
                continue
            models.append(_A_EVENT.validate_python(data))
        elif client == "responses":
            assert event == data["type"], (event, data["type"])
            models.append(_R_EVENT.validate_python(data))
    return models


CLIENTS_ALL = ["openai_chat", "anthropic", "responses", "gemini"]


# --- one conversation in every client format, and each provider's answer to it --------------

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

CLIENT_REQUESTS = {
    "openai_chat": {
        "model": "alias", "max_completion_tokens": 256, "temperature": 0.5, "stop": ["END"],
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp\": 20}"},
            {"role": "user", "content": "And Paris?"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_SCHEMA}}],
        "tool_choice": "auto",
    },
    "anthropic": {
        "model": "alias", "max_tokens": 256, "temperature": 0.5, "stop_sequences": ["END"],
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_0", "name": "get_weather", "input": {"city": "Lyon"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "{\"temp\": 20}"},
                                         {"type": "text", "text": "And Paris?"}]},
        ],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}],
        "tool_choice": {"type": "auto"},
    },
    "responses": {
        "model": "alias", "max_output_tokens": 256, "temperature": 0.5, "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "auto"}]},
            {"type": "function_call", "call_id": "call_0", "name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"},
            {"type": "function_call_output", "call_id": "call_0", "output": "{\"temp\": 20}"},
            {"role": "user", "content": "And Paris?"},
        ],
        "tools": [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": WEATHER_SCHEMA,
                   "strict": False}],
        "tool_choice": "auto",
    },
}


# What each provider answers (a tool call after a sentence), as the real APIs send it.
PROVIDER_RESPONSES = {
    "openai_chat": {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1741570283, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking Paris.", "refusal": None, "annotations": [],
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340,
                  "prompt_tokens_details": {"cached_tokens": 128}, "completion_tokens_details": {"reasoning_tokens": 0}},
    },
    "anthropic": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Checking Paris."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 172, "cache_read_input_tokens": 128, "cache_creation_input_tokens": 0, "output_tokens": 40},
    },
    "gemini": {
        "candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
            {"text": "Checking Paris."}, {"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}}]}}],
        "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 40, "cachedContentTokenCount": 128,
                          "totalTokenCount": 340},
        "modelVersion": "gemini-2.5-flash", "responseId": "r1",
    },
}
