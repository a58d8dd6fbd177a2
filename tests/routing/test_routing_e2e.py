"""Routing through a real Tollway and the official SDKs: the deployment that served is the one
explain planned first; profiles per request and per key; the capabilities layer; affinity; the
catalog, model, health, profile and signal endpoints."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway, anthropic_client, openai_client, standard_config

VIEWER_KEY = "tw-viewer-only-key"
MINI_KEY = "tw-mini-only-key"
HELLO = [{"role": "user", "content": "hello"}]
TWO = [{"target": "openai:gpt-4o"}, {"target": "openai:gpt-4o-mini"}]


def config(fake_url: str, **extra: Any) -> dict[str, Any]:
    cfg = standard_config(fake_url, models=[
        {"name": "smart", "fallback_order": ["openai:gpt-4o", "anthropic:claude-haiku-4-5"]},
        {"name": "cheap", "policy": "cheapest", "deployments": [{"target": "openai:gpt-4o"},
                                                                {"target": "openai:gpt-4o-mini"}]},
        {"name": "spread", "policy": "weighted", "deployments": TWO},
        {"name": "q", "policy": "quality", "deployments": TWO},
        {"name": "small", "deployments": [{"target": "openai:gpt-4o", "context_window": 600},
                                          {"target": "openai:gpt-4o-mini", "capabilities": ["json"]}]},
    ], routing={"auto": True, "quality_refresh_secs": 0.2, "profiles": [
        {"name": "pricey", "weights": {"cost": 0.0, "latency": 0.0, "quality": 0.0}, "prefer": ["openai:gpt-4o"]},
        {"name": "frugal", "weights": {"cost": 1.0, "latency": 0.0, "quality": 0.0}}]}, **extra)
    cfg["keys"][0]["routing_profile"] = "frugal"
    cfg["keys"].append({"id": "portal", "key": VIEWER_KEY, "roles": ["viewer"]})
    cfg["keys"].append({"id": "minis", "key": MINI_KEY, "models": ["gpt-4o-mini*"]})
    return cfg


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    t = Tollway(tmp_path_factory.mktemp("routing"), config(fake.url))
    yield t
    t.stop()


def post(tw: Tollway, path: str, body: dict[str, Any], key: str = MASTER_KEY,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(tw.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key}", "content-type": "application/json",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def served_model(fake: FakeProvider) -> str:
    last = fake.requests[-1]
    return last.json["model"] if last.json else ""


def test_explain_plans_first_the_deployment_that_serves(tw: Tollway, fake: FakeProvider) -> None:
    oai = openai_client(tw)
    for model in ("smart", "cheap"):
        status, explained = post(tw, "/v1/route/explain", {"model": model, "messages": HELLO})
        assert status == 200, explained
        assert [layer["name"] for layer in explained["layers"]] == ["candidates", "capabilities", "policy", "health",
                                                                     "scoring"]
        oai.chat.completions.create(model=model, messages=HELLO)  # type: ignore[arg-type]
        assert f"openai:{served_model(fake)}" == explained["plan"][0]
    assert explained["plan"] == ["openai:gpt-4o-mini", "openai:gpt-4o"] and explained["policy"] == "cheapest"
    scores = {k["deployment"]: k["score"] for k in explained["layers"][-1]["kept"]}
    assert scores["openai:gpt-4o-mini"] < scores["openai:gpt-4o"]
    assert float(explained["cost_estimate"]) > 0
    # the Anthropic client's messages body, and the answer when nothing can serve
    status, explained = post(tw, "/v1/route/explain", {"model": "smart", "max_tokens": 10, "messages": HELLO},
                             headers={"anthropic-version": "2023-06-01"})
    assert explained["plan"] == ["openai:gpt-4o", "anthropic:claude-haiku-4-5"]
    answer = anthropic_client(tw).messages.create(model="smart", max_tokens=10, messages=HELLO)  # type: ignore[arg-type]
    assert answer.content and fake.requests[-1].path == "/v1/chat/completions"  # translated to the first deployment
    assert served_model(fake) == "gpt-4o"


def test_profiles_per_request_and_per_key(tw: Tollway, fake: FakeProvider) -> None:
    status, body = tw.get("/v1/profiles", key=TEAM_KEY)
    assert status == 200 and [p["name"] for p in body["data"]] == ["pricey", "frugal"]
    assert body["key_profile"] == "frugal"
    oai = openai_client(tw)
    oai.chat.completions.create(model="spread", messages=HELLO, extra_headers={"x-tollway-profile": "pricey"})  # type: ignore[arg-type]
    assert served_model(fake) == "gpt-4o"
    for _ in range(5):  # the team key's own profile: the cheapest, whatever the weighted policy says
        openai_client(tw, TEAM_KEY).chat.completions.create(model="spread", messages=HELLO)  # type: ignore[arg-type]
        assert served_model(fake) == "gpt-4o-mini"
    with pytest.raises(openai.BadRequestError, match="Unknown routing profile"):
        oai.chat.completions.create(model="spread", messages=HELLO, extra_headers={"x-tollway-profile": "nope"})  # type: ignore[arg-type]
    status, explained = post(tw, "/v1/route/explain", {"model": "spread", "messages": HELLO, "profile": "pricey"})
    assert explained["profile"] == "pricey" and explained["plan"][0] == "openai:gpt-4o"


def test_the_capabilities_layer_routes_around_a_small_context_and_missing_tools(tw: Tollway,
                                                                               fake: FakeProvider) -> None:
    oai = openai_client(tw)
    oai.chat.completions.create(model="small", messages=HELLO)  # type: ignore[arg-type]
    assert served_model(fake) == "gpt-4o"
    oai.chat.completions.create(model="small", messages=HELLO, max_tokens=1000)  # type: ignore[arg-type]
    assert served_model(fake) == "gpt-4o-mini"  # gpt-4o's declared window is 600 tokens
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    oai.chat.completions.create(model="small", messages=HELLO, tools=tools)  # type: ignore[arg-type]
    assert served_model(fake) == "gpt-4o"
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="small", messages=HELLO, tools=tools, max_tokens=1000)  # type: ignore[arg-type]
    assert "no tools support" in str(e.value) and "context window 600" in str(e.value)
    assert len(fake.requests) == before  # no provider was called
    with pytest.raises(anthropic.BadRequestError):  # in the client's own format
        anthropic_client(tw).messages.create(model="small", max_tokens=1000, messages=HELLO, tools=[  # type: ignore[arg-type]
            {"name": "f", "input_schema": {"type": "object"}}])


def test_a_session_sticks_to_the_deployment_that_served_it(tw: Tollway, fake: FakeProvider) -> None:
    oai = openai_client(tw)
    seen = set()
    for _ in range(12):
        oai.chat.completions.create(model="spread", messages=HELLO, extra_headers={"x-tollway-session": "s-1"})  # type: ignore[arg-type]
        seen.add(served_model(fake))
    assert len(seen) == 1
    for _ in range(12):
        oai.chat.completions.create(model="spread", messages=HELLO, user="alice")  # type: ignore[arg-type]
        seen.add(fake.requests[-1].json["model"])  # type: ignore[index]
    firsts = {fake.requests[-i].json["model"] for i in range(1, 12)}  # type: ignore[index]
    assert len(firsts) == 1


def test_catalog_models_and_health(tw: Tollway) -> None:
    openai_client(tw).chat.completions.create(model="smart", messages=HELLO)  # type: ignore[arg-type]
    status, cat = tw.get("/v1/catalog", key=TEAM_KEY)
    assert status == 200
    entries = {e["id"]: e for e in cat["data"]}
    assert {"smart", "cheap", "fast", "gpt-4o-mini"} <= set(entries)
    smart = entries["smart"]
    assert smart["provider"] == "openai" and smart["context_window"] and smart["pricing"]["input_per_mtok"]
    assert [d["deployment"] for d in smart["deployments"]] == ["openai:gpt-4o", "anthropic:claude-haiku-4-5"]
    assert {"latency_ms", "ttft_ms", "error_rate", "quality", "capabilities"} <= set(smart)
    assert entries["small"]["deployments"][1]["capabilities"] == ["json"]
    status, model = tw.get("/v1/models/smart")
    assert status == 200 and model["id"] == "smart" and model["object"] == "model"
    assert model["tollway"]["deployments"][0]["deployment"] == "openai:gpt-4o"
    assert "smart" in {m.id for m in openai_client(tw).models.list()}
    status, health = tw.get("/v1/health/deployments")
    assert status == 200
    rows = {r["deployment"]: r for r in health["data"]}
    assert rows["openai:gpt-4o"]["state"] == "closed" and rows["openai:gpt-4o"]["in_flight"] == 0
    assert tw.get("/v1/health/deployments", key=TEAM_KEY)[0] == 403  # a user key: viewer role needed
    assert tw.get("/v1/health/deployments", key=VIEWER_KEY)[0] == 200
    # the portal (a viewer key, which calls no model) explains too; no key at all does not
    assert post(tw, "/v1/route/explain", {"model": "smart", "messages": HELLO}, key=VIEWER_KEY)[0] == 200
    assert post(tw, "/v1/route/explain", {"model": "smart", "messages": HELLO}, key="tw-wrong")[0] == 401


def test_signals_feed_the_quality_policy_and_the_catalog(tw: Tollway) -> None:
    oai = openai_client(tw)
    for model, thumbs in (("gpt-4o", "down"), ("gpt-4o-mini", "up")):
        raw = oai.chat.completions.with_raw_response.create(model=model, messages=HELLO)  # type: ignore[arg-type]
        trace = raw.headers["x-tollway-trace-id"]
        tw.record(trace)
        status, body = post(tw, "/v1/signals", {"trace_id": trace, "thumbs": thumbs, "label": "test"}, key=TEAM_KEY)
        assert status == 201 and body["score"] in (0.0, 1.0)
    assert post(tw, "/v1/signals", {"trace_id": "x", "score": 2})[0] == 400
    status, summary = tw.get("/v1/signals")
    rows = {(r["provider"], r["model"]): r for r in summary["data"]}
    assert rows[("openai", "gpt-4o")]["score"] == 0.0 and rows[("openai", "gpt-4o-mini")]["score"] == 1.0
    deadline = time.time() + 5
    while True:
        _, explained = post(tw, "/v1/route/explain", {"model": "q", "messages": HELLO})
        if explained["plan"][0] == "openai:gpt-4o-mini" or time.time() > deadline:
            break
        time.sleep(0.1)
    assert explained["plan"] == ["openai:gpt-4o-mini", "openai:gpt-4o"]
    _, cat = tw.get("/v1/catalog")
    q = {d["deployment"]: d["quality"] for e in cat["data"] if e["id"] == "q" for d in e["deployments"]}
    assert q == {"openai:gpt-4o": 0.0, "openai:gpt-4o-mini": 1.0}


def test_two_instances_share_open_breakers_through_redis(fake: FakeProvider, tmp_path: Path,
                                                         redis_prefix: str) -> None:
    """An instance opens a breaker (here: written to the shared table as another instance's sync
    does); the other routes around it, and with every deployment open answers 503 in the client's
    format without calling a provider."""
    import redis

    from tests.services import REDIS_URL

    cfg = config(fake.url, redis={"url": REDIS_URL, "prefix": redis_prefix})
    tws = [Tollway(tmp_path / name, cfg) for name in ("a", "b") if (tmp_path / name).mkdir() is None]
    try:
        client = redis.Redis.from_url(REDIS_URL)
        client.hset(f"{redis_prefix}health:breakers", "openai:gpt-4o", repr(time.time() + 60))
        for tw in tws:
            deadline = time.time() + 5
            while True:
                _, health = tw.get("/v1/health/deployments")
                state = {r["deployment"]: r["state"] for r in health["data"]}["openai:gpt-4o"]
                if state == "open" or time.time() > deadline:
                    break
                time.sleep(0.05)
            assert state == "open" and health["shared"]
            openai_client(tw).chat.completions.create(model="smart", messages=HELLO)  # type: ignore[arg-type]
            assert fake.requests[-1].path == "/v1/messages"  # the fallback served
        client.hset(f"{redis_prefix}health:breakers", "anthropic:claude-haiku-4-5", repr(time.time() + 60))
        time.sleep(1.0)
        before = len(fake.requests)
        with pytest.raises(openai.APIStatusError) as e:
            openai_client(tws[1]).chat.completions.create(model="smart", messages=HELLO)  # type: ignore[arg-type]
        assert e.value.status_code == 503 and "No healthy deployment" in str(e.value)
        assert len(fake.requests) == before
        client.close()
    finally:
        for tw in tws:
            tw.stop()


def test_auto_with_a_key_allow_list_routes_only_where_the_key_may_go(tw: Tollway, fake: FakeProvider) -> None:
    status, explained = post(tw, "/v1/route/explain", {"model": "auto", "messages": HELLO}, key=MINI_KEY)
    assert status == 200 and explained["plan"] == ["openai:gpt-4o-mini"]
    policy = next(layer for layer in explained["layers"] if layer["name"] == "policy")
    assert {"deployment": "openai:gpt-4o", "reason": "key 'minis' may not use gpt-4o"} in policy["removed"]
    openai_client(tw, MINI_KEY).chat.completions.create(model="auto", messages=HELLO)  # type: ignore[arg-type]
    assert served_model(fake) == "gpt-4o-mini"
    with pytest.raises(openai.PermissionDeniedError):  # a name whose deployments it may not use
        openai_client(tw, MINI_KEY).chat.completions.create(model="smart", messages=HELLO)  # type: ignore[arg-type]


def test_max_tpm_moves_traffic_on_once_a_deployment_used_its_minute(fake: FakeProvider, tmp_path: Path) -> None:
    """The fake answers 11 input + 7 output tokens: a deployment with max_tpm 30 serves two calls
    (18, then 36 tokens this minute), and the third goes to the next deployment."""
    cfg = standard_config(fake.url, models=[{"name": "capped", "deployments": [
        {"target": "openai:gpt-4o", "max_tpm": 30}, {"target": "openai:gpt-4o-mini"}]}])
    if time.time() % 60 > 55:  # the clock minute must not turn over mid-test
        time.sleep(61 - time.time() % 60)
    t = Tollway(tmp_path, cfg)
    try:
        client = openai.OpenAI(base_url=t.url + "/v1", api_key=MASTER_KEY, max_retries=0)
        routes = [client.chat.completions.with_raw_response.create(model="capped", messages=HELLO)
                  .headers["x-tollway-route"] for _ in range(3)]
        assert routes == ["openai:gpt-4o", "openai:gpt-4o", "openai:gpt-4o-mini"]
        status, explained = post(t, "/v1/route/explain", {"model": "capped", "messages": HELLO})
        assert status == 200
        health = next(layer for layer in explained["layers"] if layer["name"] == "health")
        assert health["removed"] == [{"deployment": "openai:gpt-4o", "reason": "at max_tpm (30 tokens this minute)"}]
    finally:
        t.stop()


def test_under_a_budget_an_unpriced_deployment_gives_way_to_a_priced_one(fake: FakeProvider, tmp_path: Path) -> None:
    """`[budgets] unpriced = "refuse"` (the default): a key with a budget is routed to the priced
    deployment of a model whose first deployment has no known price; a key without one is not."""
    cfg = standard_config(fake.url, models=[{"name": "mixed", "policy": "priority", "deployments": [
        {"target": "openai:gpt-4.1-house-tuned"}, {"target": "openai:gpt-4o-mini"}]}])
    cfg["keys"].append({"id": "budgeted", "key": "tw-budgeted-key", "budget": "100/month"})
    t = Tollway(tmp_path, cfg)
    try:
        status, explained = post(t, "/v1/route/explain", {"model": "mixed", "messages": HELLO}, key="tw-budgeted-key")
        assert status == 200 and explained["plan"] == ["openai:gpt-4o-mini"]
        policy = next(layer for layer in explained["layers"] if layer["name"] == "policy")
        assert policy["removed"] == [{"deployment": "openai:gpt-4.1-house-tuned",
                                      "reason": "no known price, and the key has a budget"}]
        raw = openai_client(t, "tw-budgeted-key").chat.completions.with_raw_response.create(model="mixed", messages=HELLO)
        assert raw.headers["x-tollway-route"] == "openai:gpt-4o-mini"
        raw = openai_client(t, TEAM_KEY).chat.completions.with_raw_response.create(model="mixed", messages=HELLO)
        assert raw.headers["x-tollway-route"] == "openai:gpt-4.1-house-tuned"  # no budget: the first as planned
    finally:
        t.stop()
