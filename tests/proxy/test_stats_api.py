"""/v1/stats grouping, windows and filters, and /v1/projects, on records made through the SDKs:
every number equals a count of what /v1/records returns for the same filter."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import TEAM_KEY, Tollway, anthropic_client, openai_client, standard_config

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    t = Tollway(tmp_path_factory.mktemp("stats-api"), standard_config(fake.url))
    oai, team, claude = openai_client(t), openai_client(t, TEAM_KEY), anthropic_client(t)
    for i in range(6):
        h = {"x-tollway-project": ["alpha", "beta", "gamma"][i % 3], "x-tollway-source": ["web", "batch"][i % 2],
             "x-tollway-customer": f"cust-{i % 2}"}
        if i % 2:  # team-alpha's key is bound to project alpha: it names no other
            team.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_headers=own_project(h))
        else:
            oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_headers=h)
        claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=20, messages=HELLO, extra_headers=h)
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x [[fault:500]]"}],
                                    extra_headers={"x-tollway-project": "beta", "x-tollway-source": "web"})
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="no-such-model", max_tokens=5, messages=HELLO,
                               extra_headers={"x-tollway-source": "web"})
    yield t
    t.stop()


def records(tw: Tollway, **f: str) -> list[dict[str, Any]]:
    return tw.records(limit=1000, **f)


def tally(rows: list[dict[str, Any]]) -> dict[str, Any]:
    priced = [Decimal(r["cost_usd"]) for r in rows if r["cost_usd"] is not None]
    return {"requests": len(rows), "errors": sum(1 for r in rows if r["status"] >= 400 or r["error_type"]),
            "input_tokens": sum(r["input_tokens"] or 0 for r in rows),
            "output_tokens": sum(r["output_tokens"] or 0 for r in rows),
            "cost_usd": f"{sum(priced, Decimal(0)):.9f}", "unpriced": len(rows) - len(priced)}


def same(entry: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    assert {k: entry[k] for k in tally(rows)} == tally(rows)


@pytest.mark.parametrize(("group", "field"), [("model", None), ("project", "project"), ("source", "source"),
                                              ("customer", "customer"), ("key", "key_id"), ("provider", "provider")])
def test_each_group_by_equals_the_records(tw: Tollway, group: str, field: str | None) -> None:
    status, body = tw.get(f"/v1/stats?group_by={group}&since=1h")
    assert status == 200, body
    rows = records(tw, since=str(time.time() - 3600))
    same(body["totals"], rows)
    by: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[(r["model_served"] or r["model_requested"]) if field is None else r[field]].append(r)
    assert {g[group] for g in body["groups"]} == set(by)
    for g in body["groups"]:
        same(g, by[g[group]])
    costs = [Decimal(g["cost_usd"]) for g in body["groups"]]
    assert costs == sorted(costs, reverse=True)  # by cost, most first


def test_filters_and_windows(tw: Tollway) -> None:
    for query, filters in (("key_id=team-alpha", {"key_id": "team-alpha"}), ("project=beta&status=error",
                           {"project": "beta", "status": "error"}), ("provider=anthropic", {"provider": "anthropic"}),
                           ("customer=cust-1&source=batch", {"customer": "cust-1", "source": "batch"})):
        status, body = tw.get(f"/v1/stats?group_by=day&{query}")
        assert status == 200, body
        same(body["totals"], records(tw, **filters))
        assert len(body["groups"]) == 1 and body["groups"][0]["time"].endswith("T00:00:00.000Z")
    assert tw.get("/v1/stats?since=1h&until=now")[1]["totals"]["requests"] == 14
    assert tw.get("/v1/stats?until=1h")[1]["totals"]["requests"] == 0
    assert tw.get("/v1/stats?since=2030-01-01")[1]["totals"]["requests"] == 0
    hour = tw.get("/v1/stats?group_by=hour&since=30m")[1]
    assert sum(g["requests"] for g in hour["groups"]) == 14


@pytest.mark.parametrize("query", ["group_by=colour", "since=yesterday", "until=7x", "status=maybe", "limit=3"])
def test_bad_stats_parameters_are_400(tw: Tollway, query: str) -> None:
    status, body = tw.get(f"/v1/stats?{query}")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"


def test_projects_active_since_equal_stats(tw: Tollway) -> None:
    status, body = tw.get("/v1/projects?active_since_mins=5")
    assert status == 200
    stats = tw.get("/v1/stats?group_by=project&since=5m")[1]
    assert [(p["slug"], p["requests"], p["cost_usd"]) for p in body["data"]] == \
        [(g["project"], g["requests"], g["cost_usd"]) for g in stats["groups"]]
    assert {p["slug"] for p in body["data"]} == {"alpha", "beta", "gamma", None}
    assert all(p["last_seen"] for p in body["data"])
    assert tw.get("/v1/projects")[1]["totals"]["requests"] == 14
    for bad in ("active_since_mins=0", "active_since_mins=soon", "project=alpha"):
        assert tw.get(f"/v1/projects?{bad}")[0] == 400


def test_project_records(tw: Tollway) -> None:
    status, body = tw.get("/v1/projects/alpha/records?limit=100")
    assert status == 200
    assert body["data"] and {r["project"] for r in body["data"]} == {"alpha"}
    assert len(body["data"]) == len(records(tw, project="alpha"))
    assert tw.get("/v1/projects/alpha/records?source=web")[1]["data"] == records(tw, project="alpha", source="web")
    assert tw.get("/v1/projects/alpha/records?project=beta")[0] == 400
    assert tw.get("/v1/projects/nobody/records")[1]["data"] == []
    assert tw.get("/v1/projects/alpha/other")[0] == 404


def test_records_filter_by_provider_and_until(tw: Tollway) -> None:
    rows = records(tw, provider="anthropic")
    assert rows and {r["provider"] for r in rows} == {"anthropic"}
    assert records(tw, until=str(time.time() - 3600)) == []


def test_stats_survive_a_restart(fake: FakeProvider, tmp_path: Path) -> None:
    t = Tollway(tmp_path, standard_config(fake.url))
    openai_client(t).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    before = t.get("/v1/stats?group_by=model")[1]
    t.stop()
    t = Tollway(tmp_path, standard_config(fake.url))
    try:
        assert t.get("/v1/stats?group_by=model")[1]["totals"] == before["totals"]
    finally:
        t.stop()


def own_project(h: dict[str, str]) -> dict[str, str]:
    """The attribution headers a key bound to project alpha may send: another project is a 403."""
    return {k: v for k, v in h.items() if k != "x-tollway-project" or v == "alpha"}
