"""The hand-written OTLP/protobuf encoder, decoded with opentelemetry-proto (the maintained
schema): every attribute value type, lengths that need multi-byte varints, negative and
out-of-range integers, unicode, parents, trace state, status and flags, and the request
envelope with its resource."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans
from opentelemetry.sdk.resources import Resource

from tests.fakes.otlp import _value
from tollway.telemetry import otlp

scalars = st.one_of(st.text(max_size=300), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False))
values = st.one_of(scalars, st.lists(st.text(max_size=40), max_size=5), st.lists(st.integers(0, 2**40), max_size=5))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=150), values, max_size=12))
def test_attributes_decode_to_what_was_encoded(attrs: dict) -> None:
    span = otlp.span(os.urandom(16), os.urandom(8), b"", b"", otlp.field(b"\x2a", b"s"), otlp.KIND_SERVER, 1, 2,
                     otlp.attributes(attrs), False, 0x101)
    [decoded] = ScopeSpans.FromString(span).spans
    assert {kv.key: _value(kv.value) for kv in decoded.attributes} == attrs


def test_cached_keys_and_fresh_values_encode_alike() -> None:
    k = otlp.Key("gen_ai.usage.input_tokens")
    s = otlp.Key("tollway.trace_id" * 10)  # a key long enough for two-byte lengths
    for v in (0, 1, 127, 128, 16383, 16384, 2**40, -1):
        assert k(v) == k(v) == otlp.attribute(k.key, v)
    for text in ("", "a", "é" * 70, "x" * 200, "y" * 20000):
        assert s.text(text) == s.text(text) == s(text) == otlp.attribute(s.key, text)
    assert k.double(0.25) == otlp.attribute(k.key, 0.25)
    assert k.true == otlp.attribute(k.key, True)
    assert otlp.attribute("x", 2**63) == b"" and otlp.attribute("x", None) == b""  # as the SDK: not carried


def test_spans_and_envelope_decode_with_opentelemetry_proto() -> None:
    tid, sid, pid = os.urandom(16), os.urandom(8), os.urandom(8)
    big = otlp.attributes({"gen_ai.input.messages": "m" * 70000, "n": 3})  # a span over 64 KiB
    spans = [
        otlp.span(tid, sid, b"\x22\x08" + pid, otlp.field(b"\x1a", b"vendor=abc"), otlp.field(b"\x2a", b"chat m"),
                  otlp.KIND_SERVER, 1_700_000_000_000_000_000, 1_700_000_000_500_000_000, big, True,
                  0x01 | otlp.FLAG_HAS_IS_REMOTE | otlp.FLAG_IS_REMOTE),
        otlp.span(tid, os.urandom(8), b"\x22\x08" + sid, b"", otlp.field(b"\x2a", b"POST p"), otlp.KIND_CLIENT,
                  0, -5, b"", False, otlp.FLAG_HAS_IS_REMOTE),
    ]
    resource = Resource.create({"service.name": "tw-test", "service.version": "1.2.3"})
    body = otlp.Envelope(resource, "tollway", "0.1.0").request(spans * 300)
    req = ExportTraceServiceRequest.FromString(body)
    [rs] = req.resource_spans
    assert {kv.key: _value(kv.value) for kv in rs.resource.attributes}["service.name"] == "tw-test"
    [ss] = rs.scope_spans
    assert (ss.scope.name, ss.scope.version) == ("tollway", "0.1.0")
    assert len(ss.spans) == 600
    server, client = ss.spans[0], ss.spans[1]
    assert (server.trace_id, server.span_id, server.parent_span_id) == (tid, sid, pid)
    assert server.trace_state == "vendor=abc" and server.name == "chat m" and server.kind == 2
    assert (server.start_time_unix_nano, server.end_time_unix_nano) == (1_700_000_000_000_000_000,
                                                                        1_700_000_000_500_000_000)
    assert server.status.code == 2 and server.flags == 0x301
    assert len(server.attributes[0].value.string_value) == 70000 and server.attributes[1].value.int_value == 3
    assert client.parent_span_id == sid and client.kind == 3 and client.status.code == 0
    assert (client.start_time_unix_nano, client.end_time_unix_nano) == (0, 0)  # never negative


def test_request_and_attempt_spans_decode_alike_with_and_without_trace_state() -> None:
    """An attempt span without trace state comes from its shape's `%` template (framing
    included); with trace state, from a join. Both decode to the same span, also when the
    shape's bytes hold a `%` and need two-byte lengths."""
    import time
    from decimal import Decimal

    from tollway.config import OtelSettings
    from tollway.pipeline.context import Attempt, RequestContext
    from tollway.providers.base import UpstreamRequest
    from tollway.telemetry.tracing import Tracing
    from tollway.usage import Usage

    class Provider:
        id, kind = "mock", "openai"

    model = "gpt-100%-" + "x" * 150
    url = "http://127.0.0.1:9/v1/chat/completions"
    tracing = Tracing(OtelSettings(endpoint="http://127.0.0.1:9"))

    def spans(state: str) -> tuple[ScopeSpans, int]:
        ctx = RequestContext("openai.chat", "openai", "chat", "POST", "/v1/chat/completions", {})
        ctx.provider, ctx.model, ctx.json = Provider(), model, {"model": model, "max_tokens": 5}  # type: ignore[assignment]
        trace = tracing.start(ctx)
        trace.state, trace.state_field = state, otlp.field(b"\x1a", state.encode()) if state else b""  # type: ignore[union-attr]
        a = Attempt("mock", "openai", model, url, time.perf_counter())
        ctx.attempts.append(a)
        trace.start_attempt(a, UpstreamRequest("POST", url, {}, b""))
        trace.response_body({"id": "chatcmpl-1", "choices": [{"finish_reason": "stop"}]})
        a.headers_at = a.ended = time.perf_counter()
        a.status = ctx.status = 200
        ctx.usage, ctx.cost, ctx.overhead = Usage(12, 9), Decimal("0.0000072"), 0.0004
        data, n = tracing.exporter.encoder.encode(trace, ctx, None)  # type: ignore[union-attr]
        return ScopeSpans.FromString(data), n

    (plain, n1), (stated, n2) = spans(""), spans("vendor=abc")
    assert n1 == n2 == len(plain.spans) == len(stated.spans) == 2
    for x, y in zip(plain.spans, stated.spans, strict=True):
        assert (x.name, x.kind, x.flags, x.status.code) == (y.name, y.kind, y.flags, y.status.code)
        assert {kv.key: _value(kv.value) for kv in x.attributes}.keys() == {kv.key: _value(kv.value) for kv in
                                                                             y.attributes}.keys()
        assert x.trace_state == "" and y.trace_state == "vendor=abc"
    attempt = plain.spans[1]
    assert attempt.name == f"chat {model}" and attempt.parent_span_id == plain.spans[0].span_id
    assert {kv.key: _value(kv.value) for kv in attempt.attributes}["gen_ai.request.model"] == model
    assert attempt.start_time_unix_nano <= attempt.end_time_unix_nano
