"""The routing families of GET /metrics are fed by what really happened: a retry counts in
tollway_retries, a fallback in tollway_fallbacks, and a breaker that opens sets
tollway_deployment_healthy to 0 for that deployment."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.attempts.conftest import routing_config
from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway
from tests.telemetry.promtext import scrape, value


@pytest.fixture
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = routing_config(fake.url, retry={"retries": 1, "backoff_base_ms": 0}, breaker={"failures": 2})
    t = Tollway(tmp_path_factory.mktemp("routing-metrics"), cfg)
    try:
        yield t
    finally:
        t.stop()


def test_retries_fallbacks_and_breakers_are_counted(tw: Tollway) -> None:
    client = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
    _, before = scrape(tw)
    assert value(before, "tollway_retries_total") == 0 and value(before, "tollway_fallbacks_total") == 0
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi [[fault:500@gpt-4o-mini]]"}])
    # openai:gpt-4o-mini failed, was retried once and failed again; anthropic served
    assert raw.headers["x-tollway-route"] == "anthropic:claude-haiku-4-5"
    assert raw.headers["x-tollway-attempts"] == "3"
    _, text = scrape(tw)
    assert value(text, "tollway_retries_total", provider="openai", reason="5xx") == 1
    assert value(text, "tollway_fallbacks_total", from_provider="openai", to_provider="anthropic") == 1
    # two consecutive failures opened openai:gpt-4o-mini's breaker
    assert value(text, "tollway_deployment_healthy", provider="openai", model="gpt-4o-mini") == 0
    health = client.get("/health/deployments", cast_to=object)
    assert any(d.get("deployment") == "openai:gpt-4o-mini" and d.get("state") == "open"
               for d in health["data"]), health  # type: ignore[index]
