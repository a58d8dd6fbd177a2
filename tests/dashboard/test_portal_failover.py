"""The portal after a real failover (Playwright + Debian chromium): the plan of gpt-4o-mini is
openai:gpt-4o-mini, anthropic:claude-haiku-4-5, openai:gpt-4o (`[routing] fallback_order`), and the
fake answers 500 for one deployment (`[[fault:500@gpt-4o-mini]]`: mitigated) or for all of them
(`[[fault:500]]`: customer-impacting). The Requests page's record shows its deployment, attempts and
each failed attempt; the Errors page lists GET /v1/errors (both kinds, counts per kind, filters);
the Models page shows GET /v1/catalog. What the page shows equals what the API returns."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, expect

from tests.attempts.conftest import routing_config
from tests.dashboard.test_portal import cells, shot, signed_in, usd
from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway

VIEWER = "tw-failover-viewer"


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = routing_config(fake.url)
    cfg["keys"] = [*cfg["keys"], {"id": "viewer", "key": VIEWER, "roles": ["viewer"]}]
    t = Tollway(tmp_path_factory.mktemp("portal-failover"), cfg)
    oai = openai.OpenAI(base_url=t.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
    ok = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}],
                                                       extra_headers={"x-tollway-project": "alpha"})
    t.record(ok.headers["x-tollway-trace-id"])
    for project in ("alpha", "beta"):  # served by the fallback: mitigated
        raw = oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi [[fault:500@gpt-4o-mini]]"}],
            extra_headers={"x-tollway-project": project})
        assert raw.headers["x-tollway-attempts"] == "2"
        t.record(raw.headers["x-tollway-trace-id"])
    with pytest.raises(openai.APIStatusError) as ei:  # every deployment failed: customer-impacting
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi [[fault:500]]"}],
                                    extra_headers={"x-tollway-project": "beta"})
    t.record(ei.value.response.headers["x-tollway-trace-id"])
    yield t
    t.stop()


def ms(n: float | None) -> str:  # dashboard/src/format.ts
    if n is None:
        return "–"
    if n >= 1000:
        return f"{Decimal(str(n / 1000)).quantize(Decimal('0.01'), ROUND_HALF_UP)} s"
    return f"{Decimal(str(n)).quantize(Decimal('0.01') if n < 10 else Decimal('1'), ROUND_HALF_UP)} ms"


def rate(r: float | None) -> str:  # dashboard/src/pages/models.tsx
    return "–" if r is None else f"{Decimal(str(100 * r)).quantize(Decimal('0.1'), ROUND_HALF_UP)} %"


def score(q: float | None) -> str:
    return "–" if q is None else f"{Decimal(str(q)).quantize(Decimal('0.01'), ROUND_HALF_UP)}"


def test_record_shows_its_attempts(browser: Browser, tw: Tollway, artifacts: Path) -> None:
    mitigated = tw.get("/v1/errors?kind=mitigated&limit=1")[1]["data"][0]
    rec = tw.get(f"/v1/records/{mitigated['trace_id']}")[1]
    assert rec["attempts"] == 2 and rec["failure"] == "mitigated" and rec["deployment"] == "anthropic:claude-haiku-4-5"
    p = signed_in(browser, tw, VIEWER, "requests", f"?open={rec['trace_id']}")
    detail = p.get_by_test_id("record-detail")
    expect(detail.get_by_test_id("record-deployment")).to_have_text(rec["deployment"])
    expect(detail.get_by_test_id("record-attempts")).to_have_text(str(rec["attempts"]))
    expect(detail.get_by_test_id("record-failure")).to_have_text("mitigated by failover")
    assert len(rec["attempt_errors"]) == 1 and rec["attempt_errors"][0].startswith("openai:gpt-4o-mini: 500")
    dep, _, rest = rec["attempt_errors"][0].partition(": ")
    status, _, reason = rest.partition(" ")
    expect(detail.get_by_test_id("attempt-errors").locator("td[data-col='deployment']")).to_have_text([dep])
    expect(detail.get_by_test_id("attempt-errors").locator("td[data-col='status']")).to_have_text([status])
    expect(detail.get_by_test_id("attempt-errors").locator("td[data-col='reason']")).to_have_text([reason])
    shot(p, artifacts, "record-attempts")

    customer = tw.get("/v1/errors?kind=customer")[1]["data"][0]
    rec = tw.get(f"/v1/records/{customer['trace_id']}")[1]
    p.goto(f"{tw.url}/#/requests?open={rec['trace_id']}")
    detail = p.get_by_test_id("record-detail")
    expect(detail.get_by_test_id("record-attempts")).to_have_text("3")
    expect(detail.get_by_test_id("record-failure")).to_have_text("customer-impacting")
    expect(detail.get_by_test_id("attempt-errors").locator("td[data-col='deployment']")).to_have_text(
        [e.partition(": ")[0] for e in rec["attempt_errors"]])
    assert [e.partition(": ")[0] for e in rec["attempt_errors"]] == [
        "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4o"]

    ok = tw.get("/v1/records?project=alpha&status=ok")[1]["data"]
    plain = next(r for r in ok if r["failure"] is None)
    p.goto(f"{tw.url}/#/requests?open={plain['trace_id']}")
    detail = p.get_by_test_id("record-detail")
    expect(detail.get_by_test_id("record-deployment")).to_have_text(plain["deployment"])
    expect(detail.get_by_test_id("record-attempts")).to_have_text("1")
    expect(detail.get_by_test_id("record-failure")).to_have_count(0)
    expect(detail.get_by_test_id("attempt-errors")).to_have_count(0)
    p.context.close()


def test_errors_page_is_customer_impacting_vs_mitigated(browser: Browser, tw: Tollway, artifacts: Path) -> None:
    p = signed_in(browser, tw, VIEWER, "errors")
    every = tw.get("/v1/errors?since=7d")[1]["data"]
    customer = tw.get("/v1/errors?since=7d&kind=customer")[1]["data"]
    mitigated = tw.get("/v1/errors?since=7d&kind=mitigated")[1]["data"]
    assert (len(customer), len(mitigated)) == (1, 2)
    expect(p.get_by_test_id("card-impacting-value")).to_have_text(str(len(customer)))
    expect(p.get_by_test_id("card-mitigated-value")).to_have_text(str(len(mitigated)))
    expect(p.get_by_test_id("error-records").locator("tbody tr")).to_have_count(len(every))
    assert cells(p, "error-records", "kind") == [r["kind"] for r in every]  # newest first, as the API
    assert cells(p, "error-records", "deployment") == [r["deployment"] or "(none)" for r in every]
    assert cells(p, "error-records", "attempts") == [str(r["attempts"]) for r in every]
    assert cells(p, "error-records", "attempt_errors") == ["; ".join(r["attempt_errors"]) for r in every]
    shot(p, artifacts, "errors-failover")

    p.get_by_test_id("filter-kind").select_option("mitigated")
    expect(p.get_by_test_id("error-records").locator("td[data-col='kind']")).to_have_text(["mitigated"] * len(mitigated))
    assert cells(p, "error-records", "project") == [r["project"] for r in mitigated]

    p.get_by_test_id("filter-project").fill("beta")
    p.get_by_test_id("filter-project").press("Tab")
    beta = tw.get("/v1/errors?since=7d&project=beta&kind=mitigated")[1]["data"]
    expect(p.get_by_test_id("error-records").locator("tbody tr")).to_have_count(len(beta))
    expect(p.get_by_test_id("card-impacting-value")).to_have_text(
        str(len(tw.get("/v1/errors?since=7d&project=beta&kind=customer")[1]["data"])))
    expect(p.get_by_test_id("card-mitigated-value")).to_have_text(str(len(beta)))

    p.get_by_test_id("error-records").locator("tbody tr").first.click()
    expect(p.get_by_test_id("record-detail").get_by_test_id("record-deployment")).to_have_text(beta[0]["deployment"])
    p.context.close()


def test_models_page_shows_the_catalog(browser: Browser, tw: Tollway, artifacts: Path) -> None:
    p = signed_in(browser, tw, VIEWER, "models")
    catalog = tw.get("/v1/catalog", key=VIEWER)[1]["data"]
    expect(p.get_by_test_id("catalog").locator("td[data-col='id']")).to_have_text([m["id"] for m in catalog])
    expect(p.get_by_test_id("catalog").locator("td[data-col='context_window']")).to_have_text(
        [f"{m['context_window']:,}" if m["context_window"] is not None else "–" for m in catalog])
    expect(p.get_by_test_id("catalog").locator("td[data-col='in']")).to_have_text(
        [usd(m["pricing"]["input_per_mtok"]) if m["pricing"] else "unpriced" for m in catalog])
    expect(p.get_by_test_id("catalog").locator("td[data-col='capabilities']")).to_have_text(
        [(", ".join(m["capabilities"]) or "none") if m["capabilities"] is not None else "unknown" for m in catalog])
    mini = next(m for m in catalog if m["id"] == "gpt-4o-mini")
    row = p.get_by_test_id("catalog").locator("tbody tr").nth(catalog.index(mini))
    expected = []
    for d in mini["deployments"]:
        text = (f"{d['deployment']}: {ms(d['latency_ms'])}, TTFT {ms(d['ttft_ms'])}, errors {rate(d['error_rate'])}, "
                f"quality {score(d['quality'])}")
        expected.append(text + (f", breaker {d['breaker']}" if d["breaker"] and d["breaker"] != "closed" else ""))
    expect(row.locator("li")).to_have_text(expected)
    failing = next(d for d in mini["deployments"] if d["deployment"] == "openai:gpt-4o-mini")
    assert failing["error_rate"] and failing["latency_ms"] is not None  # observed: it failed, and served once
    shot(p, artifacts, "models-catalog")
    p.context.close()
