"""Property-based tests (hypothesis):

- any split of a provider byte stream into network chunks gives byte-identical client output;
- malformed streams (random bytes, truncation, corruption, random JSON events, unknown event
  types) end in a clean StreamError or Finish, never an exception or a hang;
- writers emit SDK-valid events for any sequence of canonical deltas;
- malformed request / response bodies give a TranslationError, never KeyError / TypeError.
"""

from __future__ import annotations

import copy
import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmt_support import (
    CLIENT_REQUESTS, CLIENTS_ALL, PROVIDER_RESPONSES, PROVIDERS, translate, validate_events,
)
from tollway.formats import anthropic as fa
from tollway.formats import gemini as fg
from tollway.formats import openai_chat as fo
from tollway.formats import responses as fr
from tollway.formats.canonical import CanonicalRequest
from tollway.formats.errors import TranslationError
from tollway.formats.stream import (
    BlockStop, Finish, MessageStart, StreamError, TextDelta, ThinkingDelta, ToolCallArgsDelta, ToolCallStart,
    UsageDelta,
)
from tollway.usage import Usage

PARSERS = {"openai_chat": fo.StreamParser, "anthropic": fa.StreamParser, "gemini": fg.StreamParser}
EXAMPLES = int(os.environ.get("TOLLWAY_HYPOTHESIS_EXAMPLES", "60"))  # raise it for a deep run
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fixed_writer(client: str):
    if client == "openai_chat":
        return fo.StreamWriter(include_usage=True, created=1700000000)
    if client == "anthropic":
        return fa.StreamWriter()
    if client == "responses":
        return fr.StreamWriter({"model": "m", "input": "hi"}, response_id="resp_prop", created_at=1700000000)
    return fg.StreamWriter()


def normalize(out: bytes) -> bytes:
    return re.sub(rb'"completed_at":\d+', b'"completed_at":0', out)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted(set(c % (len(data) + 1) for c in cuts))
    chunks, prev = [], 0
    for p in points:
        chunks.append(data[prev:p])
        prev = p
    chunks.append(data[prev:])
    return chunks


@pytest.mark.parametrize("client", CLIENTS_ALL)
@pytest.mark.parametrize("provider", list(PROVIDERS))
@SETTINGS
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_arbitrary_network_splits_give_identical_output(provider, client, cuts):
    parser_cls, build, _ = PROVIDERS[provider]
    data = build()
    baseline = normalize(translate(parser_cls(), fixed_writer(client), [data]))
    assert normalize(translate(parser_cls(), fixed_writer(client), split(data, cuts))) == baseline


def check_parser_invariants(parser, chunks: list[bytes]) -> list:
    deltas = []
    for c in chunks:
        deltas.extend(parser.feed_bytes(c))
    deltas.extend(parser.close())
    errors = [i for i, d in enumerate(deltas) if isinstance(d, StreamError)]
    if errors:
        assert errors == [len(deltas) - 1], "nothing may follow a StreamError"
    else:
        assert any(isinstance(d, Finish) for d in deltas), "a stream without error must finish"
    assert parser.feed_bytes(b"data: {}\n\n") == [] or not errors  # ignored after failure
    return deltas


def run_writers(deltas: list) -> None:
    for client in CLIENTS_ALL:
        w = fixed_writer(client)
        out = b"".join(w.write(d) for d in deltas) + w.close()
        if client != "gemini":
            validate_events(client, out)


@pytest.mark.parametrize("provider", list(PARSERS))
@SETTINGS
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_random_bytes_never_crash(provider, data, cuts):
    deltas = check_parser_invariants(PARSERS[provider](), split(data, cuts))
    run_writers(deltas)


MUTATIONS = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 200)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.sampled_from(
        [b"{", b"}", b"\n\n", b"data: [DONE]\n\n", b"\xff\xfe", b"event: mystery\ndata: {\"type\":\"mystery\"}\n\n",
         b"data: {\"type\": \"content_block_delta\", \"index\": 99, \"delta\": {}}\n\n", b"data: null\n\n",
         b"data: []\n\n", b"data: {\"choices\": [{\"delta\": {\"tool_calls\": [{\"index\": 5}]}}]}\n\n", b":\n\n"])),
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 255)),
)


def mutate(data: bytes, m) -> bytes:
    kind, pos = m[0], m[1] % (len(data) + 1)
    if kind == "truncate":
        return data[:pos]
    if kind == "delete":
        return data[:pos] + data[pos + m[2]:]
    if kind == "insert":
        return data[:pos] + m[2] + data[pos:]
    return data[:pos] + bytes([m[2]]) + data[pos + 1:]


@pytest.mark.parametrize("provider", list(PROVIDERS))
@SETTINGS
@given(muts=st.lists(MUTATIONS, min_size=1, max_size=4), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_corrupted_real_streams_end_cleanly(provider, muts, cuts):
    parser_cls, build, _ = PROVIDERS[provider]
    data = build()
    for m in muts:
        data = mutate(data, m)
    deltas = check_parser_invariants(parser_cls(), split(data, cuts))
    run_writers(deltas)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "text", "index", "delta", "id", "name", "content", "parts", "choices",
                         "finish_reason", "usage", "message", "content_block", "partial_json", "candidates",
                         "functionCall", "args", "tool_calls", "function", "arguments", "error", "stop_reason",
                         "thought", "thoughtSignature", "input_tokens", "output_tokens", "usageMetadata"])
        | st.text(max_size=4), c, max_size=4),
    max_leaves=12,
)
EVENT_NAMES = st.sampled_from([None, "message_start", "content_block_start", "content_block_delta",
                               "content_block_stop", "message_delta", "message_stop", "error", "ping", "unknown"])


