"""Micro-benchmark: µs of CPU per request that telemetry adds, background work included.

    python bench/telemetry_micro.py                  # starts bench/null_receiver.py itself
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) python bench/telemetry_micro.py   # --workers mode
    python bench/telemetry_micro.py --n 50000 --repeat 5

Each scenario drives the telemetry calls one request makes (the telemetry stage's before and
after, an upstream attempt, the response body, the overhead header) on an event loop, many
times, yielding to the loop every few requests as a server does, and reads
`time.process_time()` (CPU of every thread of this process) around the whole run, export
included: OTel spans really go over OTLP/HTTP to the null receiver (a separate process, so
its CPU is not counted), and the run ends with the exporter's shutdown (which sends what is
queued). Scenarios:

  (a) nothing   the calls that run with telemetry off (attempt record, overhead header)
  (b) metrics   [metrics] on: Metrics.observe, streams gauge untouched
  (c) otel      [otel] on: request span + one attempt span, batched OTLP export
  (d) billing   one sink: the outbox rows the ledger's writer builds for a record with a customer
  (e) all       the three together

Reported: each scenario's CPU per request minus (a)'s, the median of `--repeat` runs.
`--store` adds a line for the outbox INSERT into a real SQLite store (the writer's
transaction, itself included). bench/billing_micro.py measures billing's whole cost per event:
the rows in the ledger's transaction (that transaction's own cost subtracted) and the sender.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from tollway.billing.outbox import Outbox
from tollway.config import BillingSinkSettings, MetricsSettings, OtelSettings
from tollway.pipeline.context import Attempt, RequestContext
from tollway.pipeline.telemetry import TelemetryStage
from tollway.pipeline.upstream import _forward_client_trace
from tollway.providers.base import UpstreamRequest
from tollway.telemetry.metrics import Metrics
from tollway.usage import Usage, UsageRecord

HERE = Path(__file__).resolve().parent
BODY = {"id": "chatcmpl-bench", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}


class _Provider:
    id = "mock"
    kind = "openai"


class _Dep:
    provider = _Provider()
    model = "gpt-4o-mini"


def make_ctx() -> RequestContext:
    ctx = RequestContext("openai.chat", "openai", "chat", "POST", "/v1/chat/completions",
                         {b"content-type": b"application/json", b"authorization": b"Bearer k"})
    ctx.deployment = _Dep()  # type: ignore[assignment]
    ctx.provider = _Dep.provider  # type: ignore[assignment]
    ctx.model = "gpt-4o-mini"
    ctx.json = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
    ctx.key_id = "key_bench"
    ctx.customer = "acme"
    return ctx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def scenario(name: str, n: int, receiver: str) -> tuple[float, str]:
    metrics = Metrics(MetricsSettings()) if name in ("metrics", "all") else None
    tracing = None
    if name in ("otel", "all"):
        from tollway.telemetry.tracing import Tracing

        tracing = Tracing(OtelSettings(endpoint=receiver))
        if hasattr(tracing, "start_export"):
            await tracing.start_export()
    outbox = None
    if name in ("billing", "all"):
        from tollway.storage.engine import make_engine

        engine = make_engine(f"sqlite:///{tempfile.gettempdir()}/tollway-telemetry-micro.db")  # never connected
        outbox = Outbox(engine, [BillingSinkSettings(id="meter", url=receiver + "/hook", secret="s")])
    stage = TelemetryStage(metrics, tracing) if metrics is not None or tracing is not None else None
    url = "http://127.0.0.1:18080/v1/chat/completions"
    headers = {"content-type": "application/json", "authorization": "Bearer sk"}

    async def one() -> None:
        ctx = make_ctx()
        if stage is not None:
            await stage.before(ctx)
        a = Attempt("mock", "openai", "gpt-4o-mini", url, time.perf_counter())
        ctx.attempts.append(a)
        req = UpstreamRequest("POST", url, headers, b"")
        if ctx.trace is not None:
            ctx.trace.start_attempt(a, req)
        else:
            _forward_client_trace(ctx, req)
        a.headers_at = time.perf_counter()
        a.status = ctx.status = 200
        if ctx.trace is not None:
            ctx.trace.response_body(BODY)
        ctx.usage = Usage(12, 9)
        ctx.cost = Decimal("0.0000072")
        ctx.model_served = "gpt-4o-mini-2024-07-18"
        ctx.overhead_header()
        a.ended = time.perf_counter()
        if stage is not None:
            await stage.after(ctx)
        if outbox is not None:  # what the ledger's background writer does with the record
            outbox.rows_for([UsageRecord(ctx.trace_id, ctx.started, ctx.route, provider="mock",
                                         model_requested="gpt-4o-mini", usage=ctx.usage, cost_usd=ctx.cost,
                                         key_id=ctx.key_id, customer=ctx.customer)])

    for _ in range(500):  # warm-up: label children, caches, connections
        await one()
    await asyncio.sleep(0.2)
    gc.collect()
    t = time.process_time()
    for i in range(n):
        await one()
        if i % 16 == 15:  # a server yields to the loop between requests
            await asyncio.sleep(0)
    note = ""
    if tracing is not None:
        await tracing.shutdown()  # sends what is still queued: part of the cost
        dropped = getattr(tracing, "dropped", None)
        if dropped:
            note = f" ({dropped} spans dropped: queue full)"
    cpu = time.process_time() - t
    if metrics is not None:
        metrics.exposition()  # one scrape, as Prometheus would
    return cpu / n * 1e6, note


async def store_line(n: int) -> float:
    """The outbox INSERT the writer adds to its transaction, per event, on a real SQLite store."""
    from tollway.storage.engine import make_engine, migrate

    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/bench.db"
        await migrate(url)
        engine = make_engine(url)
        outbox = Outbox(engine, [BillingSinkSettings(id="meter", url="http://127.0.0.1:9/hook", secret="s")])
        recs = [UsageRecord(f"trace-{i:08d}", time.time(), "openai.chat", usage=Usage(12, 9),
                            cost_usd=Decimal("0.0000072"), customer="acme") for i in range(n)]
        t = time.process_time()
        for i in range(0, n, 100):
            async with engine.begin() as conn:
                await outbox.write(conn, recs[i:i + 100])
        cpu = time.process_time() - t
        await engine.dispose()
    return cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--receiver", help="OTLP/webhook receiver base URL (default: start bench/null_receiver.py)")
    ap.add_argument("--store", action="store_true", help="also measure the outbox INSERT on SQLite")
    ap.add_argument("--scenarios", default="metrics,otel,billing,all", help="which of metrics,otel,billing,all")
    a = ap.parse_args()
    gc.set_threshold(20_000, 50, 100)  # as `tollway serve` sets it
    try:  # and its event loop
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    # Requests here cost ~10 µs, not ~175: a queue sized for a real server would overflow
    # while a batch is in the air, and dropped spans cost nothing, so the bench would flatter.
    os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", "1000000")
    proc = None
    receiver = a.receiver
    if receiver is None:
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(HERE / "null_receiver.py"), "--port", str(port),
                                 "--report-secs", "3600"], stdout=subprocess.DEVNULL)
        receiver = f"http://127.0.0.1:{port}"
        time.sleep(0.5)
    try:
        mode = " (multiprocess)" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else ""
        runs: dict[str, list[float]] = {}
        notes: dict[str, str] = {}
        for _ in range(a.repeat):
            for name in ("nothing", *a.scenarios.split(",")):
                us, note = asyncio.run(scenario(name, a.n, receiver))
                runs.setdefault(name, []).append(us)
                notes[name] = note or notes.get(name, "")
        base = statistics.median(runs["nothing"])
        print(f"{base:8.2f} µs  (a) nothing: CPU per request of the calls that always run")
        labels = {"metrics": "(b) metrics" + mode, "otel": "(c) otel: request + attempt span, exported",
                  "billing": "(d) billing: outbox rows for a record with a customer",
                  "all": "(e) all three"}
        for name, label in labels.items():
            if name not in runs:
                continue
            us = statistics.median(runs[name]) - base
            spread = max(runs[name]) - min(runs[name])
            print(f"{us:8.2f} µs  {label}  [±{spread / 2:.1f}]{notes[name]}")
        if a.store:
            print(f"{asyncio.run(store_line(a.n)):8.2f} µs  billing: outbox INSERT per event (SQLite, batches of 100)")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(5)


if __name__ == "__main__":
    main()
