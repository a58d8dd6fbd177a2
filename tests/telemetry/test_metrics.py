"""GET /metrics: auth, the request families against the ledger, opt-in and bounded labels,
ledger gauges, streams in flight, and prometheus-client's multiprocess mode: across two
Tollway processes sharing one directory, and across the workers of `serve --workers 2`."""

from __future__ import annotations

import os
import shutil
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.provider import FakeProvider
from tests.services import REDIS_URL, redis_prefix  # noqa: F401  (fixture)
from tests.harness import TEAM_KEY, Tollway, anthropic_client, openai_client, standard_config
from tests.telemetry.promtext import family_names, samples, scrape, value

FAMILIES = (
    "tollway_requests_total", "tollway_tokens_total", "tollway_spend_usd_total",
    "tollway_request_duration_seconds_bucket", "tollway_overhead_seconds_bucket",
    "tollway_upstream_duration_seconds_bucket", "tollway_time_to_first_token_seconds_bucket",
    "tollway_streams_in_flight", "tollway_ledger_queue_depth", "tollway_ledger_spool_bytes",
    "tollway_ledger_write_errors_total", "tollway_ledger_records_total", "tollway_billing_events_total",
    "tollway_billing_outbox_pending", "tollway_budget_remaining_usd", "tollway_rate_limited_total",
    "tollway_budget_rejected_total", "tollway_deployment_healthy", "tollway_retries_total",
    "tollway_fallbacks_total", "tollway_cache_lookups_total", "tollway_guardrail_findings_total",
    "tollway_build_info",
)


def test_metrics_need_the_master_key_unless_public(tollway: Tollway, fake: FakeProvider, tmp_path: Path) -> None:
    assert scrape(tollway, key=None)[0] == 401
    assert scrape(tollway, key=TEAM_KEY)[0] == 403
    status, text = scrape(tollway)
    assert status == 200 and "tollway_requests_total" in text
    tw = Tollway(tmp_path, standard_config(fake.url, metrics={"public": True}))
    try:
        assert scrape(tw, key=None)[0] == 200
    finally:
        tw.stop()


def test_every_family_is_exposed(tollway: Tollway) -> None:
    names = family_names(scrape(tollway)[1])
    assert [f for f in FAMILIES if f not in names] == []


TYPES = {
    "counter": ("tollway_requests", "tollway_tokens", "tollway_spend_usd", "tollway_ledger_records",
                "tollway_ledger_write_errors", "tollway_billing_events", "tollway_otel_spans", "tollway_rate_limited",
                "tollway_budget_rejected", "tollway_retries", "tollway_fallbacks", "tollway_cache_lookups",
                "tollway_guardrail_findings"),
    "histogram": ("tollway_request_duration_seconds", "tollway_overhead_seconds", "tollway_upstream_duration_seconds",
                  "tollway_time_to_first_token_seconds"),
    "gauge": ("tollway_streams_in_flight", "tollway_ledger_queue_depth", "tollway_ledger_spool_bytes",
              "tollway_billing_outbox_pending", "tollway_budget_remaining_usd", "tollway_deployment_healthy",
              "tollway_build_info"),
}


def test_families_have_their_types_and_labels(tollway: Tollway) -> None:
    openai_client(tollway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    text = scrape(tollway)[1]
    got = {fam.name: fam.type for fam in text_string_to_metric_families(text)}
    assert {name: got.get(name) for kind, names in TYPES.items() for name in names} == {
        name: kind for kind, names in TYPES.items() for name in names}
    labels = {n: set(ls) - {"le"} for n, ls, _ in samples(text)}
    assert labels["tollway_requests_total"] == {"route", "model", "provider", "status_class"}
    assert labels["tollway_tokens_total"] == {"route", "model", "provider", "type"}
    assert labels["tollway_request_duration_seconds_bucket"] == {"route", "model", "provider"}
    assert labels["tollway_upstream_duration_seconds_bucket"] == {"provider", "model", "outcome"}


def test_request_families_agree_with_the_ledger(fake: FakeProvider, tmp_path: Path) -> None:
    tw = Tollway(tmp_path, standard_config(fake.url))
    try:
        oai, claude = openai_client(tw), anthropic_client(tw)
        for _ in range(3):
            oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi [[cache]]"}])
        for _ in oai.chat.completions.create(model="gpt-4o-mini", stream=True,
                                             messages=[{"role": "user", "content": "hi"}]):
            pass
        claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=50,
                               messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError):
            oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "[[fault:429]]"}])
        with pytest.raises(openai.NotFoundError):
            oai.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        records = tw.records(limit=100)
        assert len(records) == 7
        text = scrape(tw)[1]
        chat = {"route": "openai.chat", "model": "gpt-4o-mini", "provider": "openai"}
        assert value(text, "tollway_requests_total", status_class="2xx", **chat) == 4
        assert value(text, "tollway_requests_total", status_class="4xx", **chat) == 1
        assert value(text, "tollway_requests_total", route="openai.chat", model="", provider="",
                     status_class="4xx") == 1  # unknown model: no model label, no cardinality
        assert value(text, "tollway_requests_total", route="anthropic.messages", model="claude-3-5-haiku-latest",
                     provider="anthropic", status_class="2xx") == 1
        for kind, field in (("input", "input_tokens"), ("output", "output_tokens"), ("cached", "cached_tokens"),
                            ("cache_creation", "cache_creation_tokens")):
            assert value(text, "tollway_tokens_total", type=kind) == sum(r[field] or 0 for r in records), kind
        spend = sum(Decimal(r["cost_usd"]) for r in records if r["cost_usd"])
        assert value(text, "tollway_spend_usd_total") == pytest.approx(float(spend), rel=1e-9)
        assert value(text, "tollway_request_duration_seconds_count") == 7
        assert value(text, "tollway_overhead_seconds_count") == 7
        assert value(text, "tollway_time_to_first_token_seconds_count", **chat) == 1
        assert value(text, "tollway_upstream_duration_seconds_count", provider="openai", outcome="ok") == 4
        assert value(text, "tollway_upstream_duration_seconds_count", provider="openai", outcome="error") == 1
        assert value(text, "tollway_streams_in_flight") == 0
        assert value(text, "tollway_ledger_records_total", outcome="written") == 7
        assert value(text, "tollway_ledger_queue_depth") == 0
        assert value(text, "tollway_ledger_write_errors_total") == 0
        assert {ls.get("customer") for n, ls, _ in samples(text) if n == "tollway_requests_total"} == {None}
    finally:
        tw.stop()


