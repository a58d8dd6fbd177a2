"""The semantic cache: a near-duplicate question hits, a different one misses, with the local
embedding model (tollway[semantic]) or an embedding model routed through Tollway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cache.clients import ask
from tests.cache.conftest import cache_config, upstream_count
from tests.fakes.provider import FakeProvider
from tests.harness import TEAM_KEY, Tollway, openai_client


@pytest.fixture(scope="module")
def sem(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    # semantic for gpt-4o-mini, claude-* and gemini-* only: per model, exact elsewhere
    cfg = cache_config(fake.url, {"mode": "exact", "models": {
        "gpt-4o-mini": {"mode": "semantic"}, "claude-*": {"mode": "semantic"}, "gemini-*": {"mode": "semantic"}}})
    tw = Tollway(tmp_path_factory.mktemp("cache-semantic"), cfg)
    yield tw
    tw.stop()


@pytest.mark.parametrize("fmt,first,second", [
    ("openai_chat", "How do I reverse a list in Python?", "How can I reverse a Python list?"),
    ("anthropic", "Write a haiku about autumn leaves.", "Write a haiku about the autumn leaves"),
    ("gemini", "Summarize: the quick brown fox jumps over the lazy dog.",
     "Summarize: the quick brown fox jumped over the lazy dog."),
    ("responses", "What are the opening hours of the Louvre museum?",
     "What are the opening hours for the Louvre museum?"),
])
def test_a_near_duplicate_hits_and_a_different_question_misses(sem: Tollway, fake: FakeProvider, fmt: str,
                                                               first: str, second: str) -> None:
    miss = ask(sem, fmt, first)
    assert miss.cache == "miss"
    hit = ask(sem, fmt, second, stream=True)
    assert hit.cache == "hit" and hit.text == "Hello from the fake provider!"
    assert 0.95 <= float(hit.headers["x-tollway-cache-similarity"]) < 1.0
    assert upstream_count(fake, second) == 0
    rec = sem.record(hit.trace)
    assert rec["cache"] == "semantic_hit" and rec["cost_usd"] == "0.000000000"
    other = ask(sem, fmt, "Translate 'good night' into French, please.")
    assert other.cache == "miss" and "x-tollway-cache-similarity" not in other.headers
    # an exact repeat is an exact hit (no similarity header)
    again = ask(sem, fmt, first)
    assert again.cache == "hit" and "x-tollway-cache-similarity" not in again.headers


def test_same_question_other_parameters_or_key_misses(sem: Tollway) -> None:
    q = "Which planet in the solar system has the most moons?"
    assert ask(sem, "openai_chat", q, max_tokens=50).cache == "miss"
    assert ask(sem, "openai_chat", q + " ", max_tokens=50).cache == "hit"  # near-duplicate, same parameters
    assert ask(sem, "openai_chat", q + " ", max_tokens=60).cache == "miss"  # other parameters
    assert ask(sem, "openai_chat", q + " ", max_tokens=50, key=TEAM_KEY).cache == "miss"  # other key


def test_a_model_without_semantic_mode_matches_exactly(sem: Tollway) -> None:
    ask(sem, "openai_chat", "Should I water my tomato plants today?", model="gpt-4o")
    near = ask(sem, "openai_chat", "Should I water my tomato plants today", model="gpt-4o")
    assert near.cache == "miss"
    assert ask(sem, "openai_chat", "Should I water my tomato plants today", model="gpt-4o").cache == "hit"


def _tool_turns(question: str) -> list[dict]:
    return [{"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
            {"role": "user", "content": question}]


def test_conversations_with_tool_calls_are_never_matched_by_meaning(sem: Tollway) -> None:
    c = openai_client(sem)
    heads = []
    for q in ("Should I take an umbrella today?", "Should I take an umbrella today"):
        raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=_tool_turns(q))
        heads.append(raw.headers["x-tollway-cache"])
    assert heads == ["miss", "miss"]
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini",
                                                      messages=_tool_turns("Should I take an umbrella today"))
    assert raw.headers["x-tollway-cache"] == "hit"  # exact matching still applies


@pytest.fixture(scope="module")
def routed(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = cache_config(fake.url, {"mode": "semantic", "embedding_model": "text-embedding-3-small",
                                  "semantic_tool_conversations": True})
    tw = Tollway(tmp_path_factory.mktemp("cache-routed"), cfg)
    yield tw
    tw.stop()


def test_a_routed_embedding_model_is_called_through_tollway(routed: Tollway, fake: FakeProvider) -> None:
    q = "Name three rivers in Portugal (routed embeddings)."
    miss = ask(routed, "anthropic", q, key=TEAM_KEY)
    assert miss.cache == "miss"
    emb = [r for r in fake.requests if r.path == "/v1/embeddings" and r.json and r.json.get("input") == q]
    assert len(emb) == 1 and emb[0].json["model"] == "text-embedding-3-small"
    rows = [r for r in routed.records(key_id="team-alpha") if r["route"] == "cache.embedding"]
    assert rows and rows[0]["status"] == 200 and rows[0]["project"] == "alpha" and rows[0]["input_tokens"]
    assert ask(routed, "anthropic", q, key=TEAM_KEY).cache == "hit"
