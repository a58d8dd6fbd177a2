"""A provider that sends broken JSON: the client gets a clean answer or a clean error in its own
format, never a hang or a 500 with a traceback, and the call is still recorded."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.harness import Tollway

BROKEN = [{"role": "user", "content": "Hello [[malformed]]"}]


def test_fast_path_relays_a_broken_body_as_it_is_and_records_why(oai: openai.OpenAI, tollway: Tollway) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=BROKEN)
    assert raw.status_code == 200  # relayed unchanged: what a direct call would have given
    body = raw.http_response.read()
    with pytest.raises(ValueError):
        __import__("json").loads(body)
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["error_type"] == "invalid_provider_body" and rec["cost_usd"] is None


def test_translated_broken_body_is_a_502_in_the_clients_format(oai: openai.OpenAI, tollway: Tollway) -> None:
    with pytest.raises(openai.APIStatusError) as ei:
        oai.chat.completions.create(model="claude-haiku-4-5", messages=BROKEN)
    assert ei.value.status_code == 502 and ei.value.body["type"] == "server_error"
    assert "could not be read" in ei.value.body["message"] and "Traceback" not in ei.value.body["message"]
    rec = tollway.record(ei.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == 502 and rec["error_type"] == "invalid_provider_body"


def test_translated_broken_stream_event_ends_in_an_sdk_error(oai: openai.OpenAI, claude: anthropic.Anthropic,
                                                             tollway: Tollway) -> None:
    with oai.chat.completions.with_streaming_response.create(model="claude-haiku-4-5", messages=BROKEN,
                                                              stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        with pytest.raises(openai.APIError):
            for _ in raw.parse():
                pass
    rec = tollway.record(trace)
    assert rec["error_type"] is not None and rec["status"] == 200

    with pytest.raises(anthropic.APIError):
        with claude.messages.stream(model="gpt-4o-mini", max_tokens=20, messages=BROKEN) as s:
            s.get_final_message()


def test_fast_path_broken_stream_event_is_relayed_and_the_stream_still_ends(oai: openai.OpenAI,
                                                                           tollway: Tollway) -> None:
    with oai.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=BROKEN,
                                                              stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        lines = [ln for ln in raw.http_response.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"  # the stream ran to its end through Tollway
    rec = tollway.record(trace)
    assert rec["status"] == 200 and rec["stream"] is True and rec["output_tokens"] == 7
