"""Streaming translation, provider SSE → canonical → client SSE, checked by the official SDKs:
every event strictly validated with the SDK's pydantic models, and the SDK stream helpers'
accumulated final objects compared with what a direct call would give."""

from __future__ import annotations

import json

import pytest

from tests import specs

from fmt_support import (
    PROVIDERS, make_writer, oa_chunk, openai_text_stream, sdk_final, sse, translate, validate_events,
    events_of, anthropic_stream, gemini_stream,
)
from tollway.formats import anthropic as fa
from tollway.formats import gemini as fg
from tollway.formats import openai_chat as fo
from tollway.formats import responses as fr
from tollway.formats import stop_reasons
from tollway.formats.stream import (
    Accumulator, BlockStop, Finish, MessageStart, StreamError, TextDelta, ToolCallArgsDelta, ToolCallStart,
    UsageDelta,
)
from tollway.usage import Usage

CLIENTS = ["openai_chat", "anthropic", "responses"]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_stream_matrix_sdk_final(provider, client):
    parser_cls, build, truth = PROVIDERS[provider]
    data = build()
    out = translate(parser_cls(), make_writer(client), [data])
    validate_events(client, out)
    final = sdk_final(client, out)
    if client == "openai_chat":
        ch = final.choices[0]
        assert (ch.message.content or "") == truth.text
        calls = ch.message.tool_calls or []
        assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == truth.tools
        assert len({c.id for c in calls}) == len(calls)
        assert ch.finish_reason == stop_reasons.to_openai(truth.stop)
        u = final.usage
        assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (
            truth.input_tokens, truth.output_tokens, truth.input_tokens + truth.output_tokens)
        assert u.prompt_tokens_details.cached_tokens == truth.cached
        assert u.completion_tokens_details.reasoning_tokens == truth.reasoning
    elif client == "anthropic":
        assert "".join(b.text for b in final.content if b.type == "text") == truth.text
        assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == truth.tools
        assert "".join(b.thinking for b in final.content if b.type == "thinking") == truth.thinking
        assert final.stop_reason == stop_reasons.to_anthropic(truth.stop)
        u = final.usage
        assert u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0) \
            == truth.input_tokens
        assert u.cache_read_input_tokens == truth.cached
        assert u.output_tokens == truth.output_tokens
        # blocks are strictly sequential: start, deltas, stop
        open_idx = None
        for ev in validate_events(client, out):
            if ev.type == "content_block_start":
                assert open_idx is None
                open_idx = ev.index
            elif ev.type == "content_block_delta":
                assert ev.index == open_idx
            elif ev.type == "content_block_stop":
                assert ev.index == open_idx
                open_idx = None
    else:
        assert final.output_text == truth.text
        calls = [o for o in final.output if o.type == "function_call"]
        assert [(c.name, json.loads(c.arguments)) for c in calls] == truth.tools
        reasoning = [o for o in final.output if o.type == "reasoning"]
        assert "".join(s.text for r in reasoning for s in r.summary) == truth.thinking
        status, reason = stop_reasons.to_responses(truth.stop)
        assert final.status == status
        if reason:
            assert final.incomplete_details.reason == reason
        u = final.usage
        assert (u.input_tokens, u.output_tokens) == (truth.input_tokens, truth.output_tokens)
        assert u.input_tokens_details.cached_tokens == truth.cached
        assert u.output_tokens_details.reasoning_tokens == truth.reasoning


