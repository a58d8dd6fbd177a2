"""Per-request metric values kept in plain Python, handed to prometheus-client in batches.

Why not call prometheus-client per request: every `inc()` / `observe()` of a label child
takes a lock, and in multiprocess mode also packs the new value into its mmap file; a
request touches about a dozen values (requests, tokens, spend, three latency histograms, the
upstream histogram), which measured ~7 µs of CPU per request single-process (~72 k
instructions in a running server) and more with `--workers`; this way ~2 µs (~19 k). Here a request adds to ints and floats of objects it finds with one dict
lookup (the series of its label tuple), and marks that series dirty once. `flush()` then
adds what accumulated since the last flush to the prometheus-client children (the families,
help texts, exposition and the multiprocess files stay prometheus-client's): at every scrape,
and in multiprocess mode also on a short timer (see `Metrics`), so other processes' scrapes
see this one's counts. A flush costs what one request used to cost per dirty series, so it
is never dearer than the per-request calls it replaces.

Everything here runs on the event loop thread: `observe` and `flush` must not race (the
scrape route flushes on the loop before it reads files in a thread).

Histograms: prometheus-client has no public call to add n observations to one bucket, so
`Hist.flush` adds to the child's `_buckets[i]` and `_sum` values (attributes every
prometheus-client release since 0.1 has had; `tests/telemetry/test_series.py` pins the
behaviour against the public `observe()`).
"""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal
from typing import Any

TOKEN_TYPES = ("input", "output", "cached", "cache_creation", "reasoning")
ZERO_USD = Decimal(0)


class Hist:
    """One histogram child's pending observations: counts per bucket (the last is +Inf) and
    their sum. Callers add with `counts[bisect_left(bounds, v)] += 1; sum += v`."""

    __slots__ = ("bounds", "counts", "sum", "child", "dirty")

    def __init__(self, bounds: tuple[float, ...], child: Any) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.child = child
        self.dirty = False

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def flush(self) -> None:
        counts = self.counts
        buckets = self.child._buckets
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)
                counts[i] = 0
        if self.sum:
            self.child._sum.inc(self.sum)
            self.sum = 0.0
        self.dirty = False


class LatencySeries:
    """The histograms of one (route, model, provider): whole request, overhead, time to first
    token. Shared by every status class and opt-in label value of that triple."""

    __slots__ = ("duration", "overhead", "ttft")

    def __init__(self, duration: Hist, overhead: Hist, ttft: Hist) -> None:
        self.duration = duration
        self.overhead = overhead
        self.ttft = ttft

    def flush(self) -> None:
        self.duration.flush()
        self.overhead.flush()
        self.ttft.flush()


class RequestSeries:
    """The counters of one (route, model, provider, status class[, opt-in labels]) label tuple.
    Spend adds up as Decimal (requests' costs are Decimal; adding one costs far less than
    turning it into a float) and becomes a float once, at the flush."""

    __slots__ = ("requests", "tokens", "spend", "latency", "dirty", "_requests", "_tokens", "_spend")

    def __init__(self, requests_child: Any, token_children: tuple[Any, ...], spend_child: Any,
                 latency: LatencySeries) -> None:
        self.requests = 0
        self.tokens = [0] * len(TOKEN_TYPES)
        self.spend = ZERO_USD
        self.latency = latency
        self.dirty = False
        self._requests = requests_child
        self._tokens = token_children
        self._spend = spend_child

    def flush(self) -> None:
        if self.requests:
            self._requests.inc(self.requests)
            self.requests = 0
        tokens = self.tokens
        for i, n in enumerate(tokens):
            if n:
                self._tokens[i].inc(n)
                tokens[i] = 0
        if self.spend:
            self._spend.inc(float(self.spend))
            self.spend = ZERO_USD
        self.dirty = False


class Pending:
    """The series and histograms with values not yet flushed, in the order they got dirty."""

    __slots__ = ("series", "hists")

    def __init__(self) -> None:
        self.series: list[RequestSeries] = []
        self.hists: list[Hist] = []

    def __bool__(self) -> bool:
        return bool(self.series or self.hists)

    def flush(self) -> None:
        series, self.series = self.series, []
        hists, self.hists = self.hists, []
        latencies: dict[int, LatencySeries] = {}
        for s in series:
            s.flush()
            latencies[id(s.latency)] = s.latency
        for lat in latencies.values():
            lat.flush()
        for h in hists:
            h.flush()
