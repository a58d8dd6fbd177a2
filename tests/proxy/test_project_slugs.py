"""Project slugs follow one rule (tollway.slugs) in /projects/{slug}/, x-tollway-project and x-project:
a bad one is a 400 in the route's own format before any provider call, and no record keeps it."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway

HELLO = [{"role": "user", "content": "Hello"}]
BAD = ["x" * 65, "has space", "-leading-dash", "a:b", "caf\u00e9", "..", "a/b"]  # control bytes: the HTTP parser refuses them


def raw_call(tw: Tollway, method: str, path: str, headers: dict[str, bytes], body: bytes | None = None
             ) -> tuple[int, dict[str, str], dict]:
    """http.client sends header bytes as given (the SDKs refuse some of these values themselves)."""
    conn = http.client.HTTPConnection("127.0.0.1", tw.port, timeout=10)
    try:
        conn.putrequest(method, path)
        for k, v in {"Authorization": f"Bearer {MASTER_KEY}".encode(), "Content-Type": b"application/json",
                     "Content-Length": str(len(body or b"")).encode(), **headers}.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(r.read())
    finally:
        conn.close()


@pytest.mark.parametrize("slug", BAD)
def test_bad_project_header_is_a_400_in_openai_format(tollway: Tollway, fake: FakeProvider, slug: str) -> None:
    before = len(fake.requests)
    body = json.dumps({"model": "gpt-4o-mini", "messages": HELLO}).encode()
    for header in ("x-tollway-project", "x-project"):
        status, headers, err = raw_call(tollway, "POST", "/v1/chat/completions", {header: slug.encode()}, body)
        assert status == 400, err
        assert err["error"]["type"] == "invalid_request_error" and header in err["error"]["message"]
        assert "64 characters" in err["error"]["message"]
        rec = tollway.record(headers["x-tollway-trace-id"])
        assert rec["status"] == 400 and rec["project"] is None
    assert len(fake.requests) == before  # refused before any provider call


def test_bad_project_header_is_a_400_in_anthropic_format(tollway: Tollway) -> None:
    claude = anthropic.Anthropic(base_url=tollway.url, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as ei:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO,
                               extra_headers={"x-tollway-project": "no spaces please"})
    err = ei.value.response.json()
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert "x-tollway-project" in err["error"]["message"]


@pytest.mark.parametrize("slug", ["x" * 65, "has space", "-dash", "a:b"])
def test_bad_slug_in_the_path_is_a_400(tollway: Tollway, slug: str) -> None:
    client = openai.OpenAI(base_url=f"{tollway.url}/projects/{quote(slug)}/v1", api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert "/projects/{slug}/" in ei.value.response.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        client.models.list()
    claude = anthropic.Anthropic(base_url=f"{tollway.url}/projects/{quote(slug)}", api_key=MASTER_KEY,
                                 max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as ae:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert ae.value.response.json()["type"] == "error"


def test_bad_project_header_on_a_pass_through_route(tollway: Tollway, fake: FakeProvider) -> None:
    before = len(fake.requests)
    status, _, err = raw_call(tollway, "GET", "/v1/files", {"x-tollway-project": b"bad slug"})
    assert status == 400 and "x-tollway-project" in err["error"]["message"]
    assert len(fake.requests) == before


@pytest.mark.parametrize("slug", ["a", "Team_7.prod-eu", "x" * 64, "0day"])
def test_good_slugs_are_recorded(tollway: Tollway, slug: str) -> None:
    client = openai.OpenAI(base_url=f"{tollway.url}/projects/{slug}/v1", api_key=MASTER_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert tollway.record(raw.headers["x-tollway-trace-id"])["project"] == slug
    assert client.models.list().data
    oai = openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO,
                                                        extra_headers={"x-project": slug})
    assert tollway.record(raw.headers["x-tollway-trace-id"])["project"] == slug
