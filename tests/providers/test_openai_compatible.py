"""Local OpenAI-compatible servers (Ollama, vLLM, LM Studio, llama.cpp) through the official SDKs:
model discovery, routing, usage-less answers counted locally and marked estimated, the Responses
API translated to chat (previous_response_id included), and a server that starts after Tollway."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import Tollway, anthropic_client, free_port, openai_client
from tests.providers.support import base_config, nonce, only_upstream
from tollway.tokens import TokenCounter

LOCAL_MODELS = ["llama3.2:1b", "qwen2.5:0.5b", "nomic-embed-text:latest"]  # the fake's GET /local/v1/models
REPLY = "Hello from the fake provider!"


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = base_config([
        # no `models`: everything it serves is discovered
        {"id": "ollama", "kind": "openai_compatible", "base_url": fake.local_url + "/v1"},
        # a configured model, a key, and no discovery
        {"id": "vllm", "kind": "openai_compatible", "base_url": fake.local_url + "/v1", "api_key": "vllm-key",
         "models": ["my-finetune"], "discover_models": False},
    ])
    t = Tollway(tmp_path_factory.mktemp("local"), cfg)
    yield t
    t.stop()


@pytest.fixture
def oai(tw: Tollway) -> openai.OpenAI:
    return openai_client(tw)


@pytest.fixture
def claude(tw: Tollway) -> anthropic.Anthropic:
    return anthropic_client(tw)


def test_discovered_models_are_listed_and_routed(oai: openai.OpenAI, tw: Tollway, fake: FakeProvider) -> None:
    models = {m.id: m.owned_by for m in oai.models.list()}
    assert all(models.get(m) == "ollama" for m in LOCAL_MODELS), models
    assert models.get("my-finetune") == "vllm"
    assert "provider ollama: 3 model(s) discovered: llama3.2:1b, qwen2.5:0.5b" in tw.log()

    n = nonce()
    raw = oai.chat.completions.with_raw_response.create(model="qwen2.5:0.5b",
                                                        messages=[{"role": "user", "content": f"Hi {n}"}])
    assert raw.parse().choices[0].message.content == REPLY
    up = only_upstream(fake, n)
    assert up.provider == "local" and up.path == "/local/v1/chat/completions" and up.json["model"] == "qwen2.5:0.5b"
    assert "authorization" not in up.headers  # no key configured, none sent
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["provider"] == "ollama" and (rec["input_tokens"], rec["output_tokens"]) == (11, 7)
    assert rec["tokens_estimated"] is False


def test_a_configured_model_and_an_optional_key(oai: openai.OpenAI, fake: FakeProvider) -> None:
    n = nonce()
    oai.chat.completions.create(model="my-finetune", messages=[{"role": "user", "content": f"Hi {n}"}])
    up = only_upstream(fake, n)
    assert up.headers["authorization"] == "Bearer vllm-key" and up.json["model"] == "my-finetune"


def test_embeddings_route_to_a_discovered_embedding_model(oai: openai.OpenAI, tw: Tollway) -> None:
    raw = oai.embeddings.with_raw_response.create(model="nomic-embed-text:latest", input=["a", "b"])
    e = raw.parse()
    assert len(e.data) == 2
    assert tw.record(raw.headers["x-tollway-trace-id"])["provider"] == "ollama"


def test_no_usage_is_counted_locally_and_marked_estimated(oai: openai.OpenAI, tw: Tollway) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="llama3.2:1b", messages=[{"role": "user", "content": "Hi [[no_usage]]"}])
    assert raw.parse().usage is None
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["tokens_estimated"] is True and rec["input_tokens"] > 0 and rec["output_tokens"] > 0

    # the server ignores stream_options: no usage chunk ever comes
    with oai.chat.completions.with_streaming_response.create(
            model="llama3.2:1b", messages=[{"role": "user", "content": "Hi [[no_usage]]"}], stream=True,
            stream_options={"include_usage": True}) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    rec = tw.record(trace)
    assert rec["stream"] is True and rec["tokens_estimated"] is True
    assert rec["input_tokens"] > 0 and rec["output_tokens"] == TokenCounter().count_text("llama3.2:1b", REPLY)[0]
    assert rec["status"] == 200 and rec["error_type"] is None


def test_anthropic_client_is_translated_with_compat_options(claude: anthropic.Anthropic, fake: FakeProvider) -> None:
    n = nonce()
    m = claude.messages.create(model="llama3.2:1b", max_tokens=77, extra_body={"top_k": 5},
                               messages=[{"role": "user", "content": f"Hi {n}"}])
    assert m.content[0].text == REPLY and m.usage.output_tokens == 7
    body = only_upstream(fake, n).json
    # compatible servers take plain max_tokens and top_k
    assert body["max_tokens"] == 77 and "max_completion_tokens" not in body and body["top_k"] == 5


def test_responses_api_is_translated_to_chat_with_previous_response_id(oai: openai.OpenAI, tw: Tollway,
                                                                       fake: FakeProvider) -> None:
    n = nonce()
    raw = oai.responses.with_raw_response.create(model="llama3.2:1b", instructions="Be brief.",
                                                 input=f"First {n}")
    first = raw.parse()
    assert first.output_text == REPLY and first.status == "completed"
    up = only_upstream(fake, n)
    assert up.path == "/local/v1/chat/completions"  # no Responses API on local servers
    assert up.json["messages"] == [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": f"First {n}"}]
    assert tw.record(raw.headers["x-tollway-trace-id"])["route"] == "openai.responses"

    m = nonce()
    second = oai.responses.create(model="llama3.2:1b", input=f"Second {m}", previous_response_id=first.id)
    assert second.output_text == REPLY and second.previous_response_id == first.id
    msgs = only_upstream(fake, m).json["messages"]
    assert [x["role"] for x in msgs] == ["user", "assistant", "user"]
    assert msgs[0]["content"] == f"First {n}" and msgs[1]["content"] == REPLY and msgs[2]["content"] == f"Second {m}"

    with oai.responses.stream(model="llama3.2:1b", input="Third", previous_response_id=second.id) as s:
        final = s.get_final_response()
    assert final.output_text == REPLY and final.usage.output_tokens == 7


def test_count_tokens_is_a_flagged_estimate(claude: anthropic.Anthropic, tw: Tollway, fake: FakeProvider) -> None:
    before = len(fake.requests)
    raw = claude.messages.with_raw_response.count_tokens(model="llama3.2:1b",
                                                         messages=[{"role": "user", "content": "Hello there"}])
    assert raw.parse().input_tokens > 0
    assert raw.headers["x-tollway-tokens-estimated"] == "true" and len(fake.requests) == before
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["tokens_estimated"] is True and rec["status"] == 200 and rec["provider"] == "ollama"


def test_unknown_model_lists_the_discovered_ones(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as ei:
        oai.chat.completions.create(model="mistral:7b", messages=[{"role": "user", "content": "Hi"}])
    assert "llama3.2:1b" in ei.value.body["message"]


# ---------------------------------------------------------------- a server that starts later


class _LateServer(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible server: one model, one fixed chat answer."""

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, obj: object) -> None:
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/v1/models":
            self._json({"object": "list", "data": [{"id": "late-model", "object": "model", "owned_by": "me"}]})
        else:
            self.send_error(404)

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self._json({"id": "chatcmpl-late", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "late but here"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})