@pytest.mark.parametrize("provider", list(PARSERS))
@SETTINGS
@given(events=st.lists(st.tuples(EVENT_NAMES, JSON), max_size=8))
def test_random_json_events_end_cleanly(provider, events):
    body = b"".join(
        (f"event: {name}\n".encode() if name else b"") + b"data: " + json.dumps(data).encode() + b"\n\n"
        for name, data in events)
    deltas = check_parser_invariants(PARSERS[provider](), [body])
    run_writers(deltas)


# --- writers: any canonical delta sequence gives SDK-valid events ------------------------------

IDX = st.integers(0, 3)
DELTAS = st.one_of(
    st.builds(MessageStart, st.text(max_size=5), st.text(max_size=5)),
    st.builds(TextDelta, IDX, st.text(max_size=5)),
    st.builds(ThinkingDelta, st.text(max_size=5), st.one_of(st.none(), st.text(min_size=1, max_size=5)), IDX,
              st.booleans()),
    st.builds(ToolCallStart, IDX, st.text(min_size=1, max_size=5), st.text(max_size=5)),
    st.builds(ToolCallArgsDelta, IDX, st.sampled_from(["{", "\"a\"", ":", "1", "}", ""])),
    st.builds(BlockStop, IDX),
    st.builds(Finish, st.sampled_from(["end_turn", "max_tokens", "tool_use", "stop_sequence", "content_filter",
                                       "error"]), st.one_of(st.none(), st.just("END"))),
    st.builds(UsageDelta, st.builds(Usage, st.one_of(st.none(), st.integers(0, 10**6)),
                                    st.one_of(st.none(), st.integers(0, 10**6)))),
    st.builds(StreamError, st.sampled_from(["api_error", "overloaded_error", "rate_limit_error", "weird"]),
              st.text(max_size=8)),
)


@SETTINGS
@given(deltas=st.lists(DELTAS, max_size=25))
def test_writers_emit_valid_events_for_any_delta_sequence(deltas):
    run_writers(deltas)


# --- malformed request / response bodies ------------------------------------------------------

def node_paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from node_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from node_paths(v, prefix + (i,))


def replaced(obj, path, value, delete=False):
    if not path:
        return value
    obj = copy.deepcopy(obj)
    node = obj
    for p in path[:-1]:
        node = node[p]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return obj


def fuzz_body(data, base):
    paths = list(node_paths(base))
    path = data.draw(st.sampled_from(paths))
    delete = bool(path) and data.draw(st.booleans())
    return replaced(base, path, None if delete else data.draw(JSON), delete)


EXTRA_BODIES = {
    "openai_chat": [{"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format":
                     {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}}, "stream": True,
                     "stream_options": {"include_usage": True}, "reasoning_effort": "low",
                     "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}}],
    "anthropic": [{"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [
        {"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "redacted_thinking", "data": "d"}]}],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": {}}}}],
    "responses": [{"model": "m", "input": [{"type": "reasoning", "id": "r", "summary": [], "encrypted_content": "tw1:s:x"},
                                          {"type": "function_call_output", "call_id": "c", "output": "o"}],
                   "text": {"format": {"type": "json_schema", "name": "n", "schema": {}}}, "include": ["x"],
                   "reasoning": {"effort": "high"}}],
}
TO_CANONICAL = {"openai_chat": fo.request_to_canonical, "anthropic": fa.request_to_canonical,
                "responses": fr.request_to_canonical, "gemini": lambda b: fg.request_to_canonical(b, "g")}
FROM_CANONICAL = [lambda r: fo.request_from_canonical(r, "m"), lambda r: fo.request_from_canonical(r, "m", compat=True),
                  lambda r: fa.request_from_canonical(r, "m"), lambda r: fg.request_from_canonical(r, "gemini-3-pro"),
                  lambda r: fg.request_from_canonical(r, "m", schema_mode="openapi")]
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]},
                            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}],
               "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}, "responseMimeType": "application/json"},
               "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}


@pytest.mark.parametrize("fmt", list(TO_CANONICAL))
@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(data=st.data())
def test_malformed_requests_only_raise_translation_error(fmt, data):
    bases = ([CLIENT_REQUESTS[fmt]] if fmt in CLIENT_REQUESTS else []) + EXTRA_BODIES.get(fmt, []) + \
        ([GEMINI_BODY] if fmt == "gemini" else [])
    body = fuzz_body(data, data.draw(st.sampled_from(bases)))
    try:
        req = TO_CANONICAL[fmt](body)
    except TranslationError:
        return
    assert isinstance(req, CanonicalRequest)
    for build in FROM_CANONICAL:
        try:
            out, dropped = build(req)
        except TranslationError:
            continue
        json.dumps(out)  # always serialisable
        assert all(isinstance(d, str) for d in dropped)


RESPONSE_PARSERS = {"openai_chat": fo.response_to_canonical, "anthropic": fa.response_to_canonical,
                    "gemini": fg.response_to_canonical}


@pytest.mark.parametrize("fmt", list(RESPONSE_PARSERS))
@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(data=st.data())
def test_malformed_provider_responses_only_raise_translation_error(fmt, data):
    body = fuzz_body(data, PROVIDER_RESPONSES[fmt])
    try:
        resp = RESPONSE_PARSERS[fmt](body)
    except TranslationError:
        return
    json.dumps(fo.response_from_canonical(resp))
    json.dumps(fa.response_from_canonical(resp))
    json.dumps(fg.response_from_canonical(resp))
    json.dumps(fr.response_from_canonical(resp, {"model": "m", "input": "x"}))
