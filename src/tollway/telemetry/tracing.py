"""OpenTelemetry traces: one span per request, a child span per upstream attempt.

Imported only when traces are on (`[otel]` or `OTEL_EXPORTER_OTLP_*`); needs the extra
`pip install 'tollway[otel]'` (opentelemetry-sdk and the OTLP/HTTP exporter). The tracer
provider is Tollway's own (not the global one), so an application embedding Tollway keeps its
own. Spans are handed to a BatchSpanProcessor: the request path only creates and ends spans;
export happens in the processor's thread, in batches (`OTEL_BSP_*` variables tune it).

The request span continues the client's W3C `traceparent` / `tracestate`; each attempt's
span context is what goes upstream in `traceparent` (and the `tracestate` it inherited).
Span names and attributes: see `genai` and README, OpenTelemetry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tollway import __version__
from tollway.config import OtelSettings
from tollway.telemetry import genai

if TYPE_CHECKING:
    from tollway.pipeline.context import Attempt, RequestContext
    from tollway.providers.base import UpstreamRequest


class _BytesHeaders(Getter[dict]):
    """Reads W3C trace headers from the request's raw (bytes) header dict."""

    def get(self, carrier: dict, key: str) -> list[str] | None:
        v = carrier.get(key.encode())
        return [v.decode("latin-1")] if v is not None else None

    def keys(self, carrier: dict) -> list[str]:
        return [k.decode("latin-1") for k in carrier]


_GETTER = _BytesHeaders()


def _traces_endpoint(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


class Tracing:
    def __init__(self, settings: OtelSettings) -> None:
        self.settings = settings
        resource = Resource.create({"service.name": settings.service_name, "service.version": __version__})
        self.provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=_traces_endpoint(settings.endpoint) if settings.endpoint else None,
                                    headers=dict(settings.headers) or None)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("tollway", __version__)
        self.propagator = TraceContextTextMapPropagator()
        self._servers: dict[str, tuple[str, int]] = {}

    def start(self, ctx: "RequestContext") -> "RequestTrace":
        parent = self.propagator.extract(ctx.headers, getter=_GETTER) if b"traceparent" in ctx.headers else None
        span = self.tracer.start_span(ctx.route, context=parent, kind=SpanKind.SERVER,
                                      start_time=int(ctx.started * 1e9),
                                      attributes={"tollway.trace_id": ctx.trace_id, "tollway.route": ctx.route})
        return RequestTrace(self, span, ctx)

    def server(self, url: str) -> tuple[str, int]:
        found = self._servers.get(url)
        if found is None:
            parts = urlsplit(url)
            found = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
            if len(self._servers) < 4096:
                self._servers[url] = found
        return found

    async def shutdown(self) -> None:
        """Export what is queued (bounded by the processor's own timeout), off the event loop."""
        await asyncio.to_thread(self.provider.shutdown)


