"""CORS: `[server] cors_origins`; preflights answered by Tollway, never forwarded."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, standard_config

APP = "https://app.example.com"
EVIL = "https://evil.example.net"


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url)
    cfg["server"]["cors_origins"] = [APP]
    t = Tollway(tmp_path_factory.mktemp("cors"), cfg)
    yield t
    t.stop()


def call(url: str, method: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


PREFLIGHT = {"access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type"}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/files", "/v1/messages", "/v1beta/models/x:generateContent"])
def test_preflight_from_an_allowed_origin_is_answered_here(tw: Tollway, fake: FakeProvider, path: str) -> None:
    before = len(fake.requests)
    status, headers, body = call(tw.url + path, "OPTIONS", {"origin": APP, **PREFLIGHT})
    assert status == 204 and body == b""
    assert headers["access-control-allow-origin"] == APP and "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "authorization,content-type"
    assert len(fake.requests) == before, "a preflight was forwarded upstream"


def test_preflight_from_another_origin_gets_no_grant(tw: Tollway, fake: FakeProvider) -> None:
    before = len(fake.requests)
    status, headers, _ = call(tw.url + "/v1/chat/completions", "OPTIONS", {"origin": EVIL, **PREFLIGHT})
    assert status == 204 and "access-control-allow-origin" not in headers
    assert len(fake.requests) == before


@pytest.mark.parametrize("stream", [False, True])
def test_responses_to_an_allowed_origin_expose_tollway_headers(tw: Tollway, stream: bool) -> None:
    body = json.dumps({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hi"}],
                       "stream": stream}).encode()
    auth = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}
    status, headers, _ = call(tw.url + "/v1/chat/completions", "POST", {"origin": APP, **auth}, body)
    assert status == 200 and headers["access-control-allow-origin"] == APP and headers["vary"] == "Origin"
    exposed = {h.strip() for h in headers["access-control-expose-headers"].split(",")}
    assert {"x-tollway-trace-id", "x-tollway-cost-usd", "x-request-id"} <= exposed
    # every x-tollway-* header the answer carries, the page may read
    assert {h for h in headers if h.startswith("x-tollway-")} <= exposed
    status, headers, _ = call(tw.url + "/v1/chat/completions", "POST", {"origin": EVIL, **auth}, body)
    assert status == 200 and "access-control-allow-origin" not in headers
    status, headers, _ = call(tw.url + "/v1/chat/completions", "POST", {"origin": APP, "content-type": "application/json"},
                              body)
    assert status == 401 and headers["access-control-allow-origin"] == APP  # the page can read the error


def test_without_cors_origins_nothing_is_granted_and_nothing_forwarded(tollway: Tollway, fake: FakeProvider) -> None:
    before = len(fake.requests)
    status, headers, _ = call(tollway.url + "/v1/files", "OPTIONS", {"origin": APP, **PREFLIGHT})
    assert status == 204 and "access-control-allow-origin" not in headers
    status, headers, _ = call(tollway.url + "/v1/models", "GET", {"origin": APP, "authorization": f"Bearer {MASTER_KEY}"})
    assert status == 200 and "access-control-allow-origin" not in headers
    assert len(fake.requests) == before
