"""Who shares answers, what a request may ask of the cache, and what is never cached."""

from __future__ import annotations

import time

import openai
import pytest

from tests.cache.clients import ask
from tests.cache.conftest import cache_config, unique, upstream_count
from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway, openai_client

OTHER_KEY = "tw-other-team-key"
PROJECT_KEY = "tw-project-mate-key"


def test_key_a_never_sees_key_b_answers(cached: Tollway, fake: FakeProvider) -> None:
    prompt = unique("[[echo]]")
    a = ask(cached, "openai_chat", prompt, key=MASTER_KEY)
    b = ask(cached, "openai_chat", prompt, key=TEAM_KEY)
    assert (a.cache, b.cache) == ("miss", "miss")
    assert upstream_count(fake, prompt) == 2
    assert ask(cached, "openai_chat", prompt, key=TEAM_KEY).cache == "hit"
    assert ask(cached, "anthropic", prompt, key=MASTER_KEY).cache == "miss"  # another format, another request


@pytest.mark.parametrize("headers,status", [
    ({"x-tollway-cache": "skip"}, "skip"), ({"cache-control": "no-store"}, "skip"),
    ({"x-tollway-cache": "refresh"}, "refresh"), ({"cache-control": "no-cache"}, "refresh"),
    ({"cache-control": "max-age=0"}, "refresh"), ({"x-tollway-cache": "use"}, "hit"),
    ({"cache-control": "max-age=3600"}, "hit"), ({"cache-control": "no-store", "x-tollway-cache": "use"}, "hit"),
])
def test_request_headers(cached: Tollway, fake: FakeProvider, headers: dict[str, str], status: str) -> None:
    prompt = unique()
    assert ask(cached, "openai_chat", prompt).cache == "miss"
    got = ask(cached, "openai_chat", prompt, headers=headers)
    assert got.cache == status
    assert upstream_count(fake, prompt) == (1 if status == "hit" else 2)


def test_skip_stores_nothing_and_refresh_replaces(cached: Tollway, fake: FakeProvider) -> None:
    prompt = unique()
    assert ask(cached, "anthropic", prompt, headers={"x-tollway-cache": "skip"}).cache == "skip"
    assert ask(cached, "anthropic", prompt).cache == "miss"  # skip stored nothing
    time.sleep(1.1)
    assert int(ask(cached, "anthropic", prompt).headers["age"]) >= 1
    assert ask(cached, "anthropic", prompt, headers={"cache-control": "no-cache"}).cache == "refresh"
    hit = ask(cached, "anthropic", prompt)
    assert hit.cache == "hit" and hit.headers["age"] == "0"  # the refreshed answer
    assert upstream_count(fake, prompt) == 3


def test_max_age_refuses_older_answers(cached: Tollway, fake: FakeProvider) -> None:
    prompt = unique()
    ask(cached, "gemini", prompt)
    time.sleep(1.1)
    assert ask(cached, "gemini", prompt, headers={"cache-control": "max-age=60"}).cache == "hit"
    assert ask(cached, "gemini", prompt, headers={"cache-control": "max-age=1"}).cache == "miss"
    assert upstream_count(fake, prompt) == 2


def test_a_bad_cache_header_is_a_400_in_the_routes_format(cached: Tollway) -> None:
    import anthropic

    with pytest.raises(openai.BadRequestError) as e:
        ask(cached, "openai_chat", unique(), headers={"x-tollway-cache": "always"})
    assert "x-tollway-cache" in e.value.message
    with pytest.raises(anthropic.BadRequestError) as a:
        ask(cached, "anthropic", unique(), headers={"x-tollway-cache": "always"})
    assert a.value.body["type"] == "error" and "x-tollway-cache" in a.value.body["error"]["message"]


def test_temperature_above_zero_and_stored_responses_are_skipped(cached: Tollway, fake: FakeProvider) -> None:
    prompt = unique()
    warm = ask(cached, "openai_chat", prompt, temperature=0.7)
    assert warm.cache == "skip" and warm.headers["x-tollway-cache-reason"] == "temperature"
    assert ask(cached, "openai_chat", prompt, temperature=0).cache == "miss"
    assert ask(cached, "openai_chat", prompt, temperature=0).cache == "hit"
    stored = ask(cached, "responses", prompt, store=True)
    assert stored.cache == "skip" and stored.headers["x-tollway-cache-reason"] == "responses_store"


