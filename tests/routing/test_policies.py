"""Each policy ranks as promised; profiles; capabilities; health; affinity. The board is fed
the way the attempt loop feeds it (started / finished)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.routing.helpers import fail, make_router, plan, request, succeed
from tollway.errors import ProxyError

TWO = [{"target": "openai:gpt-4o"}, {"target": "openai:gpt-4o-mini"}]


def model(policy: str, deployments: list[dict] = TWO, **extra: object) -> dict:  # type: ignore[type-arg]
    return {"name": "m", "policy": policy, "deployments": deployments, **extra}


def test_priority_orders_by_priority_then_config_order() -> None:
    r = make_router(models=[model("priority", [{"target": "openai:gpt-4o", "priority": 2},
                                               {"target": "openai:gpt-4o-mini", "priority": 1},
                                               {"target": "anthropic:claude-haiku-4-5", "priority": 1}])])
    assert plan(r, "m") == ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4o"]


def test_weighted_follows_the_weights_within_the_lowest_priority() -> None:
    r = make_router(models=[model("weighted", [{"target": "openai:gpt-4o", "weight": 9.0},
                                               {"target": "openai:gpt-4o-mini", "weight": 1.0},
                                               {"target": "anthropic:claude-haiku-4-5", "priority": 5}])])
    firsts = Counter(plan(r, "m")[0] for _ in range(2000))
    assert set(firsts) == {"openai:gpt-4o", "openai:gpt-4o-mini"}
    assert 1500 < firsts["openai:gpt-4o"] < 1950
    assert all(plan(r, "m")[-1] == "anthropic:claude-haiku-4-5" for _ in range(50))


def test_cheapest_ranks_by_the_estimated_cost() -> None:
    r = make_router(models=[model("cheapest", [{"target": "openai:gpt-4o"}, {"target": "anthropic:claude-opus-4-1"},
                                               {"target": "openai:gpt-4o-mini"}])])
    ctx = request("m", headers={b"x-tollway-trace": b"true"})  # the trace event carries the cost estimate
    assert [d.name for d in r.plan(ctx)] == ["openai:gpt-4o-mini", "openai:gpt-4o", "anthropic:claude-opus-4-1"]
    scores = ctx.route_trace["scores"]  # type: ignore[index]
    assert scores["openai:gpt-4o-mini"] < scores["openai:gpt-4o"] < scores["anthropic:claude-opus-4-1"]
    assert float(ctx.route_trace["cost_estimate"]) == pytest.approx(scores["openai:gpt-4o-mini"])  # type: ignore[index]
    assert ctx.route_trace["policy"] == "cheapest"  # type: ignore[index]
    plain = request("m")
    plain.plan = r.plan(plain)
    assert plain.route_trace["cost_estimate"] is None  # type: ignore[index]
    assert r.cost_estimate(plain) == ctx.route_trace["cost_estimate"]  # type: ignore[index]


def test_fastest_ranks_by_the_latency_ewma() -> None:
    r = make_router(models=[model("fastest")])
    succeed(r, "openai:gpt-4o", latency=0.05, times=3)
    succeed(r, "openai:gpt-4o-mini", latency=0.5, times=3)
    assert plan(r, "m") == ["openai:gpt-4o", "openai:gpt-4o-mini"]
    succeed(r, "openai:gpt-4o", latency=3.0, times=20)
    assert plan(r, "m") == ["openai:gpt-4o-mini", "openai:gpt-4o"]


def test_least_busy_ranks_by_calls_in_flight() -> None:
    r = make_router(models=[model("least_busy")])
    dep = next(d for d in r.table.models["m"].deployments if d.name == "openai:gpt-4o")
    r.health.started(dep, None)
    assert plan(r, "m") == ["openai:gpt-4o-mini", "openai:gpt-4o"]


def test_quality_ranks_by_the_feedback_score() -> None:
    r = make_router(models=[model("quality")])
    r.quality.by_model = {("openai", "gpt-4o-mini-2024-07-18"): (0.9, 4), ("openai", "gpt-4o"): (0.2, 3)}
    assert plan(r, "m") == ["openai:gpt-4o-mini", "openai:gpt-4o"]


def test_auto_picks_among_every_eligible_deployment() -> None:
    r = make_router(routing={"auto": True}, models=[model("priority")])
    names = plan(r, "auto")
    assert {"openai:gpt-4o", "openai:gpt-4o-mini"} <= set(names)
    assert "openai:text-embedding-3-small" not in names  # not a chat model
    with pytest.raises(ProxyError):
        plan(r, "no-such-model")
    r = make_router(routing={"auto": True, "auto_unknown_models": True}, models=[model("priority")])
    assert set(plan(r, "no-such-model")) == set(names)


def test_a_profile_weighs_cost_latency_and_quality() -> None:
    r = make_router(models=[model("priority")], routing={"profiles": [
        {"name": "cheap", "weights": {"cost": 1.0, "latency": 0.0, "quality": 0.0}},
        {"name": "quick", "weights": {"cost": 0.0, "latency": 1.0, "quality": 0.0}}]},
        keys=[{"id": "k", "key": "tw-k-12345", "routing_profile": "quick"}])
    succeed(r, "openai:gpt-4o", latency=0.05)
    succeed(r, "openai:gpt-4o-mini", latency=2.0)
    assert plan(r, "m", headers={b"x-tollway-profile": b"cheap"}) == ["openai:gpt-4o-mini", "openai:gpt-4o"]
    ctx = request("m")
    ctx.key_id = "k"
    assert [d.name for d in r.plan(ctx)] == ["openai:gpt-4o", "openai:gpt-4o-mini"]
    assert ctx.route_trace["profile"] == "quick"  # type: ignore[index]
    with pytest.raises(ProxyError, match="Unknown routing profile"):
        plan(r, "m", headers={b"x-tollway-profile": b"nope"})


def test_capabilities_remove_a_too_small_context_and_a_deployment_without_tools() -> None:
    r = make_router(models=[model("priority", [
        {"target": "openai:gpt-4o", "capabilities": ["json"]},
        {"target": "openai:gpt-4o-mini", "context_window": 1000},
        {"target": "anthropic:claude-haiku-4-5"}])])
    assert plan(r, "m") == ["openai:gpt-4o", "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]
    tools = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    assert plan(r, "m", body=tools) == ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]
    big = {"max_tokens": 2000}
    assert plan(r, "m", body=big) == ["openai:gpt-4o", "anthropic:claude-haiku-4-5"]
    trace: list = []  # type: ignore[type-arg]
    r.plan(request("m", body={**tools, **big}), trace)
    removed = {x["deployment"]: x["reason"] for x in trace[1]["removed"]}
    assert removed["openai:gpt-4o"] == "no tools support"
    assert removed["openai:gpt-4o-mini"].startswith("context window 1000 tokens < estimated input + max output")


def test_nothing_capable_is_a_400_naming_why() -> None:
    r = make_router(models=[model("priority", [{"target": "openai:gpt-4o", "context_window": 100}])])
    with pytest.raises(ProxyError) as e:
        plan(r, "m", body={"max_tokens": 500})
    assert e.value.status == 400 and "openai:gpt-4o: context window 100" in e.value.message


def test_the_key_allow_list_filters_auto() -> None:
    from tollway.pipeline.auth import KeyInfo
    from tollway.policy.allowlist import AllowList
    from tollway.policy.model import KeyPolicy

    r = make_router(routing={"auto": True}, models=[model("priority")])
    ctx = request("auto")
    ctx.key = KeyInfo(id="k", policy=KeyPolicy(models=AllowList(["gpt-4o-mini"])))  # type: ignore[call-arg]
    assert [d.name for d in r.plan(ctx)] == ["openai:gpt-4o-mini"]


def test_an_open_breaker_leaves_the_plan_and_half_opens_after_the_cooldown() -> None:
    r = make_router(models=[model("priority")], routing={"breaker": {"failures": 3, "cooldown_secs": 0.2}})
    fail(r, "openai:gpt-4o", times=2)
    assert plan(r, "m") == ["openai:gpt-4o", "openai:gpt-4o-mini"]
    fail(r, "openai:gpt-4o")
    assert plan(r, "m") == ["openai:gpt-4o-mini"]
    import time

    time.sleep(0.25)
    assert plan(r, "m") == ["openai:gpt-4o", "openai:gpt-4o-mini"]  # half-open: one probe may go
    dep = r.table.models["m"].deployments[0]
    r.health.started(dep, None)  # the probe is on its way: nobody else goes there
    assert plan(r, "m") == ["openai:gpt-4o-mini"]
    from tollway.routing.outcome import Outcome

    r.health.finished(dep, None, Outcome(ok=True, status=200, error_type=None, latency_s=0.1))
    assert plan(r, "m") == ["openai:gpt-4o", "openai:gpt-4o-mini"]
    assert r.health.view("openai:gpt-4o", time.time())["state"] == "closed"


def test_every_breaker_open_is_a_503() -> None:
    r = make_router(models=[model("priority")], routing={"breaker": {"failures": 1}})
    fail(r, "openai:gpt-4o")
    fail(r, "openai:gpt-4o-mini")
    with pytest.raises(ProxyError) as e:
        plan(r, "m")
    assert e.value.status == 503 and "breaker open" in e.value.message


def test_max_concurrency_skips_a_full_deployment() -> None:
    r = make_router(models=[model("priority", [{"target": "openai:gpt-4o", "max_concurrency": 1},
                                               {"target": "openai:gpt-4o-mini"}])])
    dep = r.table.models["m"].deployments[0]
    r.health.started(dep, None)
    assert plan(r, "m") == ["openai:gpt-4o-mini"]


def test_affinity_puts_the_sessions_deployment_first_while_healthy() -> None:
    r = make_router(models=[model("weighted")], routing={"breaker": {"failures": 1}})
    ctx = request("m", headers={b"x-tollway-session": b"abc"})
    first = r.plan(ctx)
    served = first[1]
    ctx.plan, ctx.deployment, ctx.status = first, served, 200
    r.served(ctx)
    for _ in range(30):
        assert plan(r, "m", headers={b"x-tollway-session": b"abc"})[0] == served.name
        assert plan(r, "m", body={"user": "abc"})  # another session kind: no stickiness asserted
    fail(r, served.name)
    assert plan(r, "m", headers={b"x-tollway-session": b"abc"})[0] != served.name


def test_max_rpm_skips_a_deployment_for_the_rest_of_the_minute() -> None:
    r = make_router(models=[model("priority", [{"target": "openai:gpt-4o", "max_rpm": 2},
                                               {"target": "openai:gpt-4o-mini"}])])
    dep = r.table.models["m"].deployments[0]
    for _ in range(2):
        assert plan(r, "m")[0] == "openai:gpt-4o"
        r.health.started(dep, None)
    trace: list = []  # type: ignore[type-arg]
    assert [d.name for d in r.plan(request("m"), trace)] == ["openai:gpt-4o-mini"]
    assert trace[3]["removed"] == [{"deployment": "openai:gpt-4o", "reason": "at max_rpm (2 calls this minute)"}]


def test_a_model_whose_providers_are_all_disabled_is_a_404() -> None:
    from tests.routing.helpers import PROVIDERS

    r = make_router(providers=[*PROVIDERS, {"id": "off", "kind": "openai", "enabled": False,
                                            "base_url": "http://127.0.0.1:9/v1", "models": ["x"]}],
                    models=[{"name": "m", "fallback_order": ["off:x"]}])
    with pytest.raises(ProxyError) as e:
        plan(r, "m")
    assert e.value.status == 404 and "no deployment whose provider is configured" in e.value.message
