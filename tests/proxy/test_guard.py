"""Sanitization end to end, through the official SDKs, in every client format.

One Tollway; per-key overrides pick the behaviour: the master key redacts credentials and PII
and redacts leaks in answers; `gate` refuses; `log`/`block` choose the output check; `bodies`
keeps bodies in the ledger with sanitization off for its calls.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.fakes.scenario import LEAKED_KEY
from google.genai import types as gtypes

from tests.harness import MASTER_KEY, Tollway, anthropic_client, gemini_client, openai_client, standard_config

AWS = "AKIA" + "ZT3XGQWM7N4RB2VC"  # FAKE, in AWS's format
EMAIL = "jane.doe@example.com"
PROMPT = f"Why does {AWS} fail? Mail {EMAIL} if you know."
KEYS = {"gate": {"compliance_gate": True}, "log": {"output": "log"}, "block": {"output": "block"}}
BODIES_KEY = "tw-bodies-key"


@pytest.fixture(scope="module")
def guarded(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url)
    cfg["sanitization"] = {"enabled": True, "redact_pii": True, "output": "redact"}
    cfg["keys"] = [{"id": name, "key": f"tw-{name}-key", "sanitization": over} for name, over in KEYS.items()]
    cfg["keys"].append({"id": "bodies", "key": BODIES_KEY, "log_bodies": True, "sanitization": {"enabled": False}})
    tw = Tollway(tmp_path_factory.mktemp("guard"), cfg)
    yield tw
    tw.stop()


def upstream_after(fake: FakeProvider, n: int):
    reqs = fake.wait_for_requests(n + 1)
    return reqs[n]


def assert_redacted_upstream(text: str) -> None:
    assert "[REDACTED:AWS_ACCESS_KEY]" in text and "[REDACTED:EMAIL_ADDRESS]" in text
    assert AWS not in text and EMAIL not in text


def assert_nothing_leaked(tw: Tollway, trace: str, *values: str) -> dict:
    rec = tw.record(trace)
    dumped = json.dumps(rec)
    log = tw.log()
    for v in values:
        assert v not in dumped and v not in log
    assert trace in log or rec["guard_findings"] is not None
    return rec


def test_openai_chat_prompt_is_redacted_upstream(guarded: Tollway, fake: FakeProvider) -> None:
    n = len(fake.requests)
    raw = openai_client(guarded).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "system", "content": f"ops contact {EMAIL}"},
                                       {"role": "user", "content": [{"type": "text", "text": PROMPT}]}])
    assert raw.parse().choices[0].message.content
    assert_redacted_upstream(upstream_after(fake, n).text)
    rec = assert_nothing_leaked(guarded, raw.headers["x-tollway-trace-id"], AWS, EMAIL)
    assert rec["guard_findings"] == {"request": {"AWS_ACCESS_KEY": 1, "EMAIL_ADDRESS": 2},
                                     "request_action": "redacted"}
    assert "AWS_ACCESS_KEY ×1" in guarded.log()


def test_responses_input_items_are_redacted_upstream(guarded: Tollway, fake: FakeProvider) -> None:
    n = len(fake.requests)
    raw = openai_client(guarded).responses.with_raw_response.create(
        model="gpt-4o-mini", instructions=f"escalate to {EMAIL}",
        input=[{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}])
    assert raw.parse().output_text
    assert_redacted_upstream(upstream_after(fake, n).text)
    rec = assert_nothing_leaked(guarded, raw.headers["x-tollway-trace-id"], AWS, EMAIL)
    assert rec["guard_findings"]["request"] == {"AWS_ACCESS_KEY": 1, "EMAIL_ADDRESS": 2}


def test_anthropic_system_blocks_and_tool_results_are_redacted_upstream(guarded: Tollway, fake: FakeProvider) -> None:
    n = len(fake.requests)
    raw = anthropic_client(guarded).messages.with_raw_response.create(
        model="claude-3-5-haiku-latest", max_tokens=50, system=[{"type": "text", "text": f"contact {EMAIL}"}],
        messages=[{"role": "user", "content": "look it up"},
                  {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "env",
                                                     "input": {"name": "AWS_ACCESS_KEY_ID"}}]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                "content": [{"type": "text", "text": PROMPT}]}]}])
    assert raw.parse().content
    assert_redacted_upstream(upstream_after(fake, n).text)
    rec = assert_nothing_leaked(guarded, raw.headers["x-tollway-trace-id"], AWS, EMAIL)
    assert rec["guard_findings"]["request"] == {"AWS_ACCESS_KEY": 1, "EMAIL_ADDRESS": 2}


def test_the_gate_refuses_in_each_format_and_nothing_reaches_the_provider(guarded: Tollway,
                                                                          fake: FakeProvider) -> None:
    n = len(fake.requests)
    oai = openai_client(guarded, "tw-gate-key")
    with pytest.raises(openai.PermissionDeniedError) as ei:
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
    assert "AWS_ACCESS_KEY" in str(ei.value) and "EMAIL_ADDRESS" in str(ei.value) and AWS not in str(ei.value)
    with pytest.raises(openai.PermissionDeniedError):
        oai.responses.create(model="gpt-4o-mini", input=PROMPT)
    with pytest.raises(anthropic.PermissionDeniedError) as ai:
        anthropic_client(guarded, "tw-gate-key").messages.create(
            model="claude-3-5-haiku-latest", max_tokens=10, messages=[{"role": "user", "content": PROMPT}])
    assert ai.value.body["error"]["type"] == "permission_error" and "AWS_ACCESS_KEY" in ai.value.message
    assert len(fake.requests) == n
    trace = ai.value.response.headers["x-tollway-trace-id"]
    rec = assert_nothing_leaked(guarded, trace, AWS, EMAIL)
    assert (rec["status"], rec["error_type"]) == (403, "compliance_gate")
    assert rec["guard_findings"]["request_action"] == "refused"


def _chat_stream(tw: Tollway, key: str) -> tuple[str, str]:
    text = ""
    with openai_client(tw, key).chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "[[leak]]"}]) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
    return trace, text


def _anthropic_stream(tw: Tollway, key: str) -> tuple[str, str]:
    text = ""
    with anthropic_client(tw, key).messages.with_streaming_response.create(
            model="claude-3-5-haiku-latest", max_tokens=50, stream=True,
            messages=[{"role": "user", "content": "[[leak]]"}]) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        for ev in raw.parse():
            if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                text += ev.delta.text
    return trace, text


def _responses_stream(tw: Tollway, key: str) -> tuple[str, str]:
    text = ""
    with openai_client(tw, key).responses.with_streaming_response.create(
            model="gpt-4o-mini", stream=True, input="[[leak]]") as raw:
        trace = raw.headers["x-tollway-trace-id"]
        for ev in raw.parse():
            if ev.type == "response.output_text.delta":
                text += ev.delta
            elif ev.type in ("error", "response.failed"):
                raise openai.APIError("stream failed", request=None, body=None)  # type: ignore[arg-type]
    return trace, text


STREAMS = {"chat": _chat_stream, "anthropic": _anthropic_stream, "responses": _responses_stream}


@pytest.mark.parametrize("fmt", sorted(STREAMS))
def test_a_secret_split_across_chunks_is_redacted(guarded: Tollway, fmt: str) -> None:
    trace, text = STREAMS[fmt](guarded, MASTER_KEY)
    assert text == "Your key is [REDACTED:AWS_ACCESS_KEY] keep it safe."
    rec = assert_nothing_leaked(guarded, trace, LEAKED_KEY)
    assert rec["guard_findings"] == {"response": {"AWS_ACCESS_KEY": 1}, "response_action": "redacted"}
    assert rec["status"] == 200 and rec["error_type"] is None


@pytest.mark.parametrize("fmt", sorted(STREAMS))
def test_output_log_passes_the_answer_and_records_the_finding(guarded: Tollway, fmt: str) -> None:
    trace, text = STREAMS[fmt](guarded, "tw-log-key")
    assert LEAKED_KEY in text
    rec = guarded.record(trace)
    assert rec["guard_findings"] == {"response": {"AWS_ACCESS_KEY": 1}, "response_action": "logged"}


@pytest.mark.parametrize("fmt", sorted(STREAMS))
def test_output_block_ends_the_stream_with_an_error_in_the_clients_format(guarded: Tollway, fmt: str) -> None:
    exc = anthropic.APIError if fmt == "anthropic" else openai.APIError
    with pytest.raises(exc):
        STREAMS[fmt](guarded, "tw-block-key")
    recs = guarded.records(key_id="block", limit=1)
    assert recs[0]["error_type"] == "output_blocked"
    assert recs[0]["guard_findings"] == {"response": {"AWS_ACCESS_KEY": 1}, "response_action": "blocked"}


def test_output_block_on_a_whole_answer_is_a_403(guarded: Tollway) -> None:
    with pytest.raises(openai.PermissionDeniedError) as ei:
        openai_client(guarded, "tw-block-key").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[leak]]"}])
    assert "AWS_ACCESS_KEY" in str(ei.value) and LEAKED_KEY not in str(ei.value)


def test_bodies_are_stored_redacted_even_when_the_call_was_not_sanitized(guarded: Tollway,
                                                                         fake: FakeProvider) -> None:
    n = len(fake.requests)
    raw = openai_client(guarded, BODIES_KEY).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT + " [[leak]]"}])
    assert LEAKED_KEY in raw.parse().choices[0].message.content  # sanitization is off for this key
    assert AWS in upstream_after(fake, n).text
    rec = guarded.record(raw.headers["x-tollway-trace-id"])
    bodies = rec["bodies"]
    assert "[REDACTED:AWS_ACCESS_KEY]" in bodies["request"] and AWS not in bodies["request"]
    assert "[REDACTED:AWS_ACCESS_KEY]" in bodies["response"] and LEAKED_KEY not in bodies["response"]
    assert EMAIL not in bodies["request"]  # redact_pii is still true for this key (it only turned scanning off)
    assert bodies["request_truncated"] is False
    other = guarded.record(guarded.records(key_id="log", limit=1)[0]["trace_id"])
    assert "bodies" not in other  # metadata only by default


def test_passthrough_json_bodies_are_scanned(guarded: Tollway, fake: FakeProvider) -> None:
    n = len(fake.requests)
    req = urllib.request.Request(guarded.url + "/v1/moderations", method="POST",
                                 data=json.dumps({"model": "omni-moderation-latest", "input": PROMPT}).encode(),
                                 headers={"Authorization": f"Bearer {MASTER_KEY}",
                                          "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            trace = r.headers["x-tollway-trace-id"]
    except urllib.error.HTTPError as e:  # the fake has no moderations endpoint: what it received counts
        trace = e.headers["x-tollway-trace-id"]
    assert_redacted_upstream(upstream_after(fake, n).text)
    assert guarded.record(trace)["guard_findings"]["request"] == {"AWS_ACCESS_KEY": 1, "EMAIL_ADDRESS": 1}


def test_gemini_native_contents_are_redacted_and_leaks_in_streams_caught(guarded: Tollway,
                                                                          fake: FakeProvider) -> None:
    client = gemini_client(guarded, api_version="v1beta")
    n = len(fake.requests)
    resp = client.models.generate_content(
        model="gpt-4o-mini", contents=PROMPT,
        config=gtypes.GenerateContentConfig(system_instruction=f"contact {EMAIL}"))
    assert resp.text
    assert_redacted_upstream(upstream_after(fake, n).text)
    text = "".join(c.text or "" for c in client.models.generate_content_stream(model="gpt-4o-mini",
                                                                               contents="[[leak]]"))
    assert text == "Your key is [REDACTED:AWS_ACCESS_KEY] keep it safe."
    rec = guarded.records(limit=1)[0]
    assert rec["guard_findings"] == {"response": {"AWS_ACCESS_KEY": 1}, "response_action": "redacted"}
