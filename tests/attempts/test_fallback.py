"""The attempt loop seen from clients: a deployment that fails (an error status, a hang past a
deadline, a reset before the first token) is replaced by the plan's next one without the client
noticing; a failure after the first token ends the stream so the SDK raises; when every option
failed, one error in the client's own format names each attempt.

The plan of `gpt-4o-mini` here is openai:gpt-4o-mini, anthropic:claude-haiku-4-5, openai:gpt-4o
(`[routing] fallback_order`); a directive scoped to a model (`[[fault:500@gpt-4o-mini]]`,
`[[hang@gpt-4o-mini]]`) breaks that deployment only.
"""

from __future__ import annotations

import anthropic
import json
import urllib.request
import openai
import pytest
from google.genai import errors as genai_errors

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, gemini_client

REPLY = "Hello from the fake provider!"


def _oai(tw: Tollway) -> openai.OpenAI:
    return openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)


def _claude(tw: Tollway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=tw.url, api_key=MASTER_KEY, max_retries=0, timeout=20)


def _chat(tw: Tollway, text: str, model: str = "gpt-4o-mini"):
    return _oai(tw).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}])


@pytest.mark.parametrize("fault", ["500", "429", "529", "503"])
def test_error_status_falls_back_across_formats(tw: Tollway, fault: str) -> None:
    raw = _chat(tw, f"Hi [[fault:{fault}@gpt-4o-mini]]")
    assert raw.headers["x-tollway-route"] == "anthropic:claude-haiku-4-5"
    assert raw.headers["x-tollway-attempts"] == "2"
    out = raw.parse()
    assert out.choices[0].message.content == REPLY and out.object == "chat.completion"
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["status"] == 200 and rec["provider"] == "anthropic"


def test_success_first_time_says_so(tw: Tollway) -> None:
    raw = _chat(tw, "Hi")
    assert raw.headers["x-tollway-route"] == "openai:gpt-4o-mini"
    assert raw.headers["x-tollway-attempts"] == "1"
    assert raw.parse().choices[0].message.content == REPLY


def test_client_error_is_not_retried(tw: Tollway, fake: FakeProvider) -> None:
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as ei:
        _chat(tw, "Hi [[fault:400@gpt-4o-mini]]")
    assert ei.value.response.headers["x-tollway-attempts"] == "1"
    assert ei.value.response.headers["x-tollway-route"] == "openai:gpt-4o-mini"
    assert len(fake.requests) == before + 1


def test_hang_past_first_token_deadline_falls_back(tw: Tollway) -> None:
    raw = _chat(tw, "Hi [[hang@gpt-4o-mini]]")
    assert raw.headers["x-tollway-route"] == "anthropic:claude-haiku-4-5"
    assert raw.parse().choices[0].message.content == REPLY


def test_every_option_failed_is_one_error_naming_each_attempt(tw: Tollway) -> None:
    with pytest.raises(openai.APIStatusError) as ei:
        _chat(tw, "Hi [[fault:500]]")
    err = ei.value
    assert err.status_code == 502
    assert err.response.headers["x-tollway-attempts"] == "3"
    msg = err.body["message"]
    for dep in ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4o"):
        assert dep in msg
    assert "500" in msg

    with pytest.raises(openai.RateLimitError) as ri:  # all rate limited: a 429, and when to come back
        _chat(tw, "Hi [[fault:429]]")
    assert ri.value.response.headers["x-tollway-attempts"] == "3"
    assert ri.value.response.headers["retry-after"] == "1"

    with pytest.raises(anthropic.APIStatusError) as ai:  # in the client's own format
        _claude(tw).messages.create(model="claude-haiku-4-5", max_tokens=20,
                                    messages=[{"role": "user", "content": "Hi [[fault:503]]"}])
    assert ai.value.status_code == 503
    assert ai.value.body["type"] == "error" and "claude-haiku-4-5" in ai.value.body["error"]["message"]
    rec = tw.record(ai.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == 503


def test_stream_stalled_after_preamble_falls_back_invisibly(tw: Tollway) -> None:
    # gpt-4o-mini sends its role-only chunk, then stalls past the 1 s first-token deadline
    stream = _oai(tw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "Hi [[chunk_delay:3@gpt-4o-mini]]"}])
    assert stream.headers["x-tollway-route"] == "anthropic:claude-haiku-4-5"
    chunks = list(stream.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    assert roles == ["assistant"]  # one preamble: the fallback's


def test_stream_reset_before_first_token_falls_back(tw: Tollway) -> None:
    stream = _oai(tw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "Hi [[reset_after:1@gpt-4o-mini]]"}])
    assert stream.headers["x-tollway-attempts"] == "2"
    text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    assert text == REPLY


