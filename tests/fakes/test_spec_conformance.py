"""Every shape the fake sends, checked against the providers' published specs (../shared/specs).

Guards the fixtures: editing one into something the spec rejects fails here. Known, deliberate
differences from the schemas are listed where they are allowed, each with its reason.
"""

from __future__ import annotations

import json

import pytest

from tests import specs

from . import anthropic_wire as aw
from . import openai_wire as ow
from .scenario import from_anthropic, from_openai_chat, from_openai_embeddings, from_responses

CASES = ["hi", "[[tools:2]]", "[[max_tokens]] [[cache]] [[thinking]] [[dated]]", "[[no_usage]] [[echo]]"]


def openai_check(allow_null: frozenset[str] = frozenset()):
    return lambda schema, value: specs.errors("openai", schema, value, allow_null)


def anthropic_check():
    return lambda schema, value: specs.errors("anthropic", schema, value)


def chat_scenario(text: str):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    return from_openai_chat(body, json.dumps(body), body["model"])


@pytest.mark.parametrize("text", CASES)
def test_openai_shapes(text):
    # Real API sends null where the schema has no null: Response.user ("user": null in the spec's own
    # examples), Response.usage while in progress (response.created/in_progress examples), and the
    # legacy completion chunks' finish_reason/usage before the last chunk.
    check = openai_check(frozenset({"user", "usage", "finish_reason"}))
    sc = chat_scenario(text)
    assert check("CreateChatCompletionResponse", ow.chat_completion(sc, "openai")) == []
    for include_usage in (True, False):
        for ev in ow.chat_stream(sc, {"stream_options": {"include_usage": include_usage}}, "openai")[:-1]:
            assert check("CreateChatCompletionStreamResponse", json.loads(ev.data)) == []
    assert check("CreateCompletionResponse", ow.completion(sc, "openai")) == []
    for ev in ow.completion_stream(sc, {"stream_options": {"include_usage": True}}, "openai")[:-1]:
        assert check("CreateCompletionResponse", json.loads(ev.data)) == []
    req = {"model": "gpt-4.1", "input": text, "reasoning": {"effort": "low", "summary": "auto"},
           "tools": [{"type": "function", "name": "get_weather", "parameters": {}, "strict": True}]}
    rs = from_responses(req, json.dumps(req), "gpt-4.1")
    assert check("Response", ow.response(rs, req)) == []
    for ev in ow.response_stream(rs, req):
        data = json.loads(ev.data)
        assert data["type"] == ev.event
        assert check("ResponseStreamEvent", data) == [], ev.event


def test_openai_other_shapes():
    check = openai_check()
    body = {"model": "text-embedding-3-small", "input": ["a", "b"]}
    sc = from_openai_embeddings(body, json.dumps(body), body["model"])
    assert check("CreateEmbeddingResponse", ow.embeddings(sc, body, "openai")) == []
    f = ow.file_object("file-abc", "a.jsonl", 3, "batch", 1747324012)
    assert check("OpenAIFile", f) == []
    assert check("ListFilesResponse", ow.file_list([f])) == []
    assert check("ListModelsResponse", ow.model_list("openai")) == []
    assert check("ListModelsResponse", ow.model_list("local")) == []
    assert check("ErrorResponse", ow.named_error("missing_key")) == []
    # 502/504 come from OpenAI's Cloudflare edge with an integer code, unlike the schema: kept as is.
    for status in (400, 401, 403, 404, 409, 422, 429, 500, 503, 418, 529):
        assert check("ErrorResponse", ow.error_body(status)) == [], status


@pytest.mark.parametrize("text", CASES)
def test_anthropic_shapes(text):
    check = anthropic_check()
    body = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": text}]}
    sc = from_anthropic(body, json.dumps(body), "claude-x")
    if sc.directives.no_usage:  # [[no_usage]] removes a required field on purpose
        return
    assert check("Message", aw.message(sc)) == []
    for ev in aw.stream(sc):
        data = json.loads(ev.data)
        assert data["type"] == ev.event
        assert check("MessageStreamEvent", data) == [], ev.event
    assert check("CountMessageTokensResponse", aw.count_tokens(sc)) == []


def test_anthropic_other_shapes():
    check = anthropic_check()
    for status in (400, 401, 402, 403, 404, 429, 500, 504, 529, 418, 503):
        assert check("ErrorResponse", aw.error_body(status, "req_011Cabc")) == [], status
    for name in ("missing_key", "missing_version", "missing_max_tokens"):
        assert check("ErrorResponse", aw.named_error(name, "req_011Cabc")) == []
    for model in aw.model_list()["data"]:
        assert check("ModelInfo", model) == []
