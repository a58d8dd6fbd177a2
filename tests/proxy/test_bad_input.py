"""Input Tollway cannot forward faithfully is a 400 in the route's format, before any provider
call: JSON nested deeper than a re-encode allows (streams, aliases, `provider:model`,
translation), integers no provider takes, parameter names a response header cannot carry.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway

HELLO = [{"role": "user", "content": "Hello"}]


def deep(levels: int) -> Any:
    v: Any = "bottom"
    for _ in range(levels):
        v = [v]
    return v


def post(tollway: Tollway, path: str, body: Any) -> tuple[int, dict, dict]:
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode()
    req = urllib.request.Request(tollway.url + path, data=data, method="POST",
                                 headers={"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json",
                                          "x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def assert_400_before_the_provider(tollway: Tollway, fake: FakeProvider, path: str, body: Any,
                                   shape: str, says: str) -> None:
    before = len(fake.requests)
    status, headers, answer = post(tollway, path, body)
    assert status == 400, answer
    if shape == "anthropic":
        assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
        message = answer["error"]["message"]
    else:
        assert answer["error"]["type"] == "invalid_request_error"
        message = answer["error"]["message"]
    assert says in message, message
    assert len(fake.requests) == before, "the provider was called"
    rec = tollway.record(headers["x-tollway-trace-id"])
    assert rec["status"] == 400


TOOL_DEEP = [{"type": "function", "function": {"name": "f", "parameters": {
    "type": "object", "properties": {"a": {"type": "array", "default": deep(300)}}}}}]


@pytest.mark.parametrize("path,shape,body", [
    ("/v1/chat/completions", "openai", {"model": "fast", "messages": HELLO, "x": deep(300)}),  # alias
    ("/v1/chat/completions", "openai", {"model": "gpt-4o-mini", "stream": True, "messages": HELLO, "x": deep(300)}),
    ("/v1/chat/completions", "openai", {"model": "openai:gpt-4o-mini", "messages": HELLO, "x": deep(300)}),
    ("/v1/messages", "anthropic", {"model": "anthropic:claude-haiku-4-5", "max_tokens": 5, "messages": HELLO,
                                   "x": deep(300)}),
    ("/v1/chat/completions", "openai", {"model": "claude-haiku-4-5", "messages": HELLO, "tools": TOOL_DEEP}),
    ("/v1/chat/completions", "openai", {"model": "claude-haiku-4-5", "messages": HELLO, "tools": TOOL_DEEP,
                                        "stream": True}),
], ids=["alias", "stream", "provider-model", "anthropic-provider-model", "translated", "translated-stream"])
def test_json_nested_too_deep_to_forward_is_a_400(tollway: Tollway, fake: FakeProvider, path: str, shape: str,
                                                   body: dict) -> None:
    assert_400_before_the_provider(tollway, fake, path, body, shape, "nested deeper")


@pytest.mark.parametrize("path,shape,body,param", [
    ("/v1/chat/completions", "openai", {"model": "claude-haiku-4-5", "messages": HELLO, "max_tokens": 1e300},
     "max_tokens"),
    ("/v1/chat/completions", "openai", {"model": "claude-haiku-4-5", "messages": HELLO,
                                        "max_completion_tokens": 18446744073709551617}, "max_completion_tokens"),
    ("/v1/messages", "anthropic", {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 1e300}, "max_tokens"),
    ("/v1/messages", "anthropic", {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 5,
                                   "top_k": -18446744073709551617}, "top_k"),
    ("/v1/responses", "openai", {"model": "claude-haiku-4-5", "input": "Hi", "max_output_tokens": 1e300,
                                 "stream": True}, "max_output_tokens"),
], ids=["chat-1e300", "chat-2^64", "anthropic-1e300", "anthropic-negative-2^64", "responses-stream-1e300"])
def test_an_integer_out_of_range_in_a_translated_call_is_a_400(tollway: Tollway, fake: FakeProvider, path: str,
                                                               shape: str, body: dict, param: str) -> None:
    assert_400_before_the_provider(tollway, fake, path, body, shape, param)


@pytest.mark.parametrize("path,shape,body", [
    ("/v1/chat/completions", "openai", {"model": "claude-haiku-4-5", "messages": HELLO, "evil\nname": 1}),
    ("/v1/chat/completions", "openai", {"model": "claude-haiku-4-5", "messages": HELLO, "evil\r\nX-Injected: 1": 1,
                                        "stream": True}),
    ("/v1/messages", "anthropic", {"model": "gpt-4o-mini", "max_tokens": 5, "messages": HELLO, "a\tb": 1}),
    ("/v1/responses", "openai", {"model": "claude-haiku-4-5", "input": "Hi", "tools": [{"type": "web\nsearch"}]}),
], ids=["chat", "chat-stream-crlf", "anthropic-tab", "responses-tool-type"])
def test_a_parameter_name_no_header_can_carry_is_a_400(tollway: Tollway, fake: FakeProvider, path: str, shape: str,
                                                       body: dict) -> None:
    assert_400_before_the_provider(tollway, fake, path, body, shape, "Unsupported parameter")
