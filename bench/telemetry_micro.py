"""Micro-benchmark: what telemetry adds per request, in µs of CPU on the event loop thread.

    python bench/telemetry_micro.py            # single process
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) python bench/telemetry_micro.py   # --workers mode

Measures, on a finished request context like the proxy builds: the attempt record and the
overhead header (always on), `Metrics.observe` (metrics on), the OTel request span with one
attempt span (traces on; exporter replaced by one that drops, so only the hot path counts:
span objects plus the BatchSpanProcessor enqueue), and building a billing event (done by
the ledger's background writer, not on the request path).
"""

from __future__ import annotations

import time
from decimal import Decimal

from tollway.billing.outbox import Outbox
from tollway.config import BillingSinkSettings, MetricsSettings, OtelSettings
from tollway.pipeline.context import Attempt, RequestContext
from tollway.providers.base import UpstreamRequest
from tollway.telemetry.metrics import Metrics
from tollway.usage import Usage, UsageRecord

N = 50_000


class _Provider:
    id = "openai"
    kind = "openai"


class _Dep:
    provider = _Provider()
    model = "gpt-4o-mini"


def make_ctx() -> RequestContext:
    ctx = RequestContext("openai.chat", "openai", "chat", "POST", "/v1/chat/completions", {})
    ctx.deployment = _Dep()  # type: ignore[assignment]
    ctx.model = "gpt-4o-mini"
    ctx.json = {"model": "gpt-4o-mini", "max_tokens": 100, "messages": []}
    ctx.status = 200
    ctx.usage = Usage(input_tokens=120, output_tokens=30, cached_tokens=64)
    ctx.cost = Decimal("0.0000360")
    return ctx


def per_call(fn, n: int = N) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    results: dict[str, float] = {}

    def attempt_and_header() -> None:
        ctx = make_ctx()
        ctx.attempts.append(Attempt("openai", "openai", "gpt-4o-mini", "http://x/v1", time.perf_counter()))
        ctx.overhead_header()

    base = per_call(make_ctx)
    results["attempt record + x-tollway-overhead-ms"] = per_call(attempt_and_header) - base

    metrics = Metrics(MetricsSettings())
    ctx = make_ctx()
    ctx.attempts.append(Attempt("openai", "openai", "gpt-4o-mini", "http://x/v1", 0.0, 0.01, 0.02, 200))
    results["metrics: observe() per request" + (" (multiprocess)" if metrics.multiprocess else "")] = per_call(
        lambda: metrics.observe(ctx, 0.02))

    try:
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        from tollway.telemetry import tracing

        class Drop(SpanExporter):
            def export(self, spans):  # noqa: ANN001
                return SpanExportResult.SUCCESS

        tracing.OTLPSpanExporter = lambda **_: Drop()  # type: ignore[assignment,misc]
        tr = tracing.Tracing(OtelSettings(endpoint="http://127.0.0.1:9"))

        def traced() -> None:
            c = make_ctx()
            t = tr.start(c)
            a = Attempt("openai", "openai", "gpt-4o-mini", "http://127.0.0.1:9/v1/chat/completions", c.t0)
            c.attempts.append(a)
            t.start_attempt(a, UpstreamRequest("POST", a.url, {"content-type": "application/json"}, b""))
            t.response_body({"id": "chatcmpl-1", "choices": [{"finish_reason": "stop"}]})
            t.end(c)

        results["otel: request span + 1 attempt span"] = per_call(traced, 20_000) - base
        tr.provider.shutdown()
    except ImportError:
        pass

    class _Engine:
        class dialect:  # noqa: N801
            name = "sqlite"

    outbox = Outbox(_Engine(), [BillingSinkSettings(id="b", url="http://x", secret="s")])  # type: ignore[arg-type]
    rec = UsageRecord("01234567-89ab-7cde-8f01-23456789abcd", time.time(), "openai.chat", usage=Usage(120, 30),
                      cost_usd=Decimal("0.000036"), customer="acme")
    plain = UsageRecord("01234567-89ab-7cde-8f01-23456789abcd", time.time(), "openai.chat", usage=Usage(120, 30))
    results["billing: event row for a customer record (background writer)"] = per_call(lambda: outbox.rows_for([rec]))
    results["billing: record without customer (background writer)"] = per_call(lambda: outbox.rows_for([plain]))
    for name, us in results.items():
        print(f"{us:8.2f} µs  {name}")


if __name__ == "__main__":
    main()
