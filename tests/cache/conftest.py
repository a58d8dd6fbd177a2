"""A Tollway with the exact cache on (memory), OpenAI, Anthropic and Gemini providers on the fake."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import Tollway, standard_config

GEMINI = "gemini-2.0-flash"


def cache_config(fake_url: str, cache: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    cfg = standard_config(fake_url, **overrides)
    cfg["providers"].append({"id": "gemini", "kind": "gemini", "base_url": fake_url, "api_key": "fake-gemini-key",
                             "models": ["gemini-*"]})
    cfg["cache"] = {"mode": "exact", **(cache or {})}
    return cfg


def unique(text: str = "Say hello") -> str:
    """A prompt no other test sends (entries live as long as the session's Tollway)."""
    return f"{text} ({uuid.uuid4().hex[:10]})"


def upstream_count(fake: FakeProvider, marker: str) -> int:
    """How many requests whose body holds `marker` reached the provider."""
    return sum(1 for r in fake.requests if marker.encode() in r.body)


@pytest.fixture(scope="session")
def cached(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    tw = Tollway(tmp_path_factory.mktemp("cache"), cache_config(fake.url))
    yield tw
    tw.stop()
