"""Pending metric values flushed into prometheus-client give exactly what prometheus-client's
own calls give: bucket edges included, across several flushes. Guards `series.Hist`, which
adds to prometheus-client's histogram children below their public API."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tollway.telemetry.metrics import LATENCY_BUCKETS, OVERHEAD_BUCKETS
from tollway.telemetry.series import Hist, LatencySeries, Pending, RequestSeries


def samples(registry: CollectorRegistry) -> dict[tuple, float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples if not s.name.endswith("_created")}


def test_flushed_histograms_and_counters_equal_direct_calls() -> None:
    rng = random.Random(7)
    values = [0.0, *LATENCY_BUCKETS, *OVERHEAD_BUCKETS, 1e9, *(rng.expovariate(3.0) for _ in range(500))]
    direct, batched = CollectorRegistry(), CollectorRegistry()
    fams = {}
    for name, reg in (("direct", direct), ("batched", batched)):
        fams[name] = (Histogram("t_duration_seconds", "d", ["route"], buckets=LATENCY_BUCKETS, registry=reg),
                      Histogram("t_overhead_seconds", "o", ["route"], buckets=OVERHEAD_BUCKETS, registry=reg),
                      Counter("t_requests", "r", ["route"], registry=reg),
                      Counter("t_tokens", "t", ["route", "type"], registry=reg),
                      Counter("t_spend", "s", ["route"], registry=reg))
    dur, ovh, req, tok, spend = fams["batched"]
    lat = LatencySeries(Hist(LATENCY_BUCKETS, dur.labels("r")), Hist(OVERHEAD_BUCKETS, ovh.labels("r")),
                        Hist(LATENCY_BUCKETS, dur.labels("unused")))
    series = RequestSeries(req.labels("r"), (tok.labels("r", "input"), tok.labels("r", "output")),
                           spend.labels("r"), lat)
    pending = Pending()
    d_dur, d_ovh, d_req, d_tok, d_spend = fams["direct"]
    d_dur.labels("unused")
    d_tok.labels("r", "output")
    for i, v in enumerate(values):
        d_dur.labels("r").observe(v)
        d_ovh.labels("r").observe(v)
        d_req.labels("r").inc()
        d_tok.labels("r", "input").inc(i)
        d_spend.labels("r").inc(0.25)
        lat.duration.observe(v)
        lat.overhead.observe(v)
        series.requests += 1
        series.tokens[0] += i
        series.spend += Decimal("0.25")
        if not series.dirty:
            series.dirty = True
            pending.series.append(series)
        if i % 97 == 0:  # flushes in between add up
            pending.flush()
            assert not pending and not series.dirty
    pending.flush()
    got, want = samples(batched), samples(direct)
    assert got.keys() == want.keys()
    assert {k: v for k, v in got.items() if not k[0].endswith("_sum")} == {
        k: v for k, v in want.items() if not k[0].endswith("_sum")}  # counts and buckets: exact
    assert got == pytest.approx(want, rel=1e-12)  # sums: the same floats added in another order
    assert got[("t_duration_seconds_count", (("route", "r"),))] == len(values)