def test_a_server_down_at_start_up_is_discovered_once_it_answers(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet
    cfg = base_config([{"id": "late", "kind": "openai_compatible", "base_url": f"http://127.0.0.1:{port}/v1"}])
    t0 = time.monotonic()
    tw = Tollway(tmp_path, cfg)
    server: ThreadingHTTPServer | None = None
    try:
        assert time.monotonic() - t0 < 20  # start-up is not held up by the missing server
        assert "could not list models" in tw.log() and "late" in tw.log()  # the operator is told
        client = openai_client(tw)
        assert "late-model" not in [m.id for m in client.models.list()]
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="late-model", messages=[{"role": "user", "content": "Hi"}])

        server = ThreadingHTTPServer(("127.0.0.1", port), _LateServer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        deadline = time.monotonic() + 15
        while "late-model" not in [m.id for m in client.models.list()]:
            assert time.monotonic() < deadline, "the late server's models never showed up"
            time.sleep(0.3)
        c = client.chat.completions.create(model="late-model", messages=[{"role": "user", "content": "Hi"}])
        assert c.choices[0].message.content == "late but here"
        assert "1 model(s) discovered: late-model" in tw.log()
    finally:
        tw.stop()
        if server is not None:
            server.shutdown()
            server.server_close()


def test_discovery_off_lists_only_configured_models(tmp_path: Path, fake: FakeProvider) -> None:
    cfg = base_config([{"id": "lm", "kind": "openai_compatible", "base_url": fake.local_url + "/v1",
                        "models": ["only-this"], "discover_models": False}])
    before = [r for r in fake.requests if r.method == "GET" and r.path == "/local/v1/models"]
    tw = Tollway(tmp_path, cfg)
    try:
        ids = [m.id for m in openai_client(tw).models.list()]
        assert ids == ["only-this"]
        after = [r for r in fake.requests if r.method == "GET" and r.path == "/local/v1/models"]
        assert len(after) == len(before)  # never asked
    finally:
        tw.stop()


def test_discovery_requests_go_through_with_the_key(tmp_path: Path, fake: FakeProvider) -> None:
    cfg = base_config([{"id": "lm", "kind": "openai_compatible", "base_url": fake.local_url + "/v1",
                        "api_key": "lm-key"}])
    tw = Tollway(tmp_path, cfg)
    try:
        asked = [r for r in fake.requests if r.method == "GET" and r.path == "/local/v1/models"]
        assert asked and asked[-1].headers.get("authorization") == "Bearer lm-key"
    finally:
        tw.stop()