def test_tool_call_answers_are_not_stored_by_default(cached: Tollway, fake: FakeProvider) -> None:
    c = openai_client(cached)
    prompt = unique("[[tool:get_weather]]")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    for _ in range(2):
        raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", tools=tools,
                                                          messages=[{"role": "user", "content": prompt}])
        assert raw.headers["x-tollway-cache"] == "miss" and raw.parse().choices[0].message.tool_calls
    assert upstream_count(fake, prompt) == 2


@pytest.fixture(scope="module")
def scoped(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory):
    cfg = cache_config(fake.url, {"scope": "project", "cache_tool_calls": True, "ttl_secs": 1.0},
                       projects=[{"id": "gamma", "cache": {"ttl_secs": 3600.0}},
                                 {"id": "nocache", "cache": {"mode": "off"}}])
    cfg["keys"] += [{"id": "other", "key": OTHER_KEY, "project": "gamma"},
                    {"id": "mate", "key": PROJECT_KEY, "project": "gamma", "cache": {"scope": "key"}}]
    tw = Tollway(tmp_path_factory.mktemp("cache-scoped"), cfg)
    yield tw
    tw.stop()


def test_project_scope_shares_within_the_keys_project_only(scoped: Tollway, fake: FakeProvider) -> None:
    prompt = unique()
    assert ask(scoped, "openai_chat", prompt, key=OTHER_KEY).cache == "miss"
    # team-alpha's key belongs to project alpha: a header naming gamma is refused, never gamma's answers
    with pytest.raises(openai.PermissionDeniedError):
        ask(scoped, "openai_chat", prompt, key=TEAM_KEY, headers={"x-tollway-project": "gamma"})
    assert ask(scoped, "openai_chat", prompt, key=TEAM_KEY).cache == "miss"
    # a key of the same project with its own override (scope = key) keeps to itself
    assert ask(scoped, "openai_chat", prompt, key=PROJECT_KEY).cache == "miss"
    assert ask(scoped, "openai_chat", prompt, key=OTHER_KEY).cache == "hit"


def test_overrides_per_project_and_key(scoped: Tollway, fake: FakeProvider) -> None:
    prompt = unique()
    # project gamma keeps answers an hour; the default (alpha's) keeps them one second
    ask(scoped, "anthropic", prompt, key=OTHER_KEY)
    ask(scoped, "anthropic", prompt, key=TEAM_KEY)
    time.sleep(1.3)
    assert ask(scoped, "anthropic", prompt, key=OTHER_KEY).cache == "hit"
    assert ask(scoped, "anthropic", prompt, key=TEAM_KEY).cache == "miss"  # expired (TTL 1 s)
    off = ask(scoped, "anthropic", prompt, headers={"x-tollway-project": "nocache"})
    assert "x-tollway-cache" not in off.headers  # the cache is off for that project
    # cache_tool_calls = true here: a tool-call answer is stored and replayed
    c = openai_client(scoped)
    tool_prompt = unique("[[tool:get_weather]]")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    calls = []
    for _ in range(2):
        raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", tools=tools,
                                                          messages=[{"role": "user", "content": tool_prompt}])
        calls.append((raw.headers["x-tollway-cache"], raw.parse().choices[0].message.tool_calls[0]))
    assert [s for s, _ in calls] == ["miss", "hit"]
    assert calls[0][1].function.name == calls[1][1].function.name == "get_weather"
    assert calls[0][1].function.arguments == calls[1][1].function.arguments
    assert calls[0][1].id != calls[1][1].id  # fresh tool-call ids


@pytest.fixture(scope="module")
def guarded(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory):
    cfg = cache_config(fake.url)
    cfg["sanitization"] = {"enabled": True, "output": "redact"}
    tw = Tollway(tmp_path_factory.mktemp("cache-guarded"), cfg)
    yield tw
    tw.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_with_output_redaction_an_answer_that_leaked_is_never_stored(guarded: Tollway, stream: bool) -> None:
    """A redacted answer is not replayed: every repeat reaches the model and the output check
    again, so each leak is found, recorded and redacted where it happens (a hit would carry no
    finding). Clean answers are cached as usual under the same policy."""
    from tests.fakes.scenario import LEAKED_KEY

    prompt = unique("[[leak]]")
    answers = [ask(guarded, "openai_chat", prompt, stream=s) for s in (stream, not stream)]
    assert [a.cache for a in answers] == ["miss", "miss"]
    for a in answers:
        assert LEAKED_KEY not in a.text and "[REDACTED:" in a.text
        assert guarded.record(a.trace)["guard_findings"]["response_action"] == "redacted"
    clean = unique("plain question")
    assert [ask(guarded, "openai_chat", clean, stream=s).cache for s in (stream, not stream)] == ["miss", "hit"]
