"""The Gemini-native surface through google-genai (chat, streams and errors are in the conformance
matrix): keys, the JSON-array stream, token counting and embeddings for every kind of model, the
model list, and errors in Gemini's shape."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gtypes

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway, gemini_client, standard_config

GEMINI = "gemini-2.0-flash"


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url)
    cfg["providers"].append({"id": "gemini", "kind": "gemini", "base_url": fake.url, "api_key": "fake-gemini-key",
                             "models": ["gemini-*"]})
    cfg["aliases"] = {"fast": "openai:gpt-4o-mini", "flash": f"gemini:{GEMINI}"}
    t = Tollway(tmp_path_factory.mktemp("gemini-routes"), cfg)
    yield t
    t.stop()


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


HELLO = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}


@pytest.mark.parametrize("api_version", [None, "v1beta"])
@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5", GEMINI, "flash"])
def test_the_sdk_works_on_both_api_versions_for_every_kind(tw: Tollway, model: str, api_version: str | None) -> None:
    client = gemini_client(tw, api_version=api_version)
    answer = client.models.generate_content(model=model, contents="Hello")
    assert answer.text == "Hello from the fake provider!"
    assert answer.usage_metadata.prompt_token_count == 11 and answer.usage_metadata.candidates_token_count == 7
    streamed = "".join(c.text or "" for c in client.models.generate_content_stream(model=model, contents="Hi"))
    assert streamed == "Hello from the fake provider!"


def test_key_in_query_or_header_never_goes_upstream(tw: Tollway, fake: FakeProvider) -> None:
    for url, headers in ((f"{tw.url}/v1beta/models/{GEMINI}:generateContent?key={TEAM_KEY}", {}),
                         (f"{tw.url}/v1beta/models/{GEMINI}:generateContent", {"x-goog-api-key": TEAM_KEY})):
        status, hdrs, body = post(url, HELLO, headers)
        assert status == 200, body
        up = fake.requests[-1]
        assert up.path == f"/v1beta/models/{GEMINI}:generateContent"
        assert up.headers["x-goog-api-key"] == "fake-gemini-key" and "key" not in up.query
        assert TEAM_KEY not in json.dumps(up.headers)
        assert tw.record(hdrs["x-tollway-trace-id"])["key_id"] == "team-alpha"


def test_a_bad_key_is_a_gemini_shaped_401(tw: Tollway) -> None:
    with pytest.raises(gerrors.ClientError) as ei:
        client = gemini_client(tw, api_key="wrong")  # (held: a dropped Client closes its connection)
        client.models.generate_content(model=GEMINI, contents="Hi")
    err = ei.value
    assert err.code == 401 and err.status == "UNAUTHENTICATED" and "x-goog-api-key" in err.message
    status, headers, body = post(f"{tw.url}/v1beta/models/{GEMINI}:generateContent", HELLO)  # no key at all
    assert status == 401 and json.loads(body)["error"]["status"] == "UNAUTHENTICATED"
    trace = headers["x-tollway-trace-id"]  # logged, not recorded (README, Keys)
    deadline = time.time() + 5
    while trace not in tw.log():
        assert time.time() < deadline, "no access-log line for the 401"
        time.sleep(0.05)
    assert "status=401" in next(ln for ln in tw.log().splitlines() if trace in ln)
    assert tw.get(f"/v1/records/{trace}")[0] == 404


def test_unknown_model_and_unknown_verb_are_gemini_shaped_404s(tw: Tollway) -> None:
    client = gemini_client(tw)
    with pytest.raises(gerrors.ClientError) as ei:
        client.models.generate_content(model="no-such-model", contents="Hi")
    assert ei.value.code == 404 and ei.value.status == "NOT_FOUND" and "gpt-4o-mini" in ei.value.message
    status, _, body = post(f"{tw.url}/v1beta/models/{GEMINI}:predict", HELLO, {"x-goog-api-key": MASTER_KEY})
    assert status == 404 and json.loads(body)["error"]["status"] == "NOT_FOUND"
    status, _, body = post(f"{tw.url}/v1beta/cachedContents", {}, {"x-goog-api-key": MASTER_KEY})
    assert status == 404 and json.loads(body)["error"]["code"] == 404


def test_bad_json_is_a_gemini_shaped_400(tw: Tollway) -> None:
    req = urllib.request.Request(f"{tw.url}/v1beta/models/gpt-4o-mini:generateContent", data=b"{nope", method="POST",
                                 headers={"x-goog-api-key": MASTER_KEY, "content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(req, timeout=10)
    assert ei.value.code == 400 and json.loads(ei.value.read())["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("model", ["gpt-4o-mini", GEMINI])
def test_stream_without_alt_sse_is_one_json_array(tw: Tollway, model: str) -> None:
    status, headers, body = post(f"{tw.url}/v1beta/models/{model}:streamGenerateContent", HELLO,
                                 {"x-goog-api-key": MASTER_KEY})
    assert status == 200 and headers["content-type"].startswith("application/json")
    chunks = json.loads(body)
    assert isinstance(chunks, list) and len(chunks) > 1
    text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"].get("parts", []))
    assert text == "Hello from the fake provider!"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and chunks[-1]["usageMetadata"]["promptTokenCount"]
    rec = tw.record(headers["x-tollway-trace-id"])
    assert rec["stream"] is True and rec["output_tokens"] == 7


@pytest.mark.parametrize("model,expected,asked", [("claude-haiku-4-5", 11, "/v1/messages/count_tokens"),
                                                  (GEMINI, None, f"/v1beta/models/{GEMINI}:countTokens"),
                                                  ("gpt-4o-mini", None, None)])
def test_count_tokens_for_every_kind(tw: Tollway, fake: FakeProvider, model: str, expected: int | None,
                                     asked: str | None) -> None:
    before = len(fake.requests)
    client = gemini_client(tw)
    answer = client.models.count_tokens(model=model, contents="How many tokens is this?")
    assert isinstance(answer.total_tokens, int) and answer.total_tokens > 0
    if expected is not None:
        assert answer.total_tokens == expected
    sent = fake.requests[before:]
    assert [r.path for r in sent] == ([asked] if asked else [])  # OpenAI models are counted locally
    assert answer.sdk_http_response.headers.get("x-tollway-tokens-estimated") is None  # exact, all three


@pytest.mark.parametrize("model", ["text-embedding-3-small", "gemini-embedding-001"])
def test_embeddings_through_the_sdk(tw: Tollway, fake: FakeProvider, model: str) -> None:
    client = gemini_client(tw)
    one = client.models.embed_content(model=model, contents="hello world",
                                      config=gtypes.EmbedContentConfig(output_dimensionality=8))
    assert [len(e.values) for e in one.embeddings] == [8]
    batch = client.models.embed_content(model=model, contents=[gtypes.Content(parts=[gtypes.Part(text="a")]),
                                                               gtypes.Content(parts=[gtypes.Part(text="b")])])
    assert len(batch.embeddings) == 2 and batch.embeddings[0].values != batch.embeddings[1].values
    up = fake.requests[-1]
    if model.startswith("text-"):
        assert up.path == "/v1/embeddings" and up.json["input"] == ["a", "b"]
    else:
        assert up.path == f"/v1beta/models/{model}:batchEmbedContents"
    trace = batch.sdk_http_response.headers["x-tollway-trace-id"]
    rec = tw.record(trace)
    assert rec["route"] == "gemini.embed_content" and rec["input_tokens"] and rec["status"] == 200


def test_embeddings_of_an_anthropic_model_are_refused(tw: Tollway) -> None:
    client = gemini_client(tw)
    with pytest.raises(gerrors.ClientError) as ei:
        client.models.embed_content(model="claude-haiku-4-5", contents="hi")
    assert ei.value.code == 400 and ei.value.status == "INVALID_ARGUMENT" and "endpoint" in ei.value.message


@pytest.mark.parametrize("api_version", [None, "v1beta"])
def test_model_list_and_get(tw: Tollway, api_version: str | None) -> None:
    client = gemini_client(tw, api_version=api_version)
    names = [m.name for m in client.models.list(config={"page_size": 3})]  # paged: the SDK follows the token
    assert {"models/fast", "models/flash", "models/gpt-4o-mini", "models/claude-haiku-4-5-20251001"} <= set(names)
    assert len(names) == len(set(names))
    got = client.models.get(model="gpt-4o-mini")
    assert got.name == "models/gpt-4o-mini" and "generateContent" in got.supported_actions
    assert "embedContent" in client.models.get(model="text-embedding-3-small").supported_actions
    assert "embedContent" not in client.models.get(model="claude-haiku-4-5").supported_actions
    with pytest.raises(gerrors.ClientError) as ei:
        client.models.get(model="no-such-model")
    assert ei.value.code == 404 and ei.value.status == "NOT_FOUND"


def test_project_scoped_gemini_route(tw: Tollway) -> None:
    status, headers, body = post(f"{tw.url}/projects/blue/v1beta/models/gpt-4o-mini:generateContent", HELLO,
                                 {"x-goog-api-key": MASTER_KEY})
    assert status == 200, body
    assert tw.record(headers["x-tollway-trace-id"])["project"] == "blue"


@pytest.mark.parametrize("api_version", [None, "v1beta"])
def test_the_sdk_on_a_projects_path_on_both_api_versions(tw: Tollway, api_version: str | None) -> None:
    """google-genai with its base URL at /projects/{slug}: it asks /v1/... by default."""
    g = genai.Client(api_key=MASTER_KEY, http_options=gtypes.HttpOptions(
        base_url=f"{tw.url}/projects/green", api_version=api_version, timeout=20_000))
    raw = g.models.generate_content(model="claude-haiku-4-5", contents="Hello")
    assert raw.text == "Hello from the fake provider!"
    assert "".join(c.text or "" for c in g.models.generate_content_stream(model="gpt-4o-mini", contents="Hi")) == \
        "Hello from the fake provider!"
    deadline = time.time() + 5
    while len(tw.records(project="green")) < 2 * (2 if api_version else 1) and time.time() < deadline:
        time.sleep(0.05)
    assert {r["model_requested"] for r in tw.records(project="green")} == {"claude-haiku-4-5", "gpt-4o-mini"}
