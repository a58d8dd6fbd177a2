"""Client surfaces besides the canonical /v1 routes: Azure OpenAI's (`AzureOpenAI(azure_endpoint=tollway)`),
OpenAI's paths without `/v1`, and the model list in OpenAI's and Anthropic's shapes."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway

HELLO = [{"role": "user", "content": "Hello"}]
REPLY = "Hello from the fake provider!"


def azure(tw: Tollway, key: str = MASTER_KEY, **kw) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=tw.url, api_key=key, api_version="2024-10-21", max_retries=0,
                              timeout=20, **kw)


@pytest.mark.parametrize("deployment,upstream", [("gpt-4o-mini", "/v1/chat/completions"),
                                                 ("fast", "/v1/chat/completions"),
                                                 ("claude-haiku-4-5", "/v1/messages")])
def test_azure_client_chat_by_deployment(tollway: Tollway, fake: FakeProvider, deployment: str,
                                         upstream: str) -> None:
    client = azure(tollway)
    raw = client.chat.completions.with_raw_response.create(model=deployment, messages=HELLO)
    assert raw.parse().choices[0].message.content == REPLY
    assert fake.requests[-1].path == upstream and "api-key" not in fake.requests[-1].headers
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert (rec["route"], rec["model_requested"], rec["path"]) == (
        "azure.chat", deployment, f"/openai/deployments/{deployment}/chat/completions")
    stream = client.chat.completions.create(model=deployment, messages=HELLO, stream=True,
                                            stream_options={"include_usage": True})
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY


def test_azure_client_with_a_fixed_deployment_wins_over_the_body_model(tollway: Tollway, fake: FakeProvider) -> None:
    client = azure(tollway, azure_deployment="claude-haiku-4-5")
    out = client.chat.completions.create(model="ignored-by-azure", messages=HELLO)
    assert out.choices[0].message.content == REPLY and fake.requests[-1].path == "/v1/messages"


def test_azure_client_embeddings_completions_responses_models(tollway: Tollway, fake: FakeProvider) -> None:
    client = azure(tollway)
    emb = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(emb.data) == 2 and fake.requests[-1].path == "/v1/embeddings"
    comp = client.completions.create(model="gpt-4o-mini", prompt="Say hi")
    assert comp.choices[0].text and fake.requests[-1].path == "/v1/completions"
    resp = client.responses.create(model="gpt-4o-mini", input="Hello")  # AzureOpenAI: POST /openai/responses
    assert resp.output_text == REPLY and fake.requests[-1].path == "/v1/responses"
    assert "gpt-4o-mini" in {m.id for m in client.models.list()}


def test_azure_v1_api_with_the_openai_client(tollway: Tollway, fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=tollway.url + "/openai/v1/", api_key=MASTER_KEY, max_retries=0,
                           default_headers={"api-key": TEAM_KEY})
    raw = client.chat.completions.with_raw_response.create(model="claude-haiku-4-5", messages=HELLO)
    assert raw.parse().choices[0].message.content == REPLY
    assert tollway.record(raw.headers["x-tollway-trace-id"])["key_id"] == "team-alpha"  # api-key wins
    assert client.responses.create(model="fast", input="Hi").output_text == REPLY


def test_azure_key_errors_name_the_api_key_header(tollway: Tollway) -> None:
    client = azure(tollway, key="wrong")
    with pytest.raises(openai.AuthenticationError) as ei:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert "api-key" in ei.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        azure(tollway).audio.speech.create(model="tts-1", voice="alloy", input="hi")  # not served: 404


def test_openai_paths_without_v1(tollway: Tollway, fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=tollway.url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    raw = client.chat.completions.with_raw_response.create(model="claude-haiku-4-5", messages=HELLO)
    assert raw.parse().choices[0].message.content == REPLY
    assert tollway.record(raw.headers["x-tollway-trace-id"])["path"] == "/chat/completions"
    assert client.responses.create(model="gpt-4o-mini", input="Hi").output_text == REPLY
    assert len(client.embeddings.create(model="text-embedding-3-small", input="a").data) == 1
    assert client.completions.create(model="gpt-4o-mini", prompt="Hi").choices[0].text
    assert "claude-haiku-4-5" in {m.id for m in client.models.list()} or "fast" in {m.id for m in client.models.list()}


def test_openai_model_retrieve(tollway: Tollway) -> None:
    client = openai.OpenAI(base_url=tollway.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    m = client.models.retrieve("gpt-4o-mini")
    assert (m.id, m.object, m.owned_by) == ("gpt-4o-mini", "model", "openai")
    assert client.models.retrieve("claude-sonnet-4-5").owned_by == "anthropic"  # routed by the claude-* pattern
    with pytest.raises(openai.NotFoundError) as ei:
        client.models.retrieve("no-such-model")
    assert ei.value.body["code"] == "model_not_found"


def test_anthropic_model_list_and_retrieve(tollway: Tollway) -> None:
    client = anthropic.Anthropic(base_url=tollway.url, api_key=MASTER_KEY, max_retries=0)
    first = client.models.list(limit=2)
    assert len(first.data) == 2 and first.has_more and first.first_id == first.data[0].id
    assert all(m.type == "model" and m.display_name and m.created_at for m in first.data)
    everything = [m.id for m in client.models.list(limit=2)]  # the SDK pages with after_id
    assert everything[:2] == [m.id for m in first.data] and len(everything) == len(set(everything)) > 2
    got = client.models.retrieve("fast")
    assert (got.id, got.type) == ("fast", "model")
    with pytest.raises(anthropic.NotFoundError) as ei:
        client.models.retrieve("no-such-model")
    assert ei.value.body["error"]["type"] == "not_found_error"
    before = client.models.list(before_id=everything[2], limit=1)
    assert [m.id for m in before.data] == [everything[1]] and before.has_more


def test_glob_provider_lists_upstream_models_or_falls_back_to_price_data(fake: FakeProvider, workdir) -> None:
    from tests.harness import free_port, standard_config

    cfg = standard_config(fake.url, aliases={})
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the listing never answers
    cfg["providers"] = [
        {"id": "live", "kind": "anthropic", "base_url": fake.url, "api_key": "sk-ant-fake", "models": ["claude-*"]},
        {"id": "dead", "kind": "openai", "base_url": dead + "/v1", "api_key": "sk-fake", "models": ["gpt-4o*"]},
    ]
    tw = Tollway(workdir, cfg)
    try:
        asked = [r for r in fake.requests if r.path == "/v1/models" and r.headers.get("x-api-key") == "sk-ant-fake"]
        assert asked and asked[-1].headers.get("anthropic-version")  # asked at start-up, as Anthropic's API wants
        listed = {m.id: m.owned_by for m in openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY).models.list()}
        assert {m for m, p in listed.items() if p == "live"} == {
            "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-1-20250805"}
        assert "gpt-4o-mini" in listed and listed["gpt-4o-mini"] == "dead"  # price data stands in
    finally:
        tw.stop()