def test_stream_reset_after_first_token_makes_the_sdk_raise(tw: Tollway) -> None:
    req = urllib.request.Request(tw.url + "/v1/chat/completions", method="POST", data=json.dumps(
        {"model": "gpt-4o-mini", "stream": True,
         "messages": [{"role": "user", "content": "Hi [[reset_after:3@gpt-4o-mini]]"}]}).encode(),
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        assert r.headers["x-tollway-route"] == "openai:gpt-4o-mini"
        body = r.read()
    assert b'"content":"Hello' in body and b"[DONE]" not in body and b'"error"' in body
    with pytest.raises(openai.APIError):
        for _ in _oai(tw).chat.completions.create(
                model="gpt-4o-mini", stream=True,
                messages=[{"role": "user", "content": "Hi [[reset_after:3@gpt-4o-mini]]"}]):
            pass


def test_anthropic_stream_overloaded_falls_back_to_openai(tw: Tollway) -> None:
    with _claude(tw).messages.stream(model="claude-haiku-4-5", max_tokens=50,
                                     messages=[{"role": "user", "content": "Hi [[fault:529@claude-haiku-4-5]]"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == REPLY and final.stop_reason == "end_turn"


def test_anthropic_stream_cut_after_first_token_raises(tw: Tollway) -> None:
    with pytest.raises(anthropic.APIError):
        with _claude(tw).messages.stream(
                model="claude-haiku-4-5", max_tokens=50,
                messages=[{"role": "user", "content": "Hi [[reset_after:5@claude-haiku-4-5]]"}]) as s:
            "".join(s.text_stream)
            s.get_final_message()


def test_responses_stream_falls_back_before_first_token(tw: Tollway) -> None:
    events = list(_oai(tw).responses.create(model="gpt-4o-mini", input="Hi [[reset_after:2@gpt-4o-mini]]",
                                            stream=True))
    kinds = [e.type for e in events]
    assert kinds.count("response.created") == 1 and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == REPLY


def test_gemini_client_falls_back(tw: Tollway) -> None:
    client = gemini_client(tw)
    out = client.models.generate_content(model="gemini-2.0-flash", contents="Hi [[fault:503@gemini-2.0-flash]]")
    assert out.text == REPLY
    with pytest.raises(genai_errors.APIError) as ei:
        client.models.generate_content(model="gemini-2.0-flash", contents="Hi [[fault:500]]")
    assert ei.value.code == 502 and "gemini:gemini-2.0-flash" in (ei.value.message or "")


def test_records_and_the_errors_list_tell_the_truth(tw: Tollway) -> None:
    raw = _chat(tw, "Hi [[fault:500@gpt-4o-mini]] (records)")
    saved = raw.headers["x-tollway-trace-id"]
    rec = tw.record(saved)
    assert rec["deployment"] == "anthropic:claude-haiku-4-5" and rec["attempts"] == 2
    assert rec["failure"] == "mitigated" and rec["status"] == 200
    assert len(rec["attempt_errors"]) == 1 and rec["attempt_errors"][0].startswith("openai:gpt-4o-mini: 500")
    with pytest.raises(openai.APIStatusError) as ei:
        _chat(tw, "Hi [[fault:500]] (records)")
    lost = ei.value.response.headers["x-tollway-trace-id"]
    rec = tw.record(lost)
    assert rec["failure"] == "customer" and rec["attempts"] == 3 and len(rec["attempt_errors"]) == 3
    clean = _chat(tw, "Hi (records)").headers["x-tollway-trace-id"]
    assert tw.record(clean)["failure"] is None and tw.record(clean)["attempts"] == 1

    status, body = tw.get("/v1/errors?limit=1000")
    assert status == 200
    ids = [e["trace_id"] for e in body["data"]]
    assert saved in ids and lost in ids and clean not in ids
    assert ids.index(lost) < ids.index(saved)  # newest first
    status, body = tw.get("/v1/errors?kind=mitigated&deployment=anthropic:claude-haiku-4-5&limit=1000")
    assert status == 200 and {e["kind"] for e in body["data"]} == {"mitigated"}
    assert saved in [e["trace_id"] for e in body["data"]]
    status, body = tw.get("/v1/errors?kind=customer&model=gpt-4o-mini&limit=1000")
    entry = next(e for e in body["data"] if e["trace_id"] == lost)
    assert entry["status"] == 502 and entry["attempts"] == 3
    status, body = tw.get("/v1/errors?kind=sometimes")
    assert status == 400 and body["error"]["param"] == "kind"


def test_stream_cut_after_first_token_is_recorded_customer_impacting(tw: Tollway) -> None:
    stream = _oai(tw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "Hi [[reset_after:3@gpt-4o-mini]] r"}])
    with pytest.raises(openai.APIError):
        for _ in stream.parse():
            pass
    rec = tw.record(stream.headers["x-tollway-trace-id"])
    assert rec["failure"] == "customer" and rec["attempts"] == 1 and rec["error_type"]


def _raw_stream(tw: Tollway, body: dict, headers: dict[str, str] | None = None) -> tuple[dict, bytes]:
    req = urllib.request.Request(tw.url + "/v1/chat/completions", method="POST", data=json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json",
                                          **(headers or {})})
    with urllib.request.urlopen(req, timeout=20) as r:
        return dict(r.headers), r.read()


def test_trace_event_starts_the_stream_when_asked(tw: Tollway) -> None:
    body = {"model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "Hi [[fault:500@gpt-4o-mini]]"}]}
    headers, data = _raw_stream(tw, body, {"x-tollway-trace": "true"})
    first = data.split(b"\n\n")[0]
    assert first.startswith(b"data: ")
    trace = json.loads(first[6:])
    assert trace["type"] == "trace" and trace["provider"] == "anthropic" and trace["model"] == "claude-haiku-4-5"
    assert trace["attempts"] == 2 and {"policy", "scores", "cost_estimate"} <= set(trace)
    assert data.count(b'"type":"trace"') == 1 and data.rstrip().endswith(b"data: [DONE]")
    _, plain = _raw_stream(tw, body)
    assert b'"type":"trace"' not in plain  # off by default


def test_retries_back_off_and_a_long_retry_after_moves_on(fake: FakeProvider, tmp_path) -> None:
    from tests.attempts.conftest import routing_config

    cfg = routing_config(fake.url, retry={"retries": 1, "backoff_base_ms": 10, "max_retry_after_secs": 0.5},
                         timeouts={"total_secs": 1.5})
    t = Tollway(tmp_path, cfg)
    try:
        fake.fail_next(500, count=1, scope="gpt-4o-mini")  # once: the retry of the same deployment serves
        raw = _chat(t, "Hi")
        assert raw.headers["x-tollway-route"] == "openai:gpt-4o-mini" and raw.headers["x-tollway-attempts"] == "2"
        assert raw.parse().choices[0].message.content == REPLY
        rec = t.record(raw.headers["x-tollway-trace-id"])
        assert rec["failure"] == "mitigated" and rec["attempts"] == 2
        # a 429 asking for 1 s, more than max_retry_after_secs: the next deployment, no wait
        fake.fail_next(429, count=1, scope="gpt-4o-mini")
        raw = _chat(t, "Hi")
        assert raw.headers["x-tollway-route"] == "anthropic:claude-haiku-4-5" and raw.headers["x-tollway-attempts"] == "2"
        # every deployment fails: each is tried twice (retries = 1), six calls in all
        with pytest.raises(openai.APIStatusError) as ei:
            _chat(t, "Hi [[fault:503]]")
        assert ei.value.response.headers["x-tollway-attempts"] == "6"
        # past the total deadline after its first token: the stream ends with an error, the SDK raises
        with pytest.raises(openai.APIError) as si:
            for _ in _oai(t).chat.completions.create(
                    model="gpt-4o-mini", stream=True,
                    messages=[{"role": "user", "content": "Hi [[chunk_delay:0.6@gpt-4o-mini]]"}]):
                pass
        assert "total timeout" in str(si.value)
    finally:
        fake.clear()
        t.stop()


def test_anthropic_error_event_before_the_first_token_falls_back(tw: Tollway) -> None:
    # message_start, content_block_start, ping, then an overloaded_error event: no token yet
    raw = _claude(tw).messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50, stream=True,
        messages=[{"role": "user", "content": "Hi [[stream_error@claude-haiku-4-5]]"}])
    assert "".join(e.delta.text for e in raw.parse() if e.type == "content_block_delta") == REPLY
    assert raw.headers["x-tollway-route"] == "openai:gpt-4o" and raw.headers["x-tollway-attempts"] == "2"
    with _claude(tw).messages.stream(model="claude-haiku-4-5", max_tokens=50,
                                     messages=[{"role": "user", "content": "Hi [[stream_error@claude-haiku-4-5]]"}]) as s:
        assert "".join(s.text_stream) == REPLY
