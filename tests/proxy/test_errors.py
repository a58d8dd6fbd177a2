"""Bad input and provider failures: clear errors in the route's own format, and a record for each."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, free_port, standard_config

HELLO = [{"role": "user", "content": "Hello"}]


def post(tollway: Tollway, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    req = urllib.request.Request(tollway.url + path, data=body, method="POST",
                                 headers={"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


@pytest.mark.parametrize("path,shape", [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")])
def test_invalid_json_is_400(tollway: Tollway, path: str, shape: str) -> None:
    status, headers, body = post(tollway, path, b'{"model": "gpt-4o-mini", ')
    assert status == 400
    if shape == "openai":
        assert body["error"]["type"] == "invalid_request_error" and "not valid JSON" in body["error"]["message"]
    else:
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    rec = tollway.record(headers["x-tollway-trace-id"])
    assert rec["status"] == 400 and rec["error_type"] == "invalid_request"


def test_missing_model_is_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        oai.chat.completions.create(model="", messages=HELLO)
    assert ei.value.body["param"] == "model"


def test_provider_prefix_without_a_model_is_400(oai: openai.OpenAI, claude: anthropic.Anthropic,
                                               fake: FakeProvider) -> None:
    before = len(fake.requests)
    for model in ("openai:", "anthropic: "):
        with pytest.raises(openai.BadRequestError) as ei:
            oai.chat.completions.create(model=model, messages=HELLO)
        assert ei.value.body["param"] == "model" and "no model" in ei.value.body["message"]
    with pytest.raises(anthropic.BadRequestError) as ai:
        claude.messages.create(model="anthropic:", max_tokens=5, messages=HELLO)
    assert ai.value.body["error"]["type"] == "invalid_request_error"
    assert len(fake.requests) == before


def test_unknown_model_is_404_naming_routable_models(oai: openai.OpenAI, claude: anthropic.Anthropic,
                                                     tollway: Tollway) -> None:
    with pytest.raises(openai.NotFoundError) as ei:
        oai.chat.completions.create(model="no-such-model", messages=HELLO)
    msg = ei.value.body["message"]
    assert "no-such-model" in msg and "gpt-4o-mini" in msg and "claude-*" in msg and "fast" in msg
    assert ei.value.body["code"] == "model_not_found"
    rec = tollway.record(ei.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == 404 and rec["model_requested"] == "no-such-model" and rec["cost_usd"] is None
    with pytest.raises(anthropic.NotFoundError) as ai:
        claude.messages.create(model="no-such-model", max_tokens=5, messages=HELLO)
    assert ai.value.body["error"]["type"] == "not_found_error"


def test_body_over_limit_is_413(tollway: Tollway) -> None:
    big = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 1_100_000}]}).encode()
    status, headers, body = post(tollway, "/v1/chat/completions", big)
    assert status == 413 and "limit" in body["error"]["message"]
    status, _, body = post(tollway, "/v1/messages", big)
    assert status == 413 and body["error"]["type"] == "request_too_large"


def test_unknown_route_is_404(tollway: Tollway) -> None:
    status, body = tollway.get("/nope")
    assert status == 404 and "No route for GET /nope" in body["error"]["message"]
    status, _, body = post(tollway, "/v1/messages/nope", b"{}")
    assert status == 404 and body["type"] == "error" and body["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("code,exc", [(400, openai.BadRequestError), (429, openai.RateLimitError),
                                      (500, openai.InternalServerError), (503, openai.InternalServerError)])
def test_provider_errors_are_relayed_unchanged(oai: openai.OpenAI, tollway: Tollway, fake: FakeProvider,
                                               code: int, exc: type) -> None:
    with pytest.raises(exc) as ei:
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"[[fault:{code}]]"}])
    assert ei.value.status_code == code
    direct = openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-x", max_retries=0)
    with pytest.raises(exc) as di:
        direct.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"[[fault:{code}]]"}])
    assert ei.value.body == di.value.body  # byte-for-byte the provider's error body
    if code == 429:
        assert ei.value.response.headers.get("retry-after") == "1"
    rec = tollway.record(ei.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == code and rec["error_type"].startswith("provider")


def test_anthropic_overloaded_is_relayed(claude: anthropic.Anthropic, tollway: Tollway) -> None:
    with pytest.raises(anthropic.APIStatusError) as ei:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=5,
                               messages=[{"role": "user", "content": "[[fault:529]]"}])
    assert ei.value.status_code == 529 and ei.value.body["error"]["type"] == "overloaded_error"


def test_unreachable_provider_is_502_and_timeout_is_504(fake: FakeProvider, workdir) -> None:
    cfg = standard_config(fake.url)
    cfg["providers"] = [
        {"id": "down", "kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "api_key": "k",
         "models": ["down-model"]},
        {"id": "slow", "kind": "anthropic", "base_url": fake.url, "api_key": "k", "models": ["claude-*"]},
    ]
    cfg["server"]["read_timeout_secs"] = 0.5
    cfg["aliases"] = {}
    tw = Tollway(workdir, cfg)
    try:
        oai = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(openai.APIStatusError) as ei:
            oai.chat.completions.create(model="down-model", messages=HELLO)
        assert ei.value.status_code == 502 and ei.value.body["code"] == "upstream_unreachable"
        rec = tw.record(ei.value.response.headers["x-tollway-trace-id"])
        assert rec["status"] == 502 and rec["provider"] == "down" and rec["error_type"] == "upstream_unreachable"

        claude = anthropic.Anthropic(base_url=tw.url, api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as ai:
            claude.messages.create(model="claude-haiku-4-5", max_tokens=5,
                                   messages=[{"role": "user", "content": "[[hang]]"}])
        assert ai.value.status_code == 504 and ai.value.body["error"]["type"] == "timeout_error"
        rec = tw.record(ai.value.response.headers["x-tollway-trace-id"])
        assert rec["status"] == 504 and rec["error_type"] == "upstream_timeout"
    finally:
        tw.stop()
