"""Provider error bodies → (status, type, message); error rendering in every client format;
the stop-reason tables."""

from __future__ import annotations

import anthropic
import openai
import pytest

from fmt_support import anthropic_client, openai_client
from tollway.formats import errors, stop_reasons
from tollway.formats.errors import ProviderError, TranslationError

import json


@pytest.mark.parametrize("fmt,status,body,expected", [
    ("openai_chat", 429, {"error": {"message": "Rate limit reached", "type": "requests", "param": None,
                                    "code": "rate_limit_exceeded"}},
     ProviderError(429, "rate_limit_error", "Rate limit reached", None, "rate_limit_exceeded")),
    ("openai_chat", 429, {"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}},
     ProviderError(429, "billing_error", "quota", None, "insufficient_quota")),
    ("openai_chat", 400, {"error": {"message": "too long", "type": "invalid_request_error", "param": "messages",
                                    "code": "context_length_exceeded"}},
     ProviderError(400, "invalid_request_error", "too long", "messages", "context_length_exceeded")),
    ("anthropic", 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                        "request_id": "req_1"},
     ProviderError(529, "overloaded_error", "Overloaded", None, "overloaded_error")),
    ("anthropic", 400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}},
     ProviderError(400, "invalid_request_error", "bad", None, "invalid_request_error")),
    ("gemini", 429, {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}},
     ProviderError(429, "rate_limit_error", "Resource exhausted", None, "RESOURCE_EXHAUSTED")),
    ("gemini", 503, [{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}],
     ProviderError(503, "overloaded_error", "The model is overloaded.", None, "UNAVAILABLE")),
    ("gemini", 400, b'{"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT"}}',
     ProviderError(400, "invalid_request_error", "API key not valid", None, "INVALID_ARGUMENT")),
    ("openai_chat", 502, b"<html>Bad Gateway</html>", ProviderError(502, "api_error", "<html>Bad Gateway</html>")),
    ("anthropic", 500, b"", ProviderError(500, "api_error", "upstream error (HTTP 500)")),
    ("openai_chat", 404, None, ProviderError(404, "not_found_error", "upstream error (HTTP 404)")),
    ("openai_chat", 401, {"error": "Unauthorized"}, ProviderError(401, "authentication_error", "Unauthorized")),
    ("openai_chat", 418, {"message": "teapot"}, ProviderError(418, "invalid_request_error", "teapot")),
])
def test_parse_provider_error(fmt, status, body, expected):
    assert errors.parse_provider_error(fmt, status, body) == expected


@pytest.mark.parametrize("etype", list(errors.ERROR_STATUS))
def test_render_error_every_client_format_and_sdks_understand_it(etype):
    status, body = errors.render_error("openai_chat", etype, "boom", param="messages")
    assert body == {"error": {"message": "boom", "type": body["error"]["type"], "param": "messages",
                              "code": body["error"]["code"]}}
    with pytest.raises(openai.APIStatusError) as e:
        openai_client(json.dumps(body).encode(), "application/json", status).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == status and "boom" in str(e.value)
    status, body = errors.render_error("anthropic", etype, "boom")
    assert body == {"type": "error", "error": {"type": etype, "message": "boom"}}
    with pytest.raises(anthropic.APIStatusError) as e2:
        anthropic_client(json.dumps(body).encode(), "application/json", status).messages.create(
            model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    assert e2.value.status_code == status
    status_g, body = errors.render_error("gemini", etype, "boom")
    assert body["error"]["code"] == status_g and body["error"]["status"]


def test_statuses():
    assert errors.render_error("anthropic", "overloaded_error", "x")[0] == 529
    assert errors.render_error("openai_chat", "overloaded_error", "x")[0] == 503
    assert errors.render_error("responses", "rate_limit_error", "x")[0] == 429
    assert errors.render_error("openai_chat", "unknown_kind", "x")[0] == 500


def test_translation_error_renders_as_400():
    exc = TranslationError("messages must be an array", "messages")
    assert errors.render_translation_error("openai_chat", exc) == (
        400, {"error": {"message": "messages must be an array", "type": "invalid_request_error",
                        "param": "messages", "code": None}})
    assert errors.render_translation_error("anthropic", exc)[1]["error"]["type"] == "invalid_request_error"
    assert isinstance(exc, ValueError) and "param='messages'" in repr(exc)


def test_stream_error_events():
    assert errors.stream_error_event("openai_chat", "rate_limit_error", "slow down").startswith(b"data: {\"error\"")
    assert errors.stream_error_event("anthropic", "api_error", "x").startswith(b"event: error\ndata: ")
    r = errors.stream_error_event("responses", "api_error", "x", 7)
    assert r.startswith(b"event: error\n") and b'"sequence_number":7' in r


@pytest.mark.parametrize("canonical", ["end_turn", "max_tokens", "tool_use", "stop_sequence", "content_filter", "error"])
def test_stop_reason_tables_are_total(canonical):
    assert stop_reasons.to_openai(canonical) in ("stop", "length", "tool_calls", "content_filter")
    assert stop_reasons.to_anthropic(canonical) in ("end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal")
    assert stop_reasons.to_gemini(canonical) in stop_reasons.FROM_GEMINI
    assert stop_reasons.to_responses(canonical)[0] in ("completed", "incomplete", "failed")


@pytest.mark.parametrize("canonical", ["end_turn", "max_tokens", "tool_use", "stop_sequence", "content_filter"])
def test_stop_reasons_survive_anthropic_round_trip(canonical):
    assert stop_reasons.from_anthropic(stop_reasons.to_anthropic(canonical)) == canonical


def test_stop_reason_mappings():
    assert stop_reasons.from_openai("tool_calls") == "tool_use"
    assert stop_reasons.from_openai("length") == "max_tokens"
    assert stop_reasons.from_openai(None) is None
    assert stop_reasons.from_gemini("STOP", has_function_call=True) == "tool_use"
    assert stop_reasons.from_gemini("SAFETY") == "content_filter"
    assert stop_reasons.from_gemini("MAX_TOKENS") == "max_tokens"
    assert stop_reasons.from_anthropic("refusal") == "content_filter"
    assert stop_reasons.to_openai("stop_sequence") == "stop"
    assert stop_reasons.to_responses("max_tokens") == ("incomplete", "max_output_tokens")