STREAM_SCHEMAS = {"openai_chat": ("openai", "CreateChatCompletionStreamResponse"),
                  "anthropic": ("anthropic", "MessageStreamEvent"),
                  "responses": ("openai", "ResponseStreamEvent")}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_stream_events_match_the_published_specs(provider, client):
    parser_cls, build, _ = PROVIDERS[provider]
    out = translate(parser_cls(), make_writer(client), [build()])
    spec, schema = STREAM_SCHEMAS[client]
    for _, data in events_of(out):
        if data != "[DONE]":
            assert specs.errors(spec, schema, data) == [], data


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_stream_parser_accumulates_truth(provider):
    parser_cls, build, truth = PROVIDERS[provider]
    acc = Accumulator()
    p = parser_cls()
    for d in p.feed_bytes(build()) + p.close():
        acc.feed(d)
    resp = acc.response()
    assert acc.error is None
    assert resp.text == truth.text
    assert [(c.name, json.loads(c.arguments_json)) for c in resp.tool_calls] == truth.tools
    assert resp.stop_reason == truth.stop
    assert resp.usage.input_tokens == truth.input_tokens
    assert resp.usage.output_tokens == truth.output_tokens
    assert resp.usage.cached_tokens == truth.cached
    assert resp.usage.reasoning_tokens == truth.reasoning


def test_openai_usage_chunk_only_when_client_asked():
    data = openai_text_stream()
    with_usage = translate(fo.StreamParser(), fo.StreamWriter(include_usage=True), [data])
    without = translate(fo.StreamParser(), fo.StreamWriter(include_usage=False), [data])
    evs = [d for _, d in events_of(without) if d != "[DONE]"]
    assert all(d["choices"] for d in evs)
    assert all("usage" not in d for d in evs)
    assert events_of(without)[-1][1] == "[DONE]"
    last = [d for _, d in events_of(with_usage) if d != "[DONE]"][-1]
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == 120


def test_anthropic_client_gets_usage_in_message_start_and_delta():
    out = translate(fg.StreamParser(), fa.StreamWriter(), [gemini_stream()])
    evs = validate_events("anthropic", out)
    assert evs[0].type == "message_start"
    assert evs[0].message.usage.input_tokens == 120 - 64  # Gemini reports prompt size up front
    md = [e for e in evs if e.type == "message_delta"][0]
    assert md.usage.output_tokens == 57 and md.usage.cache_read_input_tokens == 64
    assert evs[-1].type == "message_stop"


def test_emits_as_events_arrive_no_buffering():
    """Each provider text delta yields client bytes immediately (before the stream ends)."""
    for client in CLIENTS:
        parser, writer = fa.StreamParser(), make_writer(client)
        data = anthropic_stream(thinking=False, tools=False)
        pieces = [e + b"\n\n" for e in data.split(b"\n\n") if e]
        emitted_before_end = b""
        for piece in pieces[:-2]:  # stop before message_delta / message_stop
            for d in parser.feed_bytes(piece):
                emitted_before_end += writer.write(d)
        assert b"Hello" in emitted_before_end, client


def test_gemini_function_call_becomes_start_plus_one_args_delta():
    p = fg.StreamParser()
    ds = p.feed_bytes(gemini_stream()) + p.close()
    starts = [d for d in ds if isinstance(d, ToolCallStart)]
    args = [d for d in ds if isinstance(d, ToolCallArgsDelta)]
    assert [s.name for s in starts] == ["get_weather", "get_time"]
    assert len(args) == 2 and json.loads(args[0].fragment) == {"city": "Paris"}
    assert starts[0].signature == "CiQB0e2Kb3sig"
    assert starts[0].id != starts[1].id
    assert isinstance(ds[-1], Finish) and ds[-1].stop_reason == "tool_use"
    # usage comes before the finish so writers see both
    assert any(isinstance(d, UsageDelta) for d in ds[ds.index(starts[0]):])


def test_openai_parallel_tool_calls_interleaved_indices_keep_fragments_in_order():
    """A compatible server interleaving two tool calls' fragments still yields correct args."""
    data = b"".join([
        oa_chunk({"role": "assistant"}),
        oa_chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"a\":"}}]}),
        oa_chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{\"b\":"}}]}),
        oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        oa_chunk({"tool_calls": [{"index": 1, "function": {"arguments": "2}"}}]}),
        oa_chunk({}, "tool_calls"),
        b"data: [DONE]\n\n",
    ])
    for client in CLIENTS:
        out = translate(fo.StreamParser(), make_writer(client), [data])
        validate_events(client, out)
        final = sdk_final(client, out)
        if client == "openai_chat":
            got = [(c.function.name, json.loads(c.function.arguments)) for c in final.choices[0].message.tool_calls]
        elif client == "anthropic":
            got = [(b.name, b.input) for b in final.content if b.type == "tool_use"]
        else:
            got = [(o.name, json.loads(o.arguments)) for o in final.output if o.type == "function_call"]
        assert got == [("f", {"a": 1}), ("g", {"b": 2})], client


