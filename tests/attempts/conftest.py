"""A Tollway whose plans have several deployments: `[routing] fallback_order` after the model's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import Tollway, standard_config


def routing_config(fake_url: str, **routing) -> dict:
    cfg = standard_config(fake_url)
    cfg["providers"] = [
        *cfg["providers"],
        {"id": "gemini", "kind": "gemini", "base_url": fake_url, "api_key": "gm-fake-key", "models": ["gemini-*"]},
    ]
    cfg["routing"] = {"fallback_order": ["anthropic:claude-haiku-4-5", "openai:gpt-4o"], **routing}
    return cfg


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = routing_config(fake.url)
    cfg["server"]["read_timeout_secs"] = 3
    cfg["routing"]["timeouts"] = {"first_token_secs": 1.0}
    t = Tollway(tmp_path_factory.mktemp("routing"), cfg)
    try:
        yield t
    finally:
        t.stop()
