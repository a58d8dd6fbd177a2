"""The portal in a real browser (Playwright + Debian chromium) against a Tollway whose records were
made through the SDKs: sign-in, every page shows its data, the numbers on the page equal what
/v1/stats, /v1/projects and /v1/records return for the same filter, filters change them, a
provider added in the UI serves a request, a viewer cannot change anything, and an open Tollway
says so. Each page is screenshotted to tests/artifacts/portal/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fakes.provider import FakeProvider
from tests.harness import TEAM_KEY, Tollway, anthropic_client, openai_client, standard_config

VIEWER, ADMIN = "tw-portal-viewer", "tw-portal-admin"
ENV = {"TOLLWAY_SECRET_KEY": "portal test secret box"}
HELLO = [{"role": "user", "content": "Hello"}]
PAGES = ["overview", "requests", "projects", "sources", "errors", "models", "ask", "providers"]


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url, ask={"model": "gpt-4o", "timeout_secs": 2})
    cfg["keys"] = [*cfg["keys"], {"id": "viewer", "key": VIEWER, "roles": ["viewer"]},
                   {"id": "ops", "key": ADMIN, "roles": ["admin"]}]
    t = Tollway(tmp_path_factory.mktemp("portal"), cfg, env=ENV)
    oai, team, claude = openai_client(t), openai_client(t, TEAM_KEY), anthropic_client(t)
    for i in range(9):
        h = {"x-tollway-project": ["alpha", "beta", "gamma"][i % 3], "x-tollway-source": ["web", "batch", "cron"][i % 3],
             "x-tollway-customer": f"cust-{i % 4}"}
        if i % 2:  # team-alpha's key is bound to project alpha: it names no other
            team.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_headers=own_project(h))
        else:
            oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_headers=h)
        if i % 3 == 0:
            claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=20, messages=HELLO, extra_headers=h)
        if i % 4 == 0:
            for _ in oai.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True, extra_headers=h,
                                                 stream_options={"include_usage": True}):
                pass  # read to the end: a stream the client drops would be recorded as an error
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x [[fault:500]]"}],
                                    extra_headers={"x-tollway-project": "beta", "x-tollway-source": "web"})
    with pytest.raises(anthropic.NotFoundError):  # unpriced: no model to price
        claude.messages.create(model="no-such-model", max_tokens=5, messages=HELLO,
                               extra_headers={"x-tollway-project": "alpha"})
    yield t
    t.stop()


# -- how the portal writes numbers (dashboard/src/format.ts) ------------------------------------------


def usd(value: str | None) -> str:
    if value is None:
        return "unpriced"
    whole, _, frac = value.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{int(whole):,}.{frac} USD"


def spend(e: dict[str, Any]) -> str:
    if e["requests"] and e["unpriced"] == e["requests"]:
        return "unpriced"
    return usd(e["cost_usd"]) + (f" + {e['unpriced']:,} unpriced" if e["unpriced"] else "")


def signed_in(browser: Browser, tw: Tollway, key: str, page: str = "overview", query: str = "") -> Page:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = ctx.new_page()
    p.goto(f"{tw.url}/#/{page}{query}")
    p.get_by_test_id("signin-key").fill(key)
    p.get_by_test_id("signin-submit").click()
    expect(p.get_by_test_id("page-title")).to_be_visible()
    return p


def shot(p: Page, artifacts: Path, name: str) -> None:
    p.wait_for_load_state("networkidle")
    p.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def cells(p: Page, table: str, col: str) -> list[str]:
    return [c.strip() for c in p.get_by_test_id(table).locator(f"td[data-col='{col}']").all_inner_texts()]


# -- tests ----------------------------------------------------------------------------------------------


def test_sign_in_refuses_wrong_and_model_only_keys(browser: Browser, tw: Tollway) -> None:
    p = browser.new_page()
    p.goto(tw.url + "/")
    for key, message in (("tw-wrong", "not valid"), (TEAM_KEY, "viewer or admin role")):
        p.get_by_test_id("signin-key").fill(key)
        p.get_by_test_id("signin-submit").click()
        expect(p.get_by_test_id("signin-error")).to_contain_text(message)
    assert p.evaluate("sessionStorage.getItem('tollway.key')") is None
    p.get_by_test_id("signin-key").fill(VIEWER)
    p.get_by_test_id("signin-submit").click()
    expect(p.get_by_test_id("who")).to_contain_text("viewer")
    assert p.evaluate("sessionStorage.getItem('tollway.key')") == VIEWER  # the session only
    assert p.evaluate("localStorage.length") == 0
    p.get_by_test_id("signout").click()
    expect(p.get_by_test_id("signin")).to_be_visible()
    p.context.close()


def test_overview_numbers_equal_stats(browser: Browser, tw: Tollway, artifacts: Path) -> None:
    p = signed_in(browser, tw, ADMIN)
    t = tw.get("/v1/stats?since=7d&group_by=hour")[1]["totals"]
    expect(p.get_by_test_id("card-requests-value")).to_have_text(f"{t['requests']:,}")
    expect(p.get_by_test_id("card-spend-value")).to_have_text(spend(t))
    assert "unpriced" in spend(t)  # the call to an unknown model has no price: never shown as $0
    expect(p.get_by_test_id("card-tokens-value")).to_have_text(f"{t['total_tokens']:,}")
    expect(p.get_by_test_id("card-errors")).to_contain_text(f"{t['errors']:,} errors")
    for group in ("model", "project", "source", "customer"):
        groups = tw.get(f"/v1/stats?since=7d&group_by={group}")[1]["groups"]
        names = p.get_by_test_id(f"top-{group}").locator(".bar-name")
        expect(names).to_have_text([g[group] or "(none)" for g in groups][:8])
        texts = p.get_by_test_id(f"top-{group}").locator(".bar-text")
        expect(texts).to_have_text([f"{spend(g)} · {g['requests']:,} req" for g in groups][:8])
    expect(p.get_by_test_id("chart-requests").locator("canvas")).to_have_count(1)
    shot(p, artifacts, "overview")
    p.context.close()


@pytest.mark.parametrize(("control", "value", "query"), [
    ("filter-project", "alpha", "project=alpha"),
    ("filter-source", "batch", "source=batch"),
    ("filter-customer", "cust-1", "customer=cust-1"),
    ("filter-key_id", "team-alpha", "key_id=team-alpha"),
    ("filter-model", "gpt-4o", "model=gpt-4o"),
    ("filter-status", "error", "status=error"),
    ("filter-range", "1h", "since=1h"),
])
def test_filters_change_the_numbers_to_those_of_stats(browser: Browser, tw: Tollway, control: str, value: str,
                                                      query: str) -> None:
    p = signed_in(browser, tw, VIEWER)
    everything = tw.get("/v1/stats?since=7d")[1]["totals"]
    expect(p.get_by_test_id("card-requests-value")).to_have_text(f"{everything['requests']:,}")
    box = p.get_by_test_id(control)
    if box.evaluate("e => e.tagName") == "SELECT":
        box.select_option(value)
    else:
        box.fill(value)
        box.press("Tab")
    since = "" if "since=" in query else "since=7d&"
    t = tw.get(f"/v1/stats?{since}{query}")[1]["totals"]
    assert t["requests"] != everything["requests"] or control == "filter-range"
    expect(p.get_by_test_id("card-requests-value")).to_have_text(f"{t['requests']:,}")
    expect(p.get_by_test_id("card-spend-value")).to_have_text(spend(t))
    assert query.split("=")[1] in p.url  # the filter is in the address: shareable, survives a reload
    p.reload()
    expect(p.get_by_test_id("card-requests-value")).to_have_text(f"{t['requests']:,}")
    p.context.close()


def test_requests_page_lists_filters_and_opens_a_record(browser: Browser, tw: Tollway, artifacts: Path) -> None:
    p = signed_in(browser, tw, VIEWER, "requests")
    rows = tw.get("/v1/records?since=7d&limit=50")[1]["data"]
    expect(p.get_by_test_id("records").locator("tbody tr")).to_have_count(len(rows))
    assert cells(p, "records", "cost") == [usd(r["cost_usd"]) for r in rows]
    assert cells(p, "records", "status") == [str(r["status"]) for r in rows]
    shot(p, artifacts, "requests")
    p.get_by_test_id("filter-project").fill("beta")
    p.get_by_test_id("filter-project").press("Tab")
    beta = tw.get("/v1/records?since=7d&project=beta&limit=50")[1]["data"]
    expect(p.get_by_test_id("records").locator("tbody tr")).to_have_count(len(beta))
    p.get_by_test_id("filter-status").select_option("error")
    failed_rows = tw.get("/v1/records?since=7d&project=beta&status=error")[1]["data"]
    expect(p.get_by_test_id("records").locator("tbody tr")).to_have_count(len(failed_rows))
    failed = next(r for r in failed_rows if r["status"] == 500)
    p.get_by_test_id("records").locator("tbody tr", has=p.locator("td[data-col='status']", has_text="500")).click()
    detail = p.get_by_test_id("record-detail")
    expect(detail.locator("dd[data-field='trace_id']")).to_have_text(failed["trace_id"])
    expect(detail.locator("dd[data-field='status']")).to_have_text("500")
    shot(p, artifacts, "requests-record")
    p.context.close()


def test_projects_page_is_live(browser: Browser, tw: Tollway, fake: FakeProvider, artifacts: Path) -> None:
    p = signed_in(browser, tw, VIEWER, "projects")
    listed = tw.get("/v1/projects?active_since_mins=60")[1]["data"]
    expect(p.get_by_test_id("projects").locator("td[data-col='slug']")).to_have_text(
        [x["slug"] or "(none)" for x in listed])
    assert cells(p, "projects", "spend") == [spend(x) for x in listed]
    shot(p, artifacts, "projects")
    openai_client(tw).chat.completions.create(model="gpt-4o-mini", messages=HELLO,
                                              extra_headers={"x-tollway-project": "brand-new"})
    # appears without a reload (polling every 3 s)
    expect(p.get_by_test_id("projects").locator("td[data-col='slug']", has_text="brand-new")).to_have_count(
        1, timeout=8000)
    p.get_by_test_id("active-since").select_option("5")
    recent = tw.get("/v1/projects?active_since_mins=5")[1]["data"]
    expect(p.get_by_test_id("projects").locator("td[data-col='requests']")).to_have_text(
        [f"{x['requests']:,}" for x in recent])
    p.context.close()


def test_sources_errors_models_pages(browser: Browser, tw: Tollway, artifacts: Path) -> None:
    p = signed_in(browser, tw, VIEWER, "sources")
    sources = tw.get("/v1/stats?since=7d&group_by=source")[1]["groups"]
    expect(p.get_by_test_id("sources").locator("td[data-col='source']")).to_have_text(
        [s["source"] or "(none)" for s in sources])
    expect(p.get_by_test_id("sources").locator("td[data-col='requests']")).to_have_text(
        [f"{s['requests']:,}" for s in sources])
    web = next(s for s in sources if s["source"] == "web")
    rate = 100 * (web["requests"] - web["errors"]) / web["requests"]
    expect(p.get_by_test_id("sources").locator("tr", has_text="web").locator("td[data-col='success']")).to_have_text(
        f"{rate:.1f} %")
    shot(p, artifacts, "sources")

    p.get_by_test_id("nav-errors").click()  # the 500 of gpt-4o had no fallback: customer-impacting; the 404 is no provider failure
    failed = tw.get("/v1/errors?since=7d")[1]["data"]
    assert [r["kind"] for r in failed] == ["customer"] and failed[0]["status"] == 500
    expect(p.get_by_test_id("card-impacting-value")).to_have_text("1")
    expect(p.get_by_test_id("card-mitigated-value")).to_have_text("0")
    expect(p.get_by_test_id("error-records").locator("td[data-col='status']")).to_have_text(["500"])
    expect(p.get_by_test_id("error-records").locator("td[data-col='deployment']")).to_have_text([failed[0]["deployment"]])
    shot(p, artifacts, "errors")

    p.get_by_test_id("nav-models").click()
    models = tw.get("/v1/models")[1]["data"]
    expect(p.get_by_test_id("models").locator("td[data-col='id']")).to_have_text([m["id"] for m in models])
    row = p.get_by_test_id("models").locator("tr", has=p.locator("td[data-col='id']", has_text=re.compile("^gpt-4o-mini$")))
    price = next(m for m in models if m["id"] == "gpt-4o-mini")["tollway"]["pricing"]
    expect(row.locator("td[data-col='in']")).to_have_text(usd(price["input_per_mtok"]))
    shot(p, artifacts, "models")
    p.context.close()


def test_ask_page(browser: Browser, tw: Tollway, fake: FakeProvider, artifacts: Path) -> None:
    p = signed_in(browser, tw, VIEWER, "ask")
    fake.reply_next("```sql\nSELECT project, COUNT(*) AS requests FROM ask_requests WHERE project IS NOT NULL "
                    "GROUP BY project ORDER BY requests DESC\n```", scope="gpt-4o")
    p.get_by_test_id("ask-question").fill("Which projects made the most requests?")
    p.get_by_test_id("ask-submit").click()
    expect(p.get_by_test_id("ask-sql")).to_contain_text("FROM ask_requests")
    groups = [g for g in tw.get("/v1/stats?group_by=project")[1]["groups"] if g["project"]]
    expect(p.get_by_test_id("ask-rows").locator("tbody tr")).to_have_count(len(groups))
    expect(p.get_by_test_id("ask-chart")).to_be_visible()
    shot(p, artifacts, "ask")
    fake.reply_next("```sql\nDELETE FROM usage_records\n```", scope="gpt-4o")
    p.get_by_test_id("ask-question").fill("Delete everything")
    p.get_by_test_id("ask-submit").click()
    expect(p.get_by_test_id("ask-refused")).to_contain_text("Only SELECT")
    expect(p.get_by_test_id("ask-sql")).to_have_text("DELETE FROM usage_records")
    shot(p, artifacts, "ask-refused")
    p.context.close()


def test_a_provider_added_in_the_ui_serves_a_request(browser: Browser, tw: Tollway, fake: FakeProvider,
                                                     artifacts: Path) -> None:
    p = signed_in(browser, tw, ADMIN, "providers")
    expect(p.get_by_test_id("providers").locator("td[data-col='id']")).to_have_text(["openai", "anthropic"])
    p.get_by_test_id("provider-id").fill("from-ui")
    p.get_by_test_id("provider-kind").select_option("openai")
    p.get_by_test_id("provider-base-url").fill(fake.url + "/v1")
    p.get_by_test_id("provider-api-key").fill("sk-typed-in-the-portal")
    p.get_by_test_id("provider-models").fill("ui-model, ui-other-*")
    p.get_by_test_id("provider-add").click()
    expect(p.get_by_test_id("providers").locator("td[data-col='id']")).to_have_text(["openai", "anthropic", "from-ui"])
    shot(p, artifacts, "providers")
    raw = openai_client(tw).chat.completions.with_raw_response.create(model="ui-other-7", messages=HELLO)
    assert tw.record(raw.headers["x-tollway-trace-id"])["provider"] == "from-ui"
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-typed-in-the-portal"
    p.on("dialog", lambda d: d.accept())
    p.get_by_test_id("provider-delete-from-ui").click()
    expect(p.get_by_test_id("providers").locator("td[data-col='id']")).to_have_text(["openai", "anthropic"])
    with pytest.raises(openai.NotFoundError):
        openai_client(tw).chat.completions.create(model="ui-model", messages=HELLO)
    p.get_by_test_id("provider-id").fill("bad id")
    p.get_by_test_id("provider-add").click()
    expect(p.get_by_test_id("provider-form").locator("xpath=..").get_by_test_id("error")).to_contain_text("id")
    p.context.close()


def test_a_viewer_cannot_change_anything(browser: Browser, tw: Tollway, fake: FakeProvider,
                                         artifacts: Path) -> None:
    p = signed_in(browser, tw, VIEWER, "providers")
    expect(p.get_by_test_id("providers-readonly")).to_be_visible()
    expect(p.get_by_test_id("provider-form")).to_have_count(0)
    expect(p.locator("[data-testid^='provider-delete-']")).to_have_count(0)
    shot(p, artifacts, "providers-viewer")
    # and the API behind the page says no too, even if the viewer tries it from the browser
    status = p.evaluate("""async (key) => (await fetch('/v1/providers', {method: 'POST', headers: {
        'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'},
        body: JSON.stringify({id: 'sneaky', kind: 'openai'})})).status""", VIEWER)
    assert status == 403
    assert [x["id"] for x in tw.get("/v1/providers")[1]["data"]] == ["openai", "anthropic"]
    p.context.close()


def test_an_open_tollway_says_so(browser: Browser, demo: Tollway, artifacts: Path) -> None:
    p = browser.new_page()
    p.goto(demo.url + "/")
    expect(p.get_by_test_id("open-banner")).to_contain_text("open")
    expect(p.get_by_test_id("who")).to_contain_text("open")
    expect(p.get_by_test_id("signin")).to_have_count(0)
    shot(p, artifacts, "open")
    p.close()


def test_serve_prints_the_portal_url(tw: Tollway) -> None:
    assert f"portal: http://127.0.0.1:{tw.port}/" in tw.log()


def test_money_is_exact_on_the_page(tw: Tollway) -> None:
    assert usd("1234.500000000") == "1,234.50 USD" and usd("0.000016800") == "0.0000168 USD"
    totals = tw.get("/v1/stats")[1]["totals"]
    assert Decimal(totals["cost_usd"]) == sum((Decimal(r["cost_usd"]) for r in tw.records(limit=1000)
                                               if r["cost_usd"] is not None), Decimal(0))


def own_project(h: dict[str, str]) -> dict[str, str]:
    """The attribution headers a key bound to project alpha may send: another project is a 403."""
    return {k: v for k, v in h.items() if k != "x-tollway-project" or v == "alpha"}
