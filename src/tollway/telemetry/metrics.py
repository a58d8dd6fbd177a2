"""Every Prometheus metric family Tollway exposes, and the small typed API that feeds them.

One place defines them all (README, Metrics, lists each): the request pipeline calls
`observe(ctx)` once per request; features call the named methods (`rate_limited(scope)`,
`cache_hit(cache)`, ...) when something happens. Families of features that have not landed
yet exist from the start (and show in `/metrics` with no samples), so dashboards and alerts
can be written against them now.

Cost on the hot path: a request adds to plain ints and floats of the series of its label
tuple (route, model, provider, status class[, opt-in labels]), found with one dict lookup;
`flush()` hands the sums to prometheus-client in batches (see `series` for why, and
bench/telemetry_micro.py for the numbers). Label values are bounded: a dimension that has
seen `max_label_values` distinct values reports any new one as "_other".

Several worker processes: when `PROMETHEUS_MULTIPROC_DIR` is set before prometheus_client
is imported (`prepare_multiprocess_dir()` does it for `serve --workers N`), every process
writes its samples to files there and `/metrics` aggregates them (prometheus-client's
multiprocess mode). Gauges say how to combine processes (`multiprocess_mode`). Each process
flushes its pending values into its files at most `FLUSH_SECS` after a request ends (a
timer armed by the first request after a flush, so an idle process never wakes up), and a
scrape waits `SCRAPE_WAIT_SECS` before it reads the files, so it counts every request that
ended, in any process, before the scrape began.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from bisect import bisect_left
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from tollway import __version__
from tollway.config import MetricsSettings
from tollway.telemetry.series import TOKEN_TYPES, Hist, LatencySeries, Pending, RequestSeries

if TYPE_CHECKING:
    from tollway.pipeline.context import RequestContext
    from tollway.storage.ledger import LedgerWriter
    from tollway.telemetry.span_export import SpanExporter

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "_other"
STATUS_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LEDGER_OUTCOMES = ("written", "replayed", "spooled", "rejected", "lost")
SPAN_OUTCOMES = ("exported", "dropped", "failed")
RAW_KEYS = 10_000  # series remembered by their raw label values
FLUSH_SECS = 0.2  # multiprocess: pending values reach this process's files at most this late
SCRAPE_WAIT_SECS = 0.5  # multiprocess: a scrape waits this long so every process has flushed


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """Empty `data_dir/prometheus` and point PROMETHEUS_MULTIPROC_DIR at it. Call once, in the
    parent process, before any worker starts (and before prometheus_client is imported)."""
    path = Path(data_dir) / "prometheus"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def spool_bytes(directory: Path) -> int:
    total = 0
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.name.endswith(".jsonl") and entry.name != "rejected.jsonl":
                    with contextlib.suppress(OSError):
                        total += entry.stat().st_size
    except OSError:
        return 0
    return total


class Metrics:
    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.multiprocess = multiprocess_dir() is not None
        disable_created_metrics()  # no `_created` series: half the series for nothing a dashboard uses
        self.registry = CollectorRegistry(auto_describe=True)
        self.extra_labels: tuple[str, ...] = tuple(settings.labels)
        self._max_values = settings.max_label_values
        self._seen: dict[str, set[str]] = {"model": set(), "project": set(), "source": set(), "customer": set(),
                                           "scanner": set()}
        self._series: dict[tuple, RequestSeries] = {}
        self._latency: dict[tuple[str, str, str], LatencySeries] = {}
        self._upstream: dict[tuple[str, str, str], Hist] = {}
        # the same, found by raw label values (see observe); bounded, as raw values are not
        self._by_raw: dict[tuple, RequestSeries] = {}
        self._upstream_by_raw: dict[tuple[str, str, bool], Hist] = {}
        self._pending = Pending()
        self._streams_open = 0  # streams in flight in this process (the gauge is set at flush)
        self._loop: asyncio.AbstractEventLoop | None = None  # multiprocess: arms the flush timer
        self._flush_armed = False
        self._ledger_last = dict.fromkeys(LEDGER_OUTCOMES, 0)
        self._ledger_errors_last = 0
        self._spans_last = dict.fromkeys(SPAN_OUTCOMES, 0)
        self._sync_task: asyncio.Task[None] | None = None
        r, x = self.registry, self.extra_labels

        # -- requests ------------------------------------------------------------------------------
        self.requests = Counter("tollway_requests", "Requests by route, model, provider and status class.",
                                ["route", "model", "provider", "status_class", *x], registry=r)
        self.tokens = Counter("tollway_tokens", "Tokens by type (input, output, cached, cache_creation, reasoning).",
                              ["route", "model", "provider", "type", *x], registry=r)
        self.spend = Counter("tollway_spend_usd", "Spend in USD (priced requests only).",
                             ["route", "model", "provider", *x], registry=r)
        self.duration = Histogram("tollway_request_duration_seconds", "Whole request, arrival to last byte.",
                                  ["route", "model", "provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.overhead = Histogram("tollway_overhead_seconds",
                                  "Time in Tollway itself up to the response start (x-tollway-overhead-ms).",
                                  ["route", "model", "provider"], buckets=OVERHEAD_BUCKETS, registry=r)
        self.upstream = Histogram("tollway_upstream_duration_seconds",
                                  "One upstream attempt, request sent to last byte read.",
                                  ["provider", "model", "outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("tollway_time_to_first_token_seconds", "Streams: arrival to first content token.",
                              ["route", "model", "provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.streams = Gauge("tollway_streams_in_flight", "Streaming requests being served now.",
                             registry=r, multiprocess_mode="livesum")
        # -- ledger ------------------------------------------------------------------------------
        self.ledger_queue = Gauge("tollway_ledger_queue_depth", "Usage records queued or being written.",
                                  registry=r, multiprocess_mode="livesum")
        self.ledger_spool = Gauge("tollway_ledger_spool_bytes", "Bytes of records spooled to local disk.",
                                  registry=r, multiprocess_mode="livemax")
        self.ledger_records = Counter("tollway_ledger_records", "Usage records by outcome.", ["outcome"], registry=r)
        self.ledger_errors = Counter("tollway_ledger_write_errors", "Failed writes to the store.", registry=r)
        # -- traces --------------------------------------------------------------------------------
        self.otel_spans = Counter("tollway_otel_spans", "Trace spans by outcome: exported, dropped (export queue "
                                  "full), failed (the receiver refused them or could not be reached).", ["outcome"],
                                  registry=r)
        # -- billing -----------------------------------------------------------------------------
        self.billing = Counter("tollway_billing_events", "Billing events by sink and outcome "
                               "(delivered, failed attempt, parked).", ["sink", "outcome"], registry=r)
        self.billing_outbox = Gauge("tollway_billing_outbox_pending", "Billing events waiting for delivery.",
                                    ["sink"], registry=r, multiprocess_mode="mostrecent")
        # -- features that call in when they land (budgets, limits, routing, cache, guard) -------
        self.budget_remaining = Gauge("tollway_budget_remaining_usd", "Budget left in the current period.",
                                      ["scope", "name"], registry=r, multiprocess_mode="mostrecent")
        self.limited = Counter("tollway_rate_limited", "Requests rejected by a rate or concurrency limit.",
                               ["scope"], registry=r)
        self.budget_rejected = Counter("tollway_budget_rejected", "Requests rejected by a budget.",
                                       ["scope"], registry=r)
        self.deployment_healthy = Gauge("tollway_deployment_healthy", "1 when routing considers a deployment "
                                        "healthy, 0 while its breaker is open.", ["provider", "model"], registry=r,
                                        multiprocess_mode="mostrecent")
        self.retries = Counter("tollway_retries", "Upstream attempts retried.", ["provider", "reason"], registry=r)
        self.fallbacks = Counter("tollway_fallbacks", "Requests that fell back to another deployment.",
                                 ["from_provider", "to_provider"], registry=r)
        self.cache = Counter("tollway_cache_lookups", "Response cache lookups.", ["cache", "result"], registry=r)
        self.guardrail = Counter("tollway_guardrail_findings", "Guardrail findings by scanner and action taken.",
                                 ["scanner", "action"], registry=r)
        self.info = Gauge("tollway_build_info", "Always 1; the version in a label.", ["version"], registry=r,
                          multiprocess_mode="max")
        self.info.labels(__version__).set(1)

    # -- the request pipeline ------------------------------------------------------------------------
    def _bound(self, dim: str, value: str | None) -> str:
        if not value:
            return ""
        seen = self._seen[dim]
        if value in seen:
            return value
        if len(seen) < self._max_values:
            seen.add(value)
            return value
        return OTHER

    def _key(self, ctx: "RequestContext") -> tuple:
        dep = ctx.deployment
        provider = ctx.provider.id if ctx.provider is not None else (dep.provider.id if dep is not None else "")
        status = ctx.status // 100
        key: tuple = (ctx.route, self._bound("model", dep.model) if dep is not None else "", provider,
                      STATUS_CLASSES[status] if 0 <= status < 6 else "none")
        for name in self.extra_labels:
            key += (self._bound(name, getattr(ctx, name)),)
        return key

    def _new_series(self, key: tuple) -> RequestSeries:
        route, model, provider, status_class, *extra = key
        lat = self._latency.get((route, model, provider))
        if lat is None:
            lat = self._latency[(route, model, provider)] = LatencySeries(
                Hist(LATENCY_BUCKETS, self.duration.labels(route, model, provider)),
                Hist(OVERHEAD_BUCKETS, self.overhead.labels(route, model, provider)),
                Hist(LATENCY_BUCKETS, self.ttft.labels(route, model, provider)))
        s = self._series[key] = RequestSeries(
            self.requests.labels(route, model, provider, status_class, *extra),
            tuple(self.tokens.labels(route, model, provider, t, *extra) for t in TOKEN_TYPES),
            self.spend.labels(route, model, provider, *extra), lat)
        return s

    def stream_opened(self, ctx: "RequestContext") -> None:
        ctx.stream_open = True
        self._streams_open += 1
        if self._loop is not None and not self._flush_armed:
            self._arm()

    def observe(self, ctx: "RequestContext", elapsed: float) -> None:
        """Everything about one finished request; `elapsed` in seconds."""
        if ctx.stream_open:
            ctx.stream_open = False
            self._streams_open -= 1
        dep = ctx.deployment
        # The series by the raw label values (most requests: one dict lookup); a miss bounds
        # the values (`_key`) and remembers the raw tuple while there is room.
        raw = (ctx.route, dep.model if dep is not None else "",
               ctx.provider.id if ctx.provider is not None else (dep.provider.id if dep is not None else ""),
               ctx.status)
        if self.extra_labels:
            raw += tuple([getattr(ctx, name) for name in self.extra_labels])
        s = self._by_raw.get(raw)
        if s is None:
            s = self._series_for(ctx, raw)
        s.requests += 1
        u = ctx.usage
        if u is not None:
            tok = s.tokens
            if u.input_tokens:
                tok[0] += u.input_tokens
            if u.output_tokens:
                tok[1] += u.output_tokens
            if u.cached_tokens:
                tok[2] += u.cached_tokens
            if u.cache_creation_tokens:
                tok[3] += u.cache_creation_tokens
            if u.reasoning_tokens:
                tok[4] += u.reasoning_tokens
        if ctx.cost:
            s.spend += ctx.cost
        lat = s.latency
        h = lat.duration
        h.counts[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
        h.sum += elapsed
        h = lat.overhead
        v = ctx.overhead if ctx.overhead is not None else max(0.0, elapsed - ctx.upstream_s)
        h.counts[bisect_left(OVERHEAD_BUCKETS, v)] += 1
        h.sum += v
        if ctx.ttft_ms is not None:
            h = lat.ttft
            v = ctx.ttft_ms / 1000.0
            h.counts[bisect_left(LATENCY_BUCKETS, v)] += 1
            h.sum += v
        if not s.dirty:
            s.dirty = True
            self._pending.series.append(s)
        for a in ctx.attempts:
            ukey = (a.provider_id, a.model, a.error_type is not None or a.status >= 400)
            h = self._upstream_by_raw.get(ukey)
            if h is None:
                h = self._upstream_for(ukey)
            v = (a.ended or a.headers_at) - a.started
            h.counts[bisect_left(LATENCY_BUCKETS, v)] += 1
            h.sum += v
            if not h.dirty:
                h.dirty = True
                self._pending.hists.append(h)
        if self._loop is not None and not self._flush_armed:
            self._arm()

    def _series_for(self, ctx: "RequestContext", raw: tuple) -> RequestSeries:
        key = self._key(ctx)
        s = self._series.get(key)
        if s is None:
            s = self._new_series(key)
        if len(self._by_raw) < RAW_KEYS:
            self._by_raw[raw] = s
        return s

    def _upstream_for(self, raw: tuple[str, str, bool]) -> Hist:
        provider_id, model, failed = raw
        key = (provider_id, self._bound("model", model), "error" if failed else "ok")
        h = self._upstream.get(key)
        if h is None:
            h = self._upstream[key] = Hist(LATENCY_BUCKETS, self.upstream.labels(*key))
        if len(self._upstream_by_raw) < RAW_KEYS:
            self._upstream_by_raw[raw] = h
        return h

    # -- flushing pending values into prometheus-client -----------------------------------------------
    def flush(self) -> None:
        """Hand what requests added since the last flush to prometheus-client (event loop thread)."""
        self._flush_armed = False
        if self._pending:
            self._pending.flush()
        self.streams.set(self._streams_open)

    def _arm(self) -> None:
        self._flush_armed = True
        self._loop.call_later(FLUSH_SECS, self.flush)  # type: ignore[union-attr]

    # -- features (call these when the feature lands) -------------------------------------------------
    def rate_limited(self, scope: str) -> None:
        """A request rejected by a rate or concurrency limit; scope e.g. "key", "project", "model"."""
        self.limited.labels(scope).inc()

    def budget_exceeded(self, scope: str) -> None:
        """A request rejected because a budget is spent; scope e.g. "key", "project", "customer"."""
        self.budget_rejected.labels(scope).inc()

    def budget_left(self, scope: str, name: str, usd: float) -> None:
        """What is left of a budget (names come from config, so they are few)."""
        self.budget_remaining.labels(scope, name).set(usd)

    def deployment_health(self, provider: str, model: str, healthy: bool) -> None:
        self.deployment_healthy.labels(provider, self._bound("model", model)).set(1 if healthy else 0)

    def retried(self, provider: str, reason: str) -> None:
        """An attempt is being retried; reason e.g. "429", "5xx", "timeout", "connect"."""
        self.retries.labels(provider, reason).inc()

    def fell_back(self, from_provider: str, to_provider: str) -> None:
        self.fallbacks.labels(from_provider, to_provider).inc()

    def cache_hit(self, cache: str) -> None:
        """cache: "exact" or "semantic"."""
        self.cache.labels(cache, "hit").inc()

    def cache_miss(self, cache: str) -> None:
        self.cache.labels(cache, "miss").inc()

    def guardrail_finding(self, scanner: str, action: str, n: int = 1) -> None:
        """scanner: the finding type (a credential rule or PII entity, e.g. "AWS_ACCESS_KEY",
        "EMAIL_ADDRESS": as many as the rules, bounded like model); action: what was done with
        the request ("refused", "redacted", "forwarded") or the answer ("logged", "redacted",
        "blocked")."""
        self.guardrail.labels(self._bound("scanner", scanner), action).inc(n)

    def billing_events(self, sink: str, outcome: str, n: int = 1) -> None:
        self.billing.labels(sink, outcome).inc(n)

    def billing_pending(self, sink: str, n: int) -> None:
        self.billing_outbox.labels(sink).set(n)

    # -- the ledger's counters, copied in the background and at each scrape ---------------------------
    def sync_ledger(self, ledger: "LedgerWriter") -> None:
        self.ledger_queue.set(ledger.pending)
        self.ledger_spool.set(spool_bytes(ledger.spool_dir))
        for outcome in LEDGER_OUTCOMES:
            now = getattr(ledger, outcome)
            delta = now - self._ledger_last[outcome]
            if delta > 0:
                self.ledger_records.labels(outcome).inc(delta)
            self._ledger_last[outcome] = now
        errors = ledger.write_errors
        if errors > self._ledger_errors_last:
            self.ledger_errors.inc(errors - self._ledger_errors_last)
        self._ledger_errors_last = errors

    def sync_tracing(self, exporter: "SpanExporter") -> None:
        for outcome in SPAN_OUTCOMES:
            now = getattr(exporter, outcome)
            delta = now - self._spans_last[outcome]
            if delta > 0:
                self.otel_spans.labels(outcome).inc(delta)
            self._spans_last[outcome] = now

    def start_sync(self, ledger: "LedgerWriter", exporter: "SpanExporter | None" = None,
                   interval: float = 1.0) -> None:
        for outcome in LEDGER_OUTCOMES:  # every family shows up from the first scrape
            self.ledger_records.labels(outcome)
        if exporter is not None:
            for outcome in SPAN_OUTCOMES:
                self.otel_spans.labels(outcome)

        async def run() -> None:
            while True:
                with contextlib.suppress(Exception):
                    self.sync_ledger(ledger)
                    if exporter is not None:
                        self.sync_tracing(exporter)
                await asyncio.sleep(interval)

        if self._sync_task is None:
            loop = asyncio.get_running_loop()
            self._sync_task = loop.create_task(run(), name="tollway-metrics-sync")
            if self.multiprocess:
                self._loop = loop

    async def stop(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
            self._sync_task = None
        self._loop = None
        self.flush()
        if self.multiprocess:
            from prometheus_client import multiprocess

            with contextlib.suppress(Exception):
                multiprocess.mark_process_dead(os.getpid())

    # -- exposition ----------------------------------------------------------------------------------
    async def scrape(self, ledger: "LedgerWriter", exporter: "SpanExporter | None" = None) -> bytes:
        """The text format, fresh: this process's pending values flushed first; in multiprocess
        mode, after waiting for the other processes' flush timers, every process's files."""
        self.sync_ledger(ledger)
        if exporter is not None:
            self.sync_tracing(exporter)
        self.flush()
        if not self.multiprocess:
            return self.exposition()
        await asyncio.sleep(SCRAPE_WAIT_SECS)
        self.flush()
        return await asyncio.to_thread(self.exposition)  # reads every worker's files: off the loop

    def exposition(self) -> bytes:
        """The text format of what was flushed. Multiprocess: every live and dead process's files, summed."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