def test_streams_in_flight_counts_open_streams(fake: FakeProvider, tollway: Tollway) -> None:
    stream = openai_client(tollway).chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi [[chunk_delay:0.3]]"}])
    first = next(iter(stream))
    assert first is not None
    assert value(scrape(tollway)[1], "tollway_streams_in_flight") == 1
    for _ in stream:
        pass
    assert value(scrape(tollway)[1], "tollway_streams_in_flight") == 0


def test_opt_in_labels_are_bounded(fake: FakeProvider, tmp_path: Path) -> None:
    cfg = standard_config(fake.url, metrics={"labels": ["customer", "project"], "max_label_values": 2})
    tw = Tollway(tmp_path, cfg)
    try:
        oai = openai_client(tw)
        for customer in ("acme", "globex", "initech", "umbrella"):
            oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                        extra_headers={"x-tollway-customer": customer, "x-tollway-project": "p1"})
        text = scrape(tw)[1]
        by_customer = {ls["customer"]: v for n, ls, v in samples(text) if n == "tollway_requests_total"}
        assert by_customer == {"acme": 1, "globex": 1, "_other": 2}
        assert value(text, "tollway_tokens_total", project="p1", type="input") > 0
        # histograms never carry opt-in labels
        assert all("customer" not in ls for n, ls, _ in samples(text) if n.startswith("tollway_request_duration"))
    finally:
        tw.stop()


def test_multiprocess_mode_sums_processes_sharing_a_directory(fake: FakeProvider, tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    a = Tollway(dirs[0], standard_config(fake.url), env=env)
    b = Tollway(dirs[1], standard_config(fake.url), env=env)
    try:
        for tw, n in ((a, 2), (b, 3)):
            for _ in range(n):
                openai_client(tw).chat.completions.create(model="gpt-4o-mini",
                                                          messages=[{"role": "user", "content": "hi"}])
        for tw in (a, b):
            text = scrape(tw)[1]
            assert value(text, "tollway_requests_total", route="openai.chat", status_class="2xx") == 5
            assert value(text, "tollway_overhead_seconds_count") == 5
        assert len(list(shared.glob("*.db"))) >= 2  # each process writes its own files
        assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None
    finally:
        a.stop()
        b.stop()


def test_workers_each_count_and_any_worker_scrapes_them_all(
        fake: FakeProvider, tmp_path: Path, redis_prefix: str) -> None:  # noqa: F811
    cfg = standard_config(fake.url, redis={"url": REDIS_URL, "prefix": redis_prefix})
    tw = Tollway(tmp_path, cfg, extra_args=["--workers", "2"])
    try:
        for i in range(12):  # a new connection each: the kernel spreads them over the workers
            with openai.OpenAI(base_url=tw.url + "/v1", api_key=TEAM_KEY, max_retries=0) as oai:
                oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"hi {i}"}])
        for _ in range(6):  # whichever worker answers the scrape (each on a new connection)
            text = scrape(tw)[1]
            assert value(text, "tollway_requests_total", route="openai.chat", status_class="2xx") == 12
            assert value(text, "tollway_request_duration_seconds_count") == 12
        pids = {f.stem.rsplit("_", 1)[-1] for f in (tmp_path / ".tollway" / "prometheus").glob("*.db")}
        assert len(pids) >= 2, pids  # both workers write their own files
    finally:
        tw.stop()


def test_guardrail_findings_are_counted_by_type_and_action(fake: FakeProvider, tmp_path: Path) -> None:
    aws, email = "AKIA" + "ZT3XGQWM7N4RB2VC", "jane.doe@example.com"  # FAKE, in AWS's format
    cfg = standard_config(fake.url)
    cfg["sanitization"] = {"enabled": True, "redact_pii": True}
    cfg["keys"] = [{"id": "gate", "key": "tw-gate-key", "sanitization": {"compliance_gate": True}}]
    tw = Tollway(tmp_path, cfg)
    try:
        prompt = [{"role": "user", "content": f"Why does {aws} fail? Mail {email} or {email}."}]
        openai_client(tw).chat.completions.create(model="gpt-4o-mini", messages=prompt)
        with pytest.raises(openai.PermissionDeniedError):
            openai_client(tw, "tw-gate-key").chat.completions.create(model="gpt-4o-mini", messages=prompt)
        got = {(ls["scanner"], ls["action"]): v for n, ls, v in samples(scrape(tw)[1])
               if n == "tollway_guardrail_findings_total"}
        assert got == {("AWS_ACCESS_KEY", "redacted"): 1, ("EMAIL_ADDRESS", "redacted"): 2,
                       ("AWS_ACCESS_KEY", "refused"): 1, ("EMAIL_ADDRESS", "refused"): 2}
    finally:
        tw.stop()