class RequestTrace:
    """The spans of one request; created by `Tracing.start`, fed by the forwarders."""

    __slots__ = ("_tracing", "span", "_wall0", "_t0", "meta")

    def __init__(self, tracing: Tracing, span: Any, ctx: "RequestContext") -> None:
        self._tracing = tracing
        self.span = span
        self._wall0 = ctx.started
        self._t0 = ctx.t0
        s = tracing.settings
        self.meta = genai.ResponseMeta(keep_bytes=s.max_content_chars * 4 if s.capture_content else 0)

    def _ns(self, perf: float) -> int:
        return int((self._wall0 + (perf - self._t0)) * 1e9)

    # -- attempts ---------------------------------------------------------------------------------
    def start_attempt(self, attempt: "Attempt", req: "UpstreamRequest") -> None:
        host, port = self._tracing.server(req.url)
        child = self._tracing.tracer.start_span(
            f"{req.method} {attempt.provider_id}", context=set_span_in_context(self.span), kind=SpanKind.CLIENT,
            start_time=self._ns(attempt.started),
            attributes={"gen_ai.provider.name": genai.provider_name(attempt.provider_kind),
                        "gen_ai.request.model": attempt.model, "server.address": host, "server.port": port,
                        "http.request.method": req.method, "tollway.provider.id": attempt.provider_id})
        attempt.span = child
        headers = dict(req.headers)  # providers share their header dicts between calls: copy
        self._tracing.propagator.inject(headers, context=set_span_in_context(child))
        req.headers = headers

    def _end_attempts(self, attempts: Iterable["Attempt"], op: str | None) -> None:
        for i, a in enumerate(attempts):
            span = a.span
            if span is None:
                continue
            if op:
                span.update_name(f"{op} {a.model}")
                span.set_attribute("gen_ai.operation.name", op)
            span.set_attribute("tollway.attempt", i + 1)
            if a.status:
                span.set_attribute("http.response.status_code", a.status)
            err = a.error_type or (str(a.status) if a.status >= 400 else None)
            if err:
                span.set_attribute("error.type", err)
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=self._ns(a.ended or a.headers_at or time.perf_counter()))

    # -- response -------------------------------------------------------------------------------
    def response_body(self, body: dict[str, Any]) -> None:
        self.meta.from_body(body)

    def stream_block(self, block: bytes) -> None:
        if block:
            self.meta.from_stream(block)

    def end(self, ctx: "RequestContext") -> None:
        span = self.span
        op = genai.operation(ctx.endpoint)
        model = ctx.model or ""
        self._end_attempts(ctx.attempts, op)
        if not span.is_recording():  # sampled out (OTEL_TRACES_SAMPLER): nothing to describe
            span.end()
            return
        if op:
            span.update_name(f"{op} {model}" if model else op)
            span.set_attribute("gen_ai.operation.name", op)
        else:
            span.update_name(f"{ctx.method} {ctx.route}")
        attrs: dict[str, Any] = {"http.request.method": ctx.method}
        dep = ctx.deployment
        provider = ctx.provider or (dep.provider if dep is not None else None)
        if provider is not None:
            attrs["gen_ai.provider.name"] = genai.provider_name(provider.kind)
            attrs["tollway.provider.id"] = provider.id
        if model:
            attrs["gen_ai.request.model"] = model
        if op:
            attrs.update(genai.request_attributes(ctx.json))
        meta = self.meta
        if meta.id:
            attrs["gen_ai.response.id"] = meta.id
        served = ctx.model_served or (dep.model if dep is not None else None)
        if served:
            attrs["gen_ai.response.model"] = served
        if meta.finish_reasons:
            attrs["gen_ai.response.finish_reasons"] = list(dict.fromkeys(meta.finish_reasons))
        u = ctx.usage
        if u is not None and u.known:
            if u.input_tokens is not None:
                attrs["gen_ai.usage.input_tokens"] = u.input_tokens
            if u.output_tokens is not None:
                attrs["gen_ai.usage.output_tokens"] = u.output_tokens
            if u.cached_tokens:
                attrs["gen_ai.usage.cache_read.input_tokens"] = u.cached_tokens
            if u.cache_creation_tokens:
                attrs["gen_ai.usage.cache_creation.input_tokens"] = u.cache_creation_tokens
            if u.reasoning_tokens:
                attrs["gen_ai.usage.reasoning.output_tokens"] = u.reasoning_tokens
            if u.estimated:
                attrs["tollway.tokens_estimated"] = True
        if ctx.ttft_ms is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = ctx.ttft_ms / 1000.0
        if ctx.status:
            attrs["http.response.status_code"] = ctx.status
        if ctx.cost is not None:
            attrs["tollway.cost_usd"] = float(ctx.cost)
        for name in ("project", "source", "customer", "key_id"):
            v = getattr(ctx, name)
            if v:
                attrs[f"tollway.{name}"] = v
        if ctx.cancelled:
            attrs["tollway.cancelled"] = True
        if ctx.overhead is not None:
            attrs["tollway.overhead_ms"] = round(ctx.overhead * 1000.0, 3)
        err = ctx.error_type or (str(ctx.status) if ctx.status >= 400 else None)
        if err:
            attrs["error.type"] = err
            span.set_status(Status(StatusCode.ERROR))
        if meta.keep_bytes and op:
            self._content(attrs, ctx)
        span.set_attributes(attrs)
        span.end()

    def _content(self, attrs: dict[str, Any], ctx: "RequestContext") -> None:
        limit = self._tracing.settings.max_content_chars
        messages, system = genai.input_messages(ctx.json)
        if messages:
            attrs["gen_ai.input.messages"] = genai.clip_json(messages, limit)
        if system:
            attrs["gen_ai.system_instructions"] = genai.clip_json(system, limit)
        out = genai.output_messages(self.meta)
        if out:
            attrs["gen_ai.output.messages"] = genai.clip_json(out, limit)
