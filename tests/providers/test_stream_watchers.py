"""The fast-path stream watchers read events, not substrings: answer text that looks like
protocol (event names, SSE framing, usage and error JSON, [DONE]) never changes the usage,
error or end-of-stream they report, however the bytes are split into network chunks.

Each case builds a real provider stream whose text deltas are drawn from those sequences,
splits it at random points, relays it through `StreamRelay` (exactly what the proxy does)
and checks usage, error flag, `done`, first token, the model, the text collected for a local
count, and the bytes relayed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollway.config import ProviderSettings
from tollway.counting import OutputTally
from tollway.providers.anthropic import AnthropicProvider
from tollway.providers.azure_openai import AzureOpenAIProvider
from tollway.providers.base import Endpoint, StreamRelay
from tollway.providers.gemini import GeminiProvider
from tollway.providers.openai import OpenAIProvider
from tollway.sse import SSEDecoder

# What an answer may say that a substring search would mistake for protocol.
KEYWORDS = [
    "\n\n", "\r\n\r\n", "\r\n", "\r", "\n", "data:", "data: ", "event:", "event: message_delta\n",
    "event: message_delta", "event: error", "event: message_stop", "event: message_start", "[DONE]",
    "data: [DONE]\n\n", '"usage"', '"usage":{', '"usage": {"prompt_tokens": 999999}', '"usage":null',
    '"error"', '"error":{', '{"error": {"message": "x"}}', '"type":"error"', "response.completed",
    '"response.failed"', "message_delta", "content_block_delta", '"model":"evil"', '{"type":"message_delta",'
    '"usage":{"output_tokens":1}}', "finishReason", '"usageMetadata":{"promptTokenCount":7}', ":", '"', "\\",
    "usage", "error", "model", "type", "message_stop", "data",  # whole values: JSON holds them unescaped
]
texts = st.lists(st.one_of(st.sampled_from(KEYWORDS), st.text(max_size=12)).map(str), min_size=1, max_size=12)
P, C = 41, 97  # the real usage of every stream built here


def dumps(obj: Any, spaced: bool) -> bytes:
    return json.dumps(obj, separators=(", ", ": ") if spaced else (",", ":"), ensure_ascii=False).encode()


def sse(data: bytes, event: str | None = None, crlf: bool = False) -> bytes:
    nl = b"\r\n" if crlf else b"\n"
    head = b"event: " + event.encode() + nl if event else b""
    return head + b"data: " + data + nl + nl


# --- streams as each provider sends them ----------------------------------------------------------

def chat_stream(parts: list[str], spaced: bool, crlf: bool, error: bool) -> list[bytes]:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-2024-08-06"}
    out = [sse(dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
                      "usage": None}, spaced), crlf=crlf)]
    for p in parts:
        out.append(sse(dumps({**base, "choices": [{"index": 0, "delta": {"content": p}}], "usage": None}, spaced),
                       crlf=crlf))
    if error:
        return out + [sse(dumps({"error": {"message": "boom", "type": "server_error"}}, spaced), crlf=crlf)]
    out.append(sse(dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None},
                         spaced), crlf=crlf))
    out.append(sse(dumps({**base, "choices": [], "usage": {"prompt_tokens": P, "completion_tokens": C,
                                                           "total_tokens": P + C}}, spaced), crlf=crlf))
    return out + [sse(b"[DONE]", crlf=crlf)]


def responses_stream(parts: list[str], spaced: bool, crlf: bool, error: bool) -> list[bytes]:
    def ev(kind: str, **fields: Any) -> bytes:
        return sse(dumps({"type": kind, **fields}, spaced), kind, crlf)

    resp = {"id": "resp_1", "object": "response", "model": "gpt-4o-2024-08-06", "status": "in_progress",
            "output": [], "usage": None}
    out = [ev("response.created", response=resp)]
    for p in parts:
        out.append(ev("response.output_text.delta", item_id="m", output_index=0, content_index=0, delta=p))
    if error:
        return out + [ev("error", code="server_error", message="boom", param=None)]
    done = {**resp, "status": "completed", "usage": {"input_tokens": P, "output_tokens": C, "total_tokens": P + C,
                                                     "input_tokens_details": {"cached_tokens": 0},
                                                     "output_tokens_details": {"reasoning_tokens": 0}}}
    return out + [ev("response.completed", response=done)]


def messages_stream(parts: list[str], spaced: bool, crlf: bool, error: bool) -> list[bytes]:
    def ev(kind: str, **fields: Any) -> bytes:
        return sse(dumps({"type": kind, **fields}, spaced), kind, crlf)

    out = [ev("message_start", message={"id": "m", "type": "message", "role": "assistant",
                                        "model": "claude-x-20250101", "content": [],
                                        "usage": {"input_tokens": P, "output_tokens": 1}}),
           ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
           ev("ping")]
    for p in parts:
        out.append(ev("content_block_delta", index=0, delta={"type": "text_delta", "text": p}))
    if error:
        return out + [ev("error", error={"type": "overloaded_error", "message": "boom"})]
    return out + [ev("content_block_stop", index=0),
                  ev("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": C}),
                  ev("message_stop")]


def gemini_stream(parts: list[str], spaced: bool, crlf: bool, error: bool) -> list[bytes]:
    out = []
    for i, p in enumerate(parts):
        cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": p}]}, "index": 0}
        last = i == len(parts) - 1 and not error
        if last:
            cand["finishReason"] = "STOP"
        usage = {"promptTokenCount": P, "candidatesTokenCount": C if last else 1}
        out.append(sse(dumps({"candidates": [cand], "usageMetadata": usage, "modelVersion": "gemini-x"}, spaced),
                       crlf=crlf))
    if error:
        out.append(sse(dumps({"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}, spaced), crlf=crlf))
    return out


def settings_for(kind: str) -> ProviderSettings:
    return ProviderSettings(id=kind, kind=kind, base_url="https://example.invalid", api_key="k")  # type: ignore[arg-type]


CASES = {
    "chat": (lambda: OpenAIProvider(settings_for("openai")), Endpoint.CHAT, chat_stream, "gpt-4o-2024-08-06"),
    "azure-chat": (lambda: AzureOpenAIProvider(settings_for("azure_openai")), Endpoint.CHAT, chat_stream,
                   "gpt-4o-2024-08-06"),
    "responses": (lambda: OpenAIProvider(settings_for("openai")), Endpoint.RESPONSES, responses_stream,
                  "gpt-4o-2024-08-06"),
    "anthropic": (lambda: AnthropicProvider(settings_for("anthropic")), Endpoint.MESSAGES, messages_stream,
                  "claude-x-20250101"),
    "gemini": (lambda: GeminiProvider(settings_for("gemini")), Endpoint.CHAT, gemini_stream, "gemini-x"),
}


def relay(watcher: Any, data: bytes, cuts: list[int]) -> bytes:
    r = StreamRelay(watcher)
    out = []
    prev = 0
    for c in sorted(set(cuts)):
        out.append(r.feed(data[prev:c]))
        prev = c
    out.append(r.feed(data[prev:]))
    out.append(r.close())
    return b"".join(out)


def events_of(data: bytes) -> list[bytes]:
    d = SSEDecoder()
    return [e.data for e in d.feed(data) + d.flush()]


@pytest.mark.parametrize("case", list(CASES))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=texts, spaced=st.booleans(), crlf=st.booleans(), error=st.booleans(), strip=st.booleans(),
       cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_answer_text_never_changes_usage_errors_or_the_end(case: str, parts: list[str], spaced: bool, crlf: bool,
                                                          error: bool, strip: bool, cuts: list[int]) -> None:
    make, endpoint, build, model = CASES[case]
    strip = strip and case.endswith("chat")  # only chat streams carry usage Tollway asked for
    upstream = b"".join(build(parts, spaced, crlf, error))
    tally = OutputTally(len)  # counts characters: shows exactly which text was collected
    w = make().stream_watcher(endpoint, strip, tally)
    out = relay(w, upstream, [c % (len(upstream) + 1) for c in cuts])

    assert w.done, "the stream's end (or its error) was missed"
    assert w.first_token or not "".join(parts)  # a first token is real content (the attempt loop holds back till then)
    assert w.model_served == model
    assert tally.total() == len("".join(parts))
    if error:
        assert w.error_type is not None
        if endpoint != Endpoint.MESSAGES:  # Anthropic reports input usage before the error
            assert w.usage is None or w.usage.output_tokens != C
    else:
        assert w.error_type is None, "answer text was taken for an error"
        assert w.usage is not None and (w.usage.input_tokens, w.usage.output_tokens) == (P, C)
    if not strip:
        assert out == upstream  # relayed byte for byte
    else:  # the usage chunk the client never asked for is gone, the content is all there
        sent = [json.loads(d) for d in events_of(out) if d != b"[DONE]"]
        assert not any(isinstance(o.get("usage"), dict) for o in sent)
        content = "".join(o["choices"][0]["delta"].get("content") or "" for o in sent if o.get("choices"))
        assert content == "".join(parts)


@pytest.mark.parametrize("spacing", ['{"error":{', '{"error": {', '{ "error" : {', '{\t"error":\t{'],
                         ids=["compact", "spaced", "padded", "tabs"])
def test_a_chat_stream_error_is_seen_whatever_the_json_whitespace(spacing: str) -> None:
    tally = OutputTally(len)
    w = OpenAIProvider(settings_for("openai")).stream_watcher(Endpoint.CHAT, True, tally)
    error = "data: " + spacing + '"message": "rate limited", "type": "rate_limit_error"}}'
    data = b"".join(chat_stream(["Hi"], False, False, False)[:2]) + error.encode() + b"\n\n"
    relay(w, data, [])
    assert w.error_type == "stream_error" and w.done
