"""Pass-through by whose client sent it: the Anthropic SDK's other endpoints reach Anthropic with
Tollway's Anthropic key; Gemini-style paths never reach another provider."""

from __future__ import annotations

import json

import anthropic
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway
from tests.proxy.test_passthrough_guard import raw_request
from tollway.passthrough.family import client_family

HELLO = [{"role": "user", "content": "Hello"}]


def _upstream_is_anthropic(fake: FakeProvider, path: str) -> None:
    up = fake.requests[-1]
    assert up.path == path and up.provider == "anthropic"
    assert up.headers.get("x-api-key") == "sk-ant-fake" and up.headers.get("anthropic-version")
    assert "authorization" not in up.headers


def test_message_batches_go_to_anthropic_and_are_recorded(claude: anthropic.Anthropic, tollway: Tollway,
                                                          fake: FakeProvider) -> None:
    raw = claude.messages.batches.with_raw_response.create(requests=[
        {"custom_id": "one", "params": {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": HELLO}},
        {"custom_id": "two", "params": {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": HELLO}},
    ])
    batch = raw.parse()
    assert batch.id.startswith("msgbatch_") and batch.request_counts.succeeded == 2
    assert batch.results_url == f"{tollway.url}/v1/messages/batches/{batch.id}/results"  # ours, not Anthropic's
    _upstream_is_anthropic(fake, "/v1/messages/batches")
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "passthrough.anthropic" and rec["provider"] == "anthropic" and rec["status"] == 200
    assert rec["cost_note"] == "batch created: its usage is reported with its results"

    assert claude.messages.batches.retrieve(batch.id).processing_status == "ended"
    _upstream_is_anthropic(fake, f"/v1/messages/batches/{batch.id}")
    results = list(claude.messages.batches.results(batch.id))
    assert [r.custom_id for r in results] == ["one", "two"]
    assert all(r.result.type == "succeeded" and r.result.message.usage.output_tokens == 7 for r in results)
    # downloading results (usage inside) is no new call: nothing is charged for it
    downloads = [r for r in tollway.records(limit=20) if r["path"].endswith("/results")]
    assert downloads and downloads[0]["cost_usd"] is None and downloads[0]["input_tokens"] is None


def test_legacy_complete_goes_to_anthropic_and_is_counted_locally(claude: anthropic.Anthropic, tollway: Tollway,
                                                                  fake: FakeProvider) -> None:
    # the current SDK no longer has `completions`; older SDKs and curl call it like this
    status, headers, body = raw_request(tollway, "POST", "/v1/complete", {
        "x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"},
        json.dumps({"model": "claude-2.1", "max_tokens_to_sample": 20,
                    "prompt": "\n\nHuman: Hello there, how are you today?\n\nAssistant:"}).encode())
    assert status == 200 and json.loads(body)["completion"] == " Hello from the fake provider!"
    _upstream_is_anthropic(fake, "/v1/complete")
    rec = tollway.record(headers["x-tollway-trace-id"])
    assert rec["route"] == "passthrough.anthropic" and rec["model_requested"] == "claude-2.1"
    assert rec["tokens_estimated"] is True and rec["input_tokens"] > 3 and rec["output_tokens"] > 3


def test_beta_files_go_to_anthropic(claude: anthropic.Anthropic, tollway: Tollway, fake: FakeProvider) -> None:
    uploaded = claude.beta.files.upload(file=("notes.txt", b"some notes", "text/plain"))
    assert uploaded.id.startswith("file_") and uploaded.size_bytes == 10
    _upstream_is_anthropic(fake, "/v1/files")
    assert fake.requests[-1].form["file"].data == b"some notes"
    listed = claude.beta.files.list()
    assert any(f.id == uploaded.id for f in listed.data)
    assert claude.beta.files.download(uploaded.id).read() == b"some notes"
    _upstream_is_anthropic(fake, f"/v1/files/{uploaded.id}/content")


def test_anthropic_passthrough_needs_a_tollway_key(tollway: Tollway, fake: FakeProvider) -> None:
    before = len(fake.requests)
    client = anthropic.Anthropic(base_url=tollway.url, api_key="sk-ant-not-a-tollway-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as ei:
        client.messages.batches.list()
    assert ei.value.body["type"] == "error" and len(fake.requests) == before


@pytest.mark.parametrize("target", [
    "/v1/tunedModels/my-tuned-model:generateContent",  # a Gemini path Tollway does not serve
    "/v1/models/gemini-2.0-flash:predict",
    "/v1/models/gemini-2.0-flash:generateContent",  # served by the Gemini routes: not routable here
    "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
])
def test_gemini_style_requests_never_reach_another_provider(tollway: Tollway, fake: FakeProvider,
                                                            target: str) -> None:
    before = len(fake.requests)
    status, _, body = raw_request(tollway, "POST", target, {"x-goog-api-key": MASTER_KEY,
                                                            "Content-Type": "application/json"},
                                  json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode())
    assert status == 404
    err = json.loads(body)["error"]
    assert err["code"] == 404 and err["status"] == "NOT_FOUND" and "message" in err
    assert len(fake.requests) == before


def test_client_family() -> None:
    assert client_family("/v1/files", {b"anthropic-version": b"2023-06-01"}) == "anthropic"
    assert client_family("/v1/messages/batches", {}) == "anthropic"
    assert client_family("/v1/complete", {}) == "anthropic"
    assert client_family("/v1/files", {b"x-goog-api-key": b"k"}) == "openai"
    assert client_family("/v1/models/gemini-pro:countTokens", {}) == "gemini"
    assert client_family("/v1/tunedModels/x:generateContent", {}) == "gemini"
    assert client_family("/v1/models/ft:gpt-4o-mini:acme::countTokens", {}) == "openai"  # a fine-tune id
    assert client_family("/v1/fine_tuning/jobs", {}) == "openai"