def test_compat_server_whole_tool_call_without_index_and_stop_reason():
    """Ollama-style: the whole tool call in one chunk, no index, finish_reason 'stop'."""
    data = b"".join([
        oa_chunk({"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]}),
        oa_chunk({}, "stop"),
        b"data: [DONE]\n\n",
    ])
    final = sdk_final("anthropic", translate(fo.StreamParser(), fa.StreamWriter(), [data]))
    assert final.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == [("f", {"x": 1})]


def test_openai_reasoning_content_from_compat_servers_becomes_thinking():
    data = b"".join([
        oa_chunk({"role": "assistant", "reasoning_content": "think "}),
        oa_chunk({"reasoning_content": "more"}),
        oa_chunk({"content": "answer"}),
        oa_chunk({}, "stop"),
        b"data: [DONE]\n\n",
    ])
    final = sdk_final("anthropic", translate(fo.StreamParser(), fa.StreamWriter(), [data]))
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "think more"
    # and an OpenAI client without a reasoning field just does not see it
    out = translate(fo.StreamParser(), fo.StreamWriter(), [data])
    assert sdk_final("openai_chat", out).choices[0].message.content == "answer"
    out = translate(fo.StreamParser(), fo.StreamWriter(reasoning_field="reasoning_content"), [data])
    assert b"reasoning_content" in out


def test_thinking_dropped_cleanly_for_openai_client():
    out = translate(fa.StreamParser(), fo.StreamWriter(include_usage=True), [anthropic_stream()])
    validate_events("openai_chat", out)
    assert b"weather." not in out


def test_responses_event_sequence_and_sequence_numbers():
    out = translate(fa.StreamParser(), fr.StreamWriter({"model": "m", "input": "hi"}, response_id="resp_x"),
                    [anthropic_stream()])
    evs = validate_events("responses", out)
    assert [e.sequence_number for e in evs] == list(range(len(evs)))
    types = [e.type for e in evs]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert types[2:8] == ["response.output_item.added", "response.reasoning_summary_part.added",
                          "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
                          "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"]
    msg = types.index("response.content_part.added")
    assert types[msg - 1] == "response.output_item.added"
    assert types[msg + 1] == "response.output_text.delta"
    assert "response.function_call_arguments.done" in types
    done = [e for e in evs if e.type == "response.output_item.done"]
    assert [d.item.type for d in done] == ["reasoning", "message", "function_call", "function_call"]
    assert [d.output_index for d in done] == [0, 1, 2, 3]
    completed = evs[-1].response
    assert completed.id == "resp_x" and [o.id for o in completed.output] == [d.item.id for d in done]


def test_responses_stream_encrypted_reasoning_only_when_included():
    req = {"model": "m", "input": "hi", "include": ["reasoning.encrypted_content"]}
    w = fr.StreamWriter(req)
    out = translate(fa.StreamParser(), w, [anthropic_stream()])
    final = sdk_final("responses", out)
    rs = [o for o in final.output if o.type == "reasoning"][0]
    assert rs.encrypted_content and rs.encrypted_content.endswith("pkiMOYds")
    w2 = fr.StreamWriter({"model": "m", "input": "hi"})
    out2 = translate(fa.StreamParser(), w2, [anthropic_stream()])
    assert b"encrypted_content" not in out2
    # the stored items keep it regardless, and replay as a signed thinking block
    stored = w2.stored_output()
    req2 = fr.request_to_canonical({"model": "m", "input": "next"}, history=[{"role": "user", "content": "hi"}] + stored)
    th = [p for p in req2.messages[1].content if p.kind == "thinking"][0]
    assert th.signature.startswith("EqQB") and th.text == "The user wants weather."


def test_responses_incomplete_on_max_tokens():
    out = translate(fa.StreamParser(), make_writer("responses"),
                    [anthropic_stream(thinking=False, tools=False, stop="max_tokens")])
    evs = validate_events("responses", out)
    assert evs[-1].type == "response.incomplete"
    assert evs[-1].response.incomplete_details.reason == "max_output_tokens"
    assert evs[-1].response.output[-1].status == "incomplete"


@pytest.mark.parametrize("client", CLIENTS + ["gemini"])
def test_mid_stream_error_rendered_in_client_format(client):
    data = anthropic_stream(thinking=False, tools=False).split(b"event: content_block_stop")[0]
    data += sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
    out = translate(fa.StreamParser(), make_writer(client), [data])
    evs = events_of(out)
    if client == "openai_chat":
        assert evs[-1][1] == {"error": {"message": "Overloaded", "type": "server_error", "param": None,
                                        "code": "overloaded"}}
        import openai
        with pytest.raises(openai.APIError, match="Overloaded"):
            sdk_final(client, out)
    elif client == "anthropic":
        assert evs[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        import anthropic
        with pytest.raises(anthropic.APIStatusError):
            sdk_final(client, out)
    elif client == "responses":
        validate_events(client, out)
        assert [e for e, _ in evs[-2:]] == ["error", "response.failed"]
        assert evs[-1][1]["response"]["status"] == "failed"
        with pytest.raises(RuntimeError):
            sdk_final(client, out)
    else:
        assert evs[-1][1]["error"]["status"] == "UNAVAILABLE"


@pytest.mark.parametrize("parser_cls,data", [
    (fo.StreamParser, openai_text_stream().split(b"data: {\"id\":\"chatcmpl-abc123\"")[0] + oa_chunk({"content": "Hel"})),
    (fa.StreamParser, anthropic_stream().split(b"event: message_delta")[0]),
    (fg.StreamParser, gemini_stream().rsplit(b"data:", 1)[0]),
])
def test_truncated_upstream_stream_ends_with_error(parser_cls, data):
    p = parser_cls()
    ds = p.feed_bytes(data) + p.close()
    assert isinstance(ds[-1], StreamError)
    assert "ended" in ds[-1].message


def test_writer_tolerates_sloppy_delta_order():
    """Args without a start, text into a closed block, no MessageStart: nothing is lost."""
    seq = [TextDelta(0, "a"), BlockStop(0), ToolCallArgsDelta(1, "{\"k\": 1}"), TextDelta(0, "b"),
           BlockStop(1), Finish("tool_use"), UsageDelta(Usage(3, 4))]
    for client in CLIENTS:
        w = make_writer(client)
        out = b"".join(w.write(d) for d in seq) + w.close()
        validate_events(client, out)
        sdk_final(client, out)


def test_writers_handle_empty_stream():
    for client in CLIENTS:
        w = make_writer(client)
        out = w.write(MessageStart("x", "m")) + w.write(Finish("end_turn")) + w.close()
        validate_events(client, out)
        final = sdk_final(client, out)
        assert final is not None


def test_azure_prompt_filter_chunk_is_skipped():
    azure_first = sse({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                       "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]})
    p = fo.StreamParser()
    ds = p.feed_bytes(azure_first + openai_text_stream()) + p.close()
    assert isinstance(ds[0], MessageStart) and ds[0].id == "chatcmpl-abc123" and ds[0].model == "gpt-4o-2024-08-06"


def test_gemini_trailing_usage_only_chunk_after_finish():
    data = b"".join([
        sse({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
             "usageMetadata": {"promptTokenCount": 5}}),
        sse({"usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}}),
    ])
    final = sdk_final("anthropic", translate(fg.StreamParser(), fa.StreamWriter(), [data]))
    assert final.usage.output_tokens == 2 and final.content[0].text == "hi"
