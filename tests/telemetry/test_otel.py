"""OpenTelemetry: spans exported over OTLP/HTTP to a local receiver, decoded with
opentelemetry-proto. One span per request (GenAI names and attributes), a child per
upstream attempt, W3C trace context continued from the client and forwarded upstream,
content only when asked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes.otlp import OtlpReceiver
from tests.fakes.provider import FakeProvider
from tests.harness import Tollway, anthropic_client, openai_client, standard_config
from tests.telemetry.promtext import scrape, value

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "50"}


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def traced(fake: FakeProvider, otlp: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    tw = Tollway(tmp_path_factory.mktemp("otel"), standard_config(fake.url, otel={"endpoint": otlp.url}),
                 env=FAST_EXPORT)
    yield tw
    tw.stop()


def upstream_headers(fake: FakeProvider) -> dict[str, str]:
    fake.wait_for_requests(1)
    return fake.requests[-1].headers


def test_request_span_follows_genai_conventions_and_continues_the_client_trace(
        traced: Tollway, otlp: OtlpReceiver, fake: FakeProvider) -> None:
    fake.clear()
    raw = openai_client(traced).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=55, temperature=0.3, messages=[{"role": "user", "content": "hi [[cache]]"}],
        extra_headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc", "x-tollway-customer": "acme",
                       "x-tollway-project": "alpha"})
    trace_id = raw.headers["x-tollway-trace-id"]
    body = raw.parse()
    record = traced.record(trace_id)
    span = otlp.find(**{"tollway.trace_id": trace_id})
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == 2  # SERVER: Tollway serving the client's call
    assert (span.trace_id, span.parent_span_id) == (CLIENT_TRACE, CLIENT_SPAN)
    a = span.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.request.max_tokens"] == 55
    assert a["gen_ai.request.temperature"] == pytest.approx(0.3)
    assert a["gen_ai.response.id"] == body.id
    assert a["gen_ai.response.model"] == body.model
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.usage.input_tokens"] == record["input_tokens"]
    assert a["gen_ai.usage.output_tokens"] == record["output_tokens"]
    assert a["gen_ai.usage.cache_read.input_tokens"] == record["cached_tokens"] > 0
    assert a["tollway.cost_usd"] == pytest.approx(float(record["cost_usd"]))
    assert (a["tollway.customer"], a["tollway.project"]) == ("acme", "alpha")
    assert "error.type" not in a and "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    assert span.resource["service.name"] == "tollway"
    [attempt] = otlp.children(span)
    assert attempt.kind == 3 and attempt.trace_id == CLIENT_TRACE
    assert attempt.name == "chat gpt-4o-mini"
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["tollway.attempt"] == 1
    assert span.start_ns <= attempt.start_ns <= attempt.end_ns <= span.end_ns
    sent = upstream_headers(fake)
    assert sent["traceparent"] == f"00-{CLIENT_TRACE}-{attempt.span_id}-01"
    assert sent["tracestate"] == "vendor=abc"


def test_streams_errors_and_new_traces(traced: Tollway, otlp: OtlpReceiver, fake: FakeProvider) -> None:
    with anthropic_client(traced).messages.with_streaming_response.create(
            model="claude-3-5-haiku-latest", max_tokens=30, stream=True,
            messages=[{"role": "user", "content": "hi"}]) as r:
        trace_id = r.headers["x-tollway-trace-id"]
        text = "".join(r.iter_text())
    span = otlp.find(**{"tollway.trace_id": trace_id})
    assert span.name == "chat claude-3-5-haiku-latest" and span.parent_span_id == ""  # a new trace
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert span.attributes["gen_ai.response.id"].startswith("msg_") and span.attributes["gen_ai.response.id"] in text
    assert span.attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    with pytest.raises(openai.RateLimitError) as err:
        openai_client(traced).chat.completions.create(model="gpt-4o-mini",
                                                      messages=[{"role": "user", "content": "[[fault:429]]"}])
    failed = otlp.find(**{"tollway.trace_id": err.value.response.headers["x-tollway-trace-id"]})
    assert failed.status_code == 2 and failed.attributes["error.type"].startswith("provider:")
    [attempt] = otlp.children(failed)
    assert attempt.status_code == 2 and attempt.attributes["http.response.status_code"] == 429


def test_stream_finish_reasons_in_every_format(traced: Tollway, otlp: OtlpReceiver) -> None:
    """A Responses API stream's reason is its final status; a Chat Completions stream's, the
    finish_reason of its last chunk (the chunks before carry null)."""
    client = openai_client(traced)
    with client.responses.with_streaming_response.create(model="gpt-4o-mini", input="hi", stream=True) as r:
        trace_id = r.headers["x-tollway-trace-id"]
        events = "".join(r.iter_text())
    assert "response.completed" in events
    span = otlp.find(**{"tollway.trace_id": trace_id})
    assert span.attributes["gen_ai.response.finish_reasons"] == ["completed"]
    with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}]) as r:
        trace_id = r.headers["x-tollway-trace-id"]
        chunks = "".join(r.iter_text())
    assert chunks.count('"finish_reason":null') >= 1
    span = otlp.find(**{"tollway.trace_id": trace_id})
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]


def test_content_only_when_asked(fake: FakeProvider, otlp: OtlpReceiver, tmp_path: Path) -> None:
    tw = Tollway(tmp_path, standard_config(fake.url, otel={"endpoint": otlp.url, "capture_content": True,
                                                           "service_name": "tw-content"}), env=FAST_EXPORT)
    try:
        raw = openai_client(tw).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "secret plans"}])
        span = otlp.find(**{"tollway.trace_id": raw.headers["x-tollway-trace-id"]})
        assert span.resource["service.name"] == "tw-content"
        assert '"secret plans"' in span.attributes["gen_ai.input.messages"]
        assert raw.parse().choices[0].message.content in span.attributes["gen_ai.output.messages"]
        with openai_client(tw).chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "streamed"}]) as r:
            trace_id = r.headers["x-tollway-trace-id"]
            r.read()
        streamed = otlp.find(**{"tollway.trace_id": trace_id})
        assert "Hello from the fake provider!" in streamed.attributes["gen_ai.output.messages"]
    finally:
        tw.stop()


def test_captured_content_never_holds_what_the_guard_found(fake: FakeProvider, otlp: OtlpReceiver,
                                                           tmp_path: Path) -> None:
    """A refused prompt, a prompt forwarded by policy (a model call, and a pass-through call,
    whose span captures no content), and an answer the output check redacted or blocked: the
    spans hold none of the secrets."""
    from tests.fakes.scenario import LEAKED_KEY

    aws = "AKIA" + "ZT3XGQWM7N4RB2VC"  # FAKE
    cfg = standard_config(fake.url, otel={"endpoint": otlp.url, "capture_content": True})
    cfg["sanitization"] = {"enabled": True, "output": "redact"}
    cfg["keys"] = [{"id": "gate", "key": "tw-gate-key", "sanitization": {"compliance_gate": True}},
                   {"id": "fwd", "key": "tw-fwd-key", "sanitization": {"redact_credentials": False}},
                   {"id": "block", "key": "tw-block-key", "sanitization": {"output": "block"}}]
    tw = Tollway(tmp_path, cfg, env=FAST_EXPORT)
    try:
        traces = []
        with pytest.raises(openai.PermissionDeniedError) as ei:
            openai_client(tw, "tw-gate-key").chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"why {aws}"}])
        traces.append(ei.value.response.headers["x-tollway-trace-id"])
        raw = openai_client(tw, "tw-fwd-key").chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"rotate {aws}"}])
        traces.append(raw.headers["x-tollway-trace-id"])
        raw = openai_client(tw).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[leak]]"}])
        assert LEAKED_KEY not in raw.parse().choices[0].message.content
        traces.append(raw.headers["x-tollway-trace-id"])
        with pytest.raises(openai.PermissionDeniedError) as ei:
            openai_client(tw, "tw-block-key").chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "[[leak]]"}])
        traces.append(ei.value.response.headers["x-tollway-trace-id"])
        with pytest.raises(openai.NotFoundError) as nf:  # a pass-through call, forwarded as the policy says
            openai_client(tw, "tw-fwd-key").images.generate(model="dall-e-3", prompt=f"draw {aws}")
        assert aws in fake.requests[-1].text
        passed_on = otlp.find(**{"tollway.trace_id": nf.value.response.headers["x-tollway-trace-id"]}).attributes
        assert passed_on["tollway.route"] == "passthrough.openai" and aws not in str(passed_on)
        for trace in traces:
            attrs = otlp.find(**{"tollway.trace_id": trace}).attributes
            dumped = str(attrs)
            assert "gen_ai.input.messages" in attrs, trace
            assert aws not in dumped and LEAKED_KEY not in dumped, trace
        assert "[REDACTED:AWS_ACCESS_KEY]" in otlp.find(**{"tollway.trace_id": traces[2]}).attributes[
            "gen_ai.output.messages"]
    finally:
        tw.stop()


def test_without_otel_the_client_trace_context_goes_upstream_as_it_came(
        tollway: Tollway, fake: FakeProvider) -> None:
    fake.clear()
    openai_client(tollway).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc"})
    sent = upstream_headers(fake)
    assert (sent["traceparent"], sent["tracestate"]) == (TRACEPARENT, "vendor=abc")


def test_sampler_from_the_environment_is_honoured(fake: FakeProvider, otlp: OtlpReceiver, tmp_path: Path) -> None:
    """OTEL_TRACES_SAMPLER: parentbased_traceidratio at 0 records nothing new, follows a sampled
    client, and an unsampled trace still goes upstream (the attempt's own id, not sampled)."""
    tw = Tollway(tmp_path, standard_config(fake.url, otel={"endpoint": otlp.url, "service_name": "tw-sampled"}),
                 env={**FAST_EXPORT, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                      "OTEL_TRACES_SAMPLER_ARG": "0"})
    try:
        oai = openai_client(tw)
        msgs = [{"role": "user", "content": "hi"}]
        fake.clear()
        unsampled = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
        sent = upstream_headers(fake)["traceparent"].split("-")
        assert sent[0] == "00" and len(sent[1]) == 32 and len(sent[2]) == 16 and int(sent[3], 16) & 1 == 0
        fake.clear()
        oai.chat.completions.create(model="gpt-4o-mini", messages=msgs,
                                    extra_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"})
        sent = upstream_headers(fake)["traceparent"].split("-")
        assert (sent[1], sent[3]) == (CLIENT_TRACE, "00") and sent[2] != CLIENT_SPAN
        followed = oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=msgs, extra_headers={"traceparent": TRACEPARENT})
        span = otlp.find(**{"tollway.trace_id": followed.headers["x-tollway-trace-id"]})
        assert span.trace_id == CLIENT_TRACE and span.resource["service.name"] == "tw-sampled"
        assert [s for s in otlp.spans if s.resource.get("service.name") == "tw-sampled"
                and s.attributes.get("tollway.trace_id") == unsampled.headers["x-tollway-trace-id"]] == []
        assert len([s for s in otlp.spans if s.resource.get("service.name") == "tw-sampled"]) == 2  # span + attempt
    finally:
        tw.stop()


def test_export_retries_a_refusing_receiver_and_counts_what_it_drops(
        fake: FakeProvider, tmp_path: Path) -> None:
    """A receiver that answers 503 twice gets the batch on the third try; a queue that is full
    drops spans (bounded memory), counts them in /metrics, and never fails a request."""
    with OtlpReceiver() as receiver:
        receiver.fail_with = [503, 503]
        tw = Tollway(tmp_path, standard_config(fake.url, otel={"endpoint": receiver.url}),
                     env={"OTEL_BSP_SCHEDULE_DELAY": "20", "OTEL_BSP_MAX_QUEUE_SIZE": "4",
                          "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2"})
        try:
            oai = openai_client(tw)
            ids = [oai.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).headers["x-tollway-trace-id"]
                for _ in range(12)]
            first = receiver.find(timeout=20, **{"tollway.trace_id": ids[0]})  # retried through two 503s
            assert receiver.refusals == 2 and first.name == "chat gpt-4o-mini"
            deadline = time.time() + 20
            while time.time() < deadline:
                text = scrape(tw)[1]
                exported = value(text, "tollway_otel_spans_total", outcome="exported")
                dropped = value(text, "tollway_otel_spans_total", outcome="dropped")
                if exported + dropped == 24:
                    break
                time.sleep(0.2)
            assert dropped > 0 and exported + dropped == 24  # 12 requests, 2 spans each: all accounted for
            assert value(text, "tollway_otel_spans_total", outcome="failed") == 0
            received = {s.attributes.get("tollway.trace_id") for s in receiver.spans} - {None}
            assert len(received) * 2 == exported
        finally:
            tw.stop()
