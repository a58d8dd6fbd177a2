"""[[models]] and [routing] in the config: the seed's fallback_order, deployments, and errors
that name their key path."""

from __future__ import annotations

import pytest

from tests.routing.helpers import PROVIDERS, make_router, plan
from tollway.config import ConfigError, build_settings


def problems(**config: object) -> str:
    with pytest.raises(ConfigError) as e:
        build_settings({"providers": PROVIDERS, **config}, env={})
    return str(e.value)


def test_fallback_order_parses_in_the_seed_syntax() -> None:
    s = build_settings({"providers": PROVIDERS, "models": [
        {"name": "smart", "fallback_order": ["openai:gpt-4o", "anthropic:claude-haiku-4-5"], "policy": "priority"}],
        "routing": {"fallback_order": ["openai:gpt-4o-mini"]}}, env={})
    assert s.models[0].fallback_order == ["openai:gpt-4o", "anthropic:claude-haiku-4-5"]
    assert s.routing.fallback_order == ["openai:gpt-4o-mini"]


def test_the_plan_follows_the_model_then_the_global_fallbacks() -> None:
    r = make_router(models=[{"name": "smart", "fallback_order": ["openai:gpt-4o", "anthropic:claude-haiku-4-5"]},
                            {"name": "chat", "deployments": [{"target": "openai:gpt-4.1-mini"}],
                             "fallback_order": ["anthropic:claude-sonnet-4-5"]}],
                    routing={"fallback_order": ["openai:gpt-4o-mini", "openai:gpt-4o"]})
    assert plan(r, "smart") == ["openai:gpt-4o", "anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"]
    assert plan(r, "chat") == ["openai:gpt-4.1-mini", "anthropic:claude-sonnet-4-5", "openai:gpt-4o-mini",
                               "openai:gpt-4o"]
    # a plain model name: itself, then the global fallbacks
    assert plan(r, "claude-haiku-4-5") == ["anthropic:claude-haiku-4-5", "openai:gpt-4o-mini", "openai:gpt-4o"]


def test_an_alias_is_a_one_deployment_model() -> None:
    r = make_router(aliases={"fast": "openai:gpt-4o-mini"})
    assert plan(r, "fast") == ["openai:gpt-4o-mini"]


def test_an_unknown_provider_is_an_error_with_its_key_path() -> None:
    text = problems(models=[{"name": "smart", "fallback_order": ["openai:gpt-4o", "opneai:gpt-4o"]}],
                    routing={"fallback_order": ["nope:x"]})
    assert "models[0].fallback_order[1]: unknown provider 'opneai'" in text
    assert "routing.fallback_order[0]: unknown provider 'nope'" in text


def test_a_target_must_name_provider_and_model() -> None:
    assert "models[0].fallback_order[0]: a target is" in problems(models=[{"name": "m", "fallback_order": ["gpt-4o"]}])
    assert "models[0].deployments[0].target" in problems(models=[{"name": "m", "deployments": [{"target": "openai:"}]}])


def test_deployment_fields_and_errors() -> None:
    s = build_settings({"providers": PROVIDERS, "models": [{"name": "m", "policy": "weighted", "deployments": [
        {"target": "openai:gpt-4o", "weight": 3.0, "priority": 1, "max_rpm": 10, "max_tpm": 1000,
         "max_concurrency": 2, "timeouts": {"connect_secs": 1.0, "first_token_secs": 2.0, "total_secs": 3.0}}]}]},
        env={})
    d = s.models[0].deployments[0]
    assert (d.weight, d.priority, d.max_concurrency, d.timeouts.total_secs) == (3.0, 1, 2, 3.0)  # type: ignore[union-attr]
    assert "models[0].deployments[0].weight" in problems(models=[{"name": "m", "deployments": [
        {"target": "openai:gpt-4o", "weight": 0}]}])
    assert "models[0].policy" in problems(models=[{"name": "m", "fallback_order": ["openai:gpt-4o"],
                                                  "policy": "random"}])
    assert "needs deployments or a fallback_order" in problems(models=[{"name": "m"}])
    assert "duplicate model 'm'" in problems(models=[{"name": "m", "fallback_order": ["openai:gpt-4o"]},
                                                     {"name": "m", "fallback_order": ["openai:gpt-4o"]}])


def test_profiles_and_key_profiles_are_checked() -> None:
    text = problems(routing={"profiles": [{"name": "a"}]},
                    keys=[{"id": "k", "key": "tw-k-123", "routing_profile": "b"}])
    assert "keys[0].routing_profile: unknown profile 'b'" in text
    assert "duplicate profile" in problems(routing={"profiles": [{"name": "a"}, {"name": "a"}]})
    assert "routing.breaker.failures" in problems(routing={"breaker": {"failures": 0}})
