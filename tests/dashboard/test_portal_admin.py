"""The portal's Keys & budgets and Guardrails & cache pages, and team as a filter, in a real browser
against a Tollway with teams, budgets, the guard (redacting, and refusing for one key) and the
exact cache on: no secret ever reaches a page; spend, limits, finding counts and cache numbers
equal what the admin API, /v1/guard and /v1/stats return; an admin creates, rotates and revokes a
key and it works (or stops working) at once; a viewer sees but cannot change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, expect

from tests.dashboard.test_portal import HELLO, cells, shot, signed_in, spend, usd
from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, openai_client, standard_config

VIEWER, ADMIN = "tw-portal2-viewer", "tw-portal2-admin"
RED, BLUE, GATE = "tw-red-team-key", "tw-blue-team-key", "tw-gated-key"
AWS = "AKIA" + "ZT3XGQWM7N4RB2VC"  # FAKE, in AWS's format
EMAIL = "jane.doe@example.com"


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url)
    cfg["sanitization"] = {"enabled": True, "redact_pii": True}
    cfg["cache"] = {"mode": "exact", "scope": "team"}
    cfg["teams"] = [{"id": "red", "name": "Red team", "rpm": 500, "budget": "20/month"}, {"id": "blue"}]
    cfg["keys"] = [*cfg["keys"], {"id": "viewer", "key": VIEWER, "roles": ["viewer"]},
                   {"id": "ops", "key": ADMIN, "roles": ["admin"]},
                   {"id": "red-svc", "key": RED, "team": "red", "project": "alpha", "rpm": 100, "budget": ["5/day"]},
                   {"id": "blue-svc", "key": BLUE, "team": "blue", "project": "beta"},
                   {"id": "gated", "key": GATE, "team": "blue", "sanitization": {"compliance_gate": True}}]
    t = Tollway(tmp_path_factory.mktemp("portal2"), cfg, env={"TOLLWAY_SECRET_KEY": "portal2 secret box"})
    red, blue = openai_client(t, RED), openai_client(t, BLUE)
    for i in range(3):
        red.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"red {i}"}])
    red.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "red 0"}])  # a cache hit
    blue.chat.completions.create(model="gpt-4o", messages=HELLO)
    blue.chat.completions.create(model="gpt-4o", messages=HELLO)  # a cache hit
    blue.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"Key {AWS}, mail {EMAIL}"}])
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(t, GATE).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": AWS}])
    yield t
    t.stop()


def test_keys_teams_and_budgets_show_no_secret(browser: Browser, tw: Tollway, artifacts: Path) -> None:
    p = signed_in(browser, tw, VIEWER, "keys")
    keys = tw.get("/admin/keys")[1]["data"]
    expect(p.get_by_test_id("keys").locator("td[data-col='id']")).to_have_text([k["id"] for k in keys])
    red = p.get_by_test_id("keys").locator("tr", has=p.locator("td[data-col='id']", has_text="red-svc"))
    expect(red.locator("td[data-col='team']")).to_have_text("red")
    expect(red.locator("td[data-col='limits']")).to_have_text("100 rpm")
    budget = next(k for k in keys if k["id"] == "red-svc")["budgets"][0]
    assert budget["spent_usd"] != "0"  # the red key's calls count against its day budget
    expect(red.locator("td[data-col='budgets']")).to_have_text(
        f"{usd(budget['spent_usd'])} of {usd(budget['limit_usd'])} / day")
    teams = tw.get("/admin/teams")[1]["data"]
    expect(p.get_by_test_id("teams").locator("td[data-col='id']")).to_have_text([g["id"] for g in teams])
    budgets = tw.get("/admin/budgets")[1]["data"]
    assert cells(p, "budgets", "spent") == [usd(b["spent_usd"]) for b in budgets]
    assert cells(p, "budgets", "limit") == [usd(b["limit_usd"]) for b in budgets]
    assert cells(p, "budgets", "scope") == [f"{b['scope']} {b['target']}" for b in budgets]
    html = p.content()
    for secret in (VIEWER, ADMIN, RED, BLUE, GATE, MASTER_KEY):
        assert secret not in html
    # a viewer: nothing to change, and the API behind the page refuses too
    expect(p.get_by_test_id("keys-readonly")).to_be_visible()
    expect(p.get_by_test_id("key-form")).to_have_count(0)
    expect(p.locator("[data-testid^='key-revoke-'], [data-testid^='key-rotate-']")).to_have_count(0)
    status = p.evaluate("""async (key) => (await fetch('/admin/keys', {method: 'POST', headers: {
        'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'},
        body: JSON.stringify({name: 'sneaky'})})).status""", VIEWER)
    assert status == 403
    shot(p, artifacts, "keys-viewer")
    p.context.close()


def test_an_admin_creates_rotates_and_revokes_a_key(browser: Browser, tw: Tollway, artifacts: Path) -> None:
    p = signed_in(browser, tw, ADMIN, "keys")
    p.get_by_test_id("key-name").fill("made in the portal")
    p.get_by_test_id("key-team").fill("red")
    p.get_by_test_id("key-rpm").fill("60")
    p.get_by_test_id("key-budget").fill("3/week")
    p.get_by_test_id("key-create").click()
    secret = p.get_by_test_id("key-secret-value").inner_text().strip()
    made = next(k for k in tw.get("/admin/keys")[1]["data"] if k["name"] == "made in the portal")
    assert secret.startswith(f"tw-{made['id']}-") and made["team"] == "red" and made["limits"]["rpm"] == 60
    row = p.get_by_test_id("keys").locator("tr", has=p.locator("td[data-col='id']", has_text=made["id"]))
    expect(row.locator("td[data-col='prefix']")).to_have_text(made["key_prefix"])
    assert secret not in row.inner_text()
    shot(p, artifacts, "keys-admin")
    p.get_by_test_id("key-secret").get_by_role("button").click()
    expect(p.get_by_test_id("key-secret")).to_have_count(0)  # shown once: gone for good
    assert secret not in p.content()
    # the new key works, and its call counts against its budget on the page
    openai_client(tw, secret).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    p.reload()
    budget = next(k for k in tw.get("/admin/keys")[1]["data"] if k["id"] == made["id"])["budgets"][0]
    assert budget["spent_usd"] != "0"
    expect(row.locator("td[data-col='budgets']")).to_have_text(
        f"{usd(budget['spent_usd'])} of {usd(budget['limit_usd'])} / week")
    p.on("dialog", lambda d: d.accept())
    p.get_by_test_id(f"key-rotate-{made['id']}").click()
    expect(p.get_by_test_id("key-rotated")).to_be_visible()
    with pytest.raises(openai.AuthenticationError):
        openai_client(tw, secret).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    fresh = p.get_by_test_id("key-rotated").locator("pre").inner_text().strip()
    openai_client(tw, fresh).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    p.get_by_test_id(f"key-revoke-{made['id']}").click()
    expect(row.locator("td[data-col='state']")).to_have_text("revoked")
    expect(p.get_by_test_id(f"key-revoke-{made['id']}")).to_have_count(0)
    with pytest.raises(openai.AuthenticationError):
        openai_client(tw, fresh).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    # config-file keys are read-only: no buttons
    expect(p.get_by_test_id("key-revoke-red-svc")).to_have_count(0)
    p.context.close()


def test_guard_and_cache_page(browser: Browser, tw: Tollway, artifacts: Path) -> None:
    p = signed_in(browser, tw, VIEWER, "guard")
    g = tw.get("/v1/guard?since=7d")[1]
    assert g["totals"]["calls"] == 2 and g["totals"]["blocked"] == 1 and g["totals"]["redacted"] == 1
    assert g["totals"]["request_findings"] == {"AWS_ACCESS_KEY": 2, "EMAIL_ADDRESS": 1}
    expect(p.get_by_test_id("card-guard-calls-value")).to_have_text("2")
    expect(p.get_by_test_id("card-guard-blocked-value")).to_have_text("1")
    expect(p.get_by_test_id("card-guard-redacted-value")).to_have_text("1")
    expect(p.get_by_test_id("guard-types").locator("td[data-col='type']")).to_have_text(
        ["AWS_ACCESS_KEY", "EMAIL_ADDRESS"])
    expect(p.get_by_test_id("guard-types").locator("td[data-col='count']")).to_have_text(["2", "1"])
    day = g["days"][-1]
    expect(p.get_by_test_id("guard-days").locator("td[data-col='day']")).to_have_text([day["time"][:10]])
    expect(p.get_by_test_id("guard-days").locator("td[data-col='request']")).to_have_text(
        "AWS_ACCESS_KEY ×2, EMAIL_ADDRESS ×1")
    assert AWS not in p.content() and EMAIL not in p.content()
    c = tw.get("/v1/stats?since=7d&group_by=day")[1]["totals"]
    assert c["cache_hits"] >= 2 and c["cost_saved_usd"] not in ("0", None)  # (and the admin test's key's)
    expect(p.get_by_test_id("card-cache-hits-value")).to_have_text(f"{c['cache_hits']:,}")
    expect(p.get_by_test_id("card-cache-rate-value")).to_have_text(f"{100 * c['cache_hits'] / c['requests']:.1f} %")
    expect(p.get_by_test_id("card-cache-saved-value")).to_have_text(usd(c["cost_saved_usd"]))
    shot(p, artifacts, "guard")
    # filters narrow both: team red had cache hits and no findings
    p.get_by_test_id("filter-team").fill("red")
    p.get_by_test_id("filter-team").press("Tab")
    expect(p.get_by_test_id("card-guard-calls-value")).to_have_text("0")
    red = tw.get("/v1/stats?since=7d&team=red")[1]["totals"]
    expect(p.get_by_test_id("card-cache-hits-value")).to_have_text(f"{red['cache_hits']:,}")
    p.context.close()


def test_team_filters_and_groups_the_overview(browser: Browser, tw: Tollway, artifacts: Path) -> None:
    p = signed_in(browser, tw, VIEWER, "overview")
    teams = tw.get("/v1/stats?since=7d&group_by=team")[1]["groups"]
    assert {g["team"] for g in teams} >= {"red", "blue"}
    expect(p.get_by_test_id("top-team").locator(".bar-name")).to_have_text([g["team"] or "(none)" for g in teams])
    expect(p.get_by_test_id("top-team").locator(".bar-text")).to_have_text(
        [f"{spend(g)} · {g['requests']:,} req" for g in teams])
    p.get_by_test_id("filter-team").fill("blue")
    p.get_by_test_id("filter-team").press("Tab")
    blue = tw.get("/v1/stats?since=7d&team=blue")[1]["totals"]
    assert blue["requests"] == 4
    expect(p.get_by_test_id("card-requests-value")).to_have_text(f"{blue['requests']:,}")
    expect(p.get_by_test_id("card-spend-value")).to_have_text(spend(blue))
    # team and project together (a pair rollup), as on the page
    by_model = tw.get("/v1/stats?since=7d&team=blue&group_by=model")[1]["groups"]
    expect(p.get_by_test_id("top-model").locator(".bar-name")).to_have_text([g["model"] for g in by_model])
    records = tw.get("/v1/records?since=7d&team=blue&limit=100")[1]["data"]
    assert len(records) == blue["requests"]
    shot(p, artifacts, "overview-team")
    p.context.close()
