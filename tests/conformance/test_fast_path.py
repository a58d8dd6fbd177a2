"""Translation must not cost the fast path: a client speaking the provider's own format gets its
request bytes forwarded as they are (only the documented edits: the model name when an alias
or deployment maps it, `stream_options.include_usage` on chat streams), and the provider's
answer bytes back as they are."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from tests.conformance.conftest import Conformance
from tests.conformance.spec import AZURE_DEPLOYMENT, PROVIDERS
from tests.harness import MASTER_KEY

# Oddly formatted on purpose (spaces before colons, escapes, trailing zeros, an unknown field)
# so any re-serialization shows.
CHAT = """{
  "model" : "%(model)s",
  "messages": [ {"role": "user", "content": "Caf\\u00e9 \\ud83d\\ude00 %(nonce)s"} ],
  "temperature": 0.70,%(extra)s
  "x_vendor_extension": {"keep": [1, 2.50, null, "\\u00e9"], "order": {"b": 1, "a": 2}}
}"""
RESPONSES = """{"model":"%(model)s",  "input": "Caf\\u00e9 %(nonce)s", "temperature": 0.70,%(extra)s
  "x_vendor_extension": {"keep": [1, 2.50, null]}}"""
MESSAGES = """{"model": "%(model)s", "max_tokens": 64,
  "messages": [{"role": "user", "content": [{"type": "text", "text": "Caf\\u00e9 %(nonce)s"}]}],
  "metadata": {"user_id": "u-1"},%(extra)s "x_vendor_extension": {"keep": [1, 2.50, null]}}"""

# route, template, provider kind, the fake's path for a direct call
SAME_FORMAT = {
    "openai-chat": ("/v1/chat/completions", CHAT, "openai", "/v1/chat/completions"),
    "openai_compatible-chat": ("/v1/chat/completions", CHAT, "openai_compatible", "/local/v1/chat/completions"),
    "openai-responses": ("/v1/responses", RESPONSES, "openai", "/v1/responses"),
    "anthropic-messages": ("/v1/messages", MESSAGES, "anthropic", "/v1/messages"),
}
_RANDOM = re.compile(rb'("(?:id|responseId|item_id|created|created_at|completed_at|call_id|obfuscation)"\s*:\s*)("[^"]*"|\d+)')


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def render(template: str, model: str, nonce: str, extra: str = "") -> bytes:
    return (template % {"model": model, "nonce": nonce, "extra": extra}).encode()


def masked(body: bytes) -> bytes:
    """The body with its per-call random values (ids, timestamps) blanked, all else byte for byte."""
    return _RANDOM.sub(rb'\1"~"', body)


def direct_headers(kind: str) -> dict[str, str]:
    if kind == "anthropic":
        return {"x-api-key": "sk-ant-fake", "anthropic-version": "2023-06-01"}
    return {"authorization": "Bearer sk-fake"}


def through(conformance: Conformance, route: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    return post(conformance.tollway.url + route, body, {"authorization": f"Bearer {MASTER_KEY}"})


def only_request(conformance: Conformance, nonce: str) -> Any:
    sent = conformance.upstream(nonce)
    assert len(sent) == 1, [u.req.path for u in sent]
    return sent[0].req


def ordered(body: bytes) -> list[tuple[str, Any]]:
    return json.loads(body, object_pairs_hook=list)


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
@pytest.mark.parametrize("route_name", list(SAME_FORMAT))
def test_same_format_request_and_answer_pass_through_as_bytes(conformance: Conformance, route_name: str,
                                                               stream: bool) -> None:
    route, template, kind, direct_path = SAME_FORMAT[route_name]
    # a chat stream that already asks for usage needs no edit at all
    extra = ""
    if stream:
        extra = ' "stream": true,' + (' "stream_options": {"include_usage": true},' if "chat" in route_name else "")
    nonce = f"[fast {uuid.uuid4().hex[:12]}]"
    body = render(template, PROVIDERS[kind].model, nonce, extra)

    status, headers, answer = through(conformance, route, body)
    assert status == 200, answer[:500]
    upstream = only_request(conformance, nonce)
    assert upstream.body == body, "the request was re-serialized or edited on the fast path"

    direct_status, _, direct = post(conformance.fake.url + direct_path, body, direct_headers(kind))
    assert direct_status == 200
    assert masked(answer) == masked(direct), "the answer was not relayed byte for byte"
    assert conformance.tollway.record(headers["x-tollway-trace-id"])["input_tokens"]


def test_alias_edits_only_the_model(conformance: Conformance) -> None:
    nonce = f"[fast {uuid.uuid4().hex[:12]}]"
    body = render(CHAT, "conformance-fast", nonce)
    status, _, answer = through(conformance, "/v1/chat/completions", body)
    assert status == 200, answer[:500]
    upstream = only_request(conformance, nonce)
    expected = [(k, "gpt-4o-mini" if k == "model" else v) for k, v in ordered(body)]
    assert ordered(upstream.body) == expected  # same keys, same order, same values; unknown field kept


def test_injected_stream_usage_is_the_only_edit_and_stays_invisible(conformance: Conformance) -> None:
    nonce = f"[fast {uuid.uuid4().hex[:12]}]"
    body = render(CHAT, PROVIDERS["openai"].model, nonce, ' "stream": true,')
    status, _, answer = through(conformance, "/v1/chat/completions", body)
    assert status == 200, answer[:500]
    upstream = only_request(conformance, nonce)
    assert ordered(upstream.body) == [*ordered(body), ("stream_options", [("include_usage", True)])]
    # the client did not ask for usage: it gets the stream a direct call without it would give
    _, _, direct = post(conformance.fake.url + "/v1/chat/completions", body, direct_headers("openai"))
    assert masked(answer) == masked(direct)


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_azure_keeps_unknown_fields_and_its_own_answer(conformance: Conformance, stream: bool) -> None:
    nonce = f"[fast {uuid.uuid4().hex[:12]}]"
    extra = ' "stream": true, "stream_options": {"include_usage": true},' if stream else ""
    body = render(CHAT, PROVIDERS["azure_openai"].model, nonce, extra)
    status, _, answer = through(conformance, "/v1/chat/completions", body)
    assert status == 200, answer[:500]
    upstream = only_request(conformance, nonce)
    assert upstream.path == f"/openai/deployments/{AZURE_DEPLOYMENT}/chat/completions"
    assert [(k, v) for k, v in ordered(upstream.body) if k != "model"] == [
        (k, v) for k, v in ordered(body) if k != "model"]
    assert b"prompt_filter_results" in answer  # Azure's content-filter annotations are relayed, not dropped


GENERATE = """{"contents" : [ {"role": "user", "parts": [{"text": "Caf\\u00e9 \\ud83d\\ude00 %(nonce)s"}]} ],
  "generationConfig": {"temperature": 0.70, "max_output_tokens": 64}}"""


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_gemini_client_to_gemini_passes_through_as_bytes(conformance: Conformance, stream: bool) -> None:
    model = PROVIDERS["gemini"].model
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    nonce = f"[fast {uuid.uuid4().hex[:12]}]"
    body = (GENERATE % {"nonce": nonce}).encode()
    status, headers, answer = post(f"{conformance.tollway.url}/v1beta/models/{model}:{verb}", body,
                                   {"x-goog-api-key": MASTER_KEY})
    assert status == 200, answer[:500]
    upstream = only_request(conformance, nonce)
    assert upstream.body == body, "the request was re-serialized or edited on the fast path"
    assert "x-goog-api-key" not in {k for k, v in upstream.headers.items() if v == MASTER_KEY}
    assert upstream.headers["x-goog-api-key"] == "fake-gemini-key"  # Tollway's provider key, not the client's
    direct_status, _, direct = post(f"{conformance.fake.url}/v1beta/models/{model}:{verb}", body,
                                    {"x-goog-api-key": "fake-gemini-key"})
    assert direct_status == 200
    assert masked(answer) == masked(direct), "the answer was not relayed byte for byte"
    rec = conformance.tollway.record(headers["x-tollway-trace-id"])
    assert (rec["route"], rec["provider"], rec["stream"]) == ("gemini.generate_content", "gemini", stream)
    assert rec["input_tokens"] and rec["output_tokens"] and rec["cost_usd"] is not None
