"""With keys configured, what Tollway can route and how it is built is for key holders only:
`/openapi.json`, `/v1/models`, `/projects/{slug}/v1/models` need a key; `/health` stays open for
load balancers but names no provider without one."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.harness import MASTER_KEY, TEAM_KEY, Tollway


@pytest.mark.parametrize("path", ["/openapi.json", "/v1/models", "/projects/alpha/v1/models", "/models",
                                  "/v1/models/gpt-4o-mini", "/openai/v1/models", "/v1beta/models"])
def test_without_a_key_it_is_401(tollway: Tollway, path: str) -> None:
    for key in (None, "tw-wrong-key"):
        status, body = tollway.get(path, key=key)
        assert status == 401, body
        shape = body["error"].get("status") if path.startswith("/v1beta") else body["error"]["type"]
        assert shape in ("UNAUTHENTICATED", "invalid_request_error"), body
    status, body = tollway.get(path, key=TEAM_KEY)  # any key will do
    assert status == 200 and body


def test_a_gemini_client_lists_with_its_own_key_header(tollway: Tollway) -> None:
    import json
    import urllib.request

    for url in (tollway.url + "/v1beta/models", tollway.url + f"/v1beta/models?key={TEAM_KEY}"):
        headers = {} if "key=" in url else {"x-goog-api-key": TEAM_KEY}
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            assert r.status == 200 and json.loads(r.read())["models"]


def test_the_sdks_get_their_own_401(tollway: Tollway) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=tollway.url + "/v1", api_key="nope", max_retries=0).models.list()
    with pytest.raises(anthropic.AuthenticationError) as ei:
        anthropic.Anthropic(base_url=tollway.url, api_key="nope", max_retries=0).models.list()
    assert ei.value.body["type"] == "error"  # Anthropic-shaped for an Anthropic client


def test_health_names_providers_only_to_key_holders(tollway: Tollway) -> None:
    status, body = tollway.get("/health", key=None)
    assert status == 200 and body["status"] == "ok" and body["providers"] == []
    assert "openai" not in str(body) and "gpt" not in str(body)
    status, body = tollway.get("/health", key=MASTER_KEY)
    assert body["providers"] == ["openai", "anthropic"]


def test_an_open_tollway_lists_for_everyone(demo: Tollway) -> None:
    status, body = demo.get("/v1/models", key=None)
    assert status == 200 and any(m["id"] == "demo" for m in body["data"])
    assert demo.get("/health", key=None)[1]["providers"]
