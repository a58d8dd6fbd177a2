"""The conformance matrix: client format × provider kind × stream/non-stream × case.

Every cell drives Tollway with an official SDK and asserts what its user sees (text, tool names
and parsed arguments, stop reason, usage in the client's own shape), what the provider received
(translated system prompt, history, images, tools, limits), and the usage record (tokens and
cost = tokens × the model's price).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from google.genai import errors as gerrors

from tests.conformance.clients import BUILD, CALL, Answer
from tests.conformance.conftest import Conformance
from tests.conformance.spec import (
    CASES, MAX_TOKENS, PROVIDERS, STOP_REASONS, SYSTEM_PROMPT, Assistant, Case, Cell, ProviderSpec, User,
    cells, known_bug,
)
from tests.conformance.upstream import ReportedUsage, Upstream

# the fake's name for where a request landed, per provider kind
FAMILY = {"openai": "openai", "anthropic": "anthropic", "azure_openai": "azure", "gemini": "gemini",
          "openai_compatible": "local"}
ERRORS = {
    500: {"openai": openai.InternalServerError, "anthropic": anthropic.InternalServerError, "gemini": gerrors.ServerError,
          "type": "api_error", "status": "INTERNAL"},
    429: {"openai": openai.RateLimitError, "anthropic": anthropic.RateLimitError, "gemini": gerrors.ClientError,
          "type": "rate_limit_error", "status": "RESOURCE_EXHAUSTED"},
}
SDK = {"anthropic-sdk": "anthropic", "gemini-sdk": "gemini"}


def _param(cell: Cell) -> Any:
    bug = known_bug(cell.id)
    marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
    return pytest.param(cell, id=cell.id, marks=marks)


@pytest.mark.parametrize("cell", [_param(c) for c in cells()])
def test_case(cell: Cell, conformance: Conformance) -> None:
    case, prov = CASES[cell.case], PROVIDERS[cell.provider]
    nonce = f"[conformance {uuid.uuid4().hex[:12]}]"
    kw = BUILD[cell.client](case, prov.model, nonce, cell.stream)
    client = conformance.client(cell.client)
    conformance.responses.clear()
    if isinstance(case.outcome, int):
        return check_error(cell, case, prov, conformance, kw, nonce)

    answer = CALL[cell.client](client, kw, cell.stream)
    headers = conformance.responses.last
    sent = conformance.upstream(nonce)
    assert len(sent) == 1, f"expected one upstream request, got {[(u.req.method, u.req.path) for u in sent]}"
    up = sent[0]
    assert up.req.provider == FAMILY[cell.provider], f"request went to {up.req.provider} {up.req.path}"

    reported = up.reported_usage()
    check_answer(cell, case, prov, answer, up, reported)
    check_upstream(case, up, nonce)
    check_record(cell, prov, conformance, headers, answer, reported)


# ---------------------------------------------------------------- what the SDK user sees


def check_answer(cell: Cell, case: Case, prov: ProviderSpec, answer: Answer, up: Upstream,
                 reported: ReportedUsage) -> None:
    # the provider's own name for what it ran; on the fast path its answer is relayed as is, and Azure's
    # v1 Responses API is addressed (and answers) by deployment name
    assert answer.id and answer.model in (prov.model, up.body.get("model")), (answer.id, answer.model)
    if case.echo:
        # the reply is the provider's request body, as text: it must arrive whole and intact
        try:
            echoed = json.loads(answer.text)
        except ValueError:
            raise AssertionError(f"echoed request body is not intact JSON: {answer.text[:300]!r}") from None
        assert echoed == up.body
    else:
        assert answer.text == case.text

    assert [(c.name, c.arguments) for c in answer.tool_calls] == [(n, a) for n, a in case.tool_calls]
    ids = [c.id for c in answer.tool_calls]
    if not (cell.client == "gemini-sdk" and up.wire == "gemini"):  # Gemini's own calls may have no id
        assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids), f"tool call ids: {ids}"

    assert isinstance(case.outcome, str)
    assert answer.stop == STOP_REASONS[cell.client][case.outcome], f"stop reason {answer.stop!r}"

    # usage in the client's own terms: Anthropic's input_tokens leaves the cached parts out, OpenAI's include them
    r = reported
    uncached = r.prompt - r.cache_read - r.cache_write
    # Gemini's usage has no cache-write count (those tokens are in its promptTokenCount)
    cache_write = 0 if cell.client == "gemini-sdk" else r.cache_write
    expected = (uncached if cell.client == "anthropic-sdk" else r.prompt, r.output, r.cache_read, cache_write)
    seen = (answer.input_tokens, answer.output_tokens, answer.cache_read or 0, answer.cache_write or 0)
    assert seen == expected, "usage seen by the SDK (input, output, cache read, cache write)"

    if cell.stream and answer.text:
        assert (answer.text_deltas or 0) >= 2, f"text arrived in {answer.text_deltas} delta(s): not streamed"


# ---------------------------------------------------------------- what the provider received


def _filled(text: str, nonce: str) -> str:
    return text.replace("{nonce}", nonce)


def check_upstream(case: Case, up: Upstream, nonce: str) -> None:
    if case.system:
        assert up.system() == [SYSTEM_PROMPT], f"system prompt as received: {up.system()}"
    else:
        assert up.system() == [], f"unexpected system prompt: {up.system()}"

    # user and assistant text, in order, nothing merged, lost or duplicated (tool traffic checked below)
    assert up.turns() == [("user" if isinstance(t, User) else "assistant", _filled(t.text, nonce))
                          for t in case.turns if isinstance(t, (User, Assistant))]
    assert up.images() == [t.image.normalized() for t in case.turns if isinstance(t, User) and t.image]

    declared = up.tool_definitions()
    assert sorted(declared) == sorted(case.tools), f"tools declared upstream: {sorted(declared)}"
    for name, schema in declared.items():
        assert "city" in (schema.get("properties") or {}) and schema.get("required") == ["city"], (
            f"{name} schema upstream: {schema}")

    if case.name == "tool_result":
        calls, results = up.tool_calls(), up.tool_results()
        assert [(n, a) for _, n, a in calls] == [("get_weather", {"city": "Paris"})]
        assert [t for _, _, t in results] == ["Sunny, 21C"]
        (call_id, _, _), (result_id, result_name, _) = calls[0], results[0]
        if up.wire == "gemini":  # Gemini links a result to its call by function name
            assert result_name == "get_weather"
        else:
            assert call_id and call_id == result_id, f"tool result not linked to its call: {calls} {results}"
    else:
        assert up.tool_calls() == [] and up.tool_results() == []

    if case.max_tokens:
        assert up.max_tokens() == MAX_TOKENS


# ---------------------------------------------------------------- the usage record


def check_record(cell: Cell, prov: ProviderSpec, conformance: Conformance, headers: Any, answer: Answer,
                 reported: ReportedUsage) -> None:
    trace = headers.get("x-tollway-trace-id")
    assert trace, "no x-tollway-trace-id header"
    rec = conformance.tollway.record(trace)
    assert (rec["provider"], rec["model_requested"], rec["stream"], rec["status"], rec["error_type"]) == (
        cell.provider, prov.model, cell.stream, 200, None)
    r = reported  # the record counts the whole prompt, with its cached parts broken out
    assert (rec["input_tokens"], rec["output_tokens"], rec["cached_tokens"], rec["cache_creation_tokens"],
            rec["tokens_estimated"]) == (r.prompt, r.output, r.cache_read, r.cache_write, False)
    assert rec["cost_usd"] is not None, f"no cost: {rec.get('cost_note')}"
    expected = prov.expected_cost(r.prompt, r.cache_read, r.cache_write, r.output)
    assert Decimal(rec["cost_usd"]) == expected, f"cost {rec['cost_usd']} != {expected} ({prov.model})"
    if not cell.stream:
        assert Decimal(headers["x-tollway-cost-usd"]) == expected
    elif answer.text:
        assert rec["ttft_ms"] is not None


# ---------------------------------------------------------------- provider errors


def check_error(cell: Cell, case: Case, prov: ProviderSpec, conformance: Conformance, kw: dict, nonce: str) -> None:
    status = case.outcome
    assert isinstance(status, int)
    sdk = SDK.get(cell.client, "openai")
    with pytest.raises(ERRORS[status][sdk]) as ei:
        CALL[cell.client](conformance.client(cell.client), kw, cell.stream)
    err = ei.value
    assert (err.code if sdk == "gemini" else err.status_code) == status
    sent = conformance.upstream(nonce)
    assert sent, "the provider was never called"
    up = sent[-1]
    assert up.req.provider == FAMILY[cell.provider]
    provider_message = up.error_message(status)

    body = err.response.json() if sdk != "gemini" else err.details
    if sdk == "anthropic":
        assert body.get("type") == "error" and body["error"]["type"] == ERRORS[status]["type"], body
        message = body["error"]["message"]
    elif sdk == "gemini":
        assert body["error"]["code"] == status and body["error"]["status"] == ERRORS[status]["status"], body
        message = body["error"]["message"]
    else:
        assert isinstance(body.get("error"), dict), body
        message = body["error"].get("message")
        if up.req.provider in ("anthropic", "gemini"):  # rendered by Tollway, not relayed as is
            assert isinstance(body["error"].get("type"), str), body
    assert isinstance(message, str) and provider_message in message, f"{message!r} lacks {provider_message!r}"
    if status == 429:
        assert err.response.headers.get("retry-after") == "1"

    trace = err.response.headers.get("x-tollway-trace-id")
    assert trace, "no x-tollway-trace-id header on the error"
    rec = conformance.tollway.record(trace)
    assert (rec["provider"], rec["model_requested"], rec["stream"], rec["status"]) == (
        cell.provider, prov.model, cell.stream, status)
    assert rec["error_type"], rec
    assert not rec["input_tokens"] and not rec["output_tokens"] and rec["cost_usd"] is None, rec
