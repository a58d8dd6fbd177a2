"""x-tollway-overhead-ms: on every proxied response (whole, streamed, translated, passed
through, Tollway's own errors, relayed provider errors), and it leaves out the time spent
waiting on the provider."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from tests.harness import MASTER_KEY, Tollway, anthropic_client, openai_client


def overhead(headers) -> float:
    v = float(headers["x-tollway-overhead-ms"])
    assert v >= 0
    return v


def test_every_kind_of_response_carries_the_overhead(tollway: Tollway) -> None:
    oai, claude = openai_client(tollway), anthropic_client(tollway)
    msgs = [{"role": "user", "content": "hi"}]
    overhead(oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs).headers)
    with oai.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=msgs, stream=True) as r:
        overhead(r.headers)
    overhead(oai.chat.completions.with_raw_response.create(model="claude-3-5-haiku-latest", messages=msgs).headers)
    with claude.messages.with_streaming_response.create(model="gpt-4o-mini", max_tokens=20, messages=msgs,
                                                        stream=True) as r:
        overhead(r.headers)  # translated stream
    overhead(oai.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x").headers)
    for key, method, path, body, status in (
        (None, "POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": msgs}, 401),  # ours
        (MASTER_KEY, "POST", "/v1/chat/completions", {"model": "nope", "messages": msgs}, 404),  # ours
        (MASTER_KEY, "POST", "/v1/chat/completions",
         {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "[[fault:503]]"}]}, 503),  # relayed
        (MASTER_KEY, "GET", "/v1/files", None, 200),  # passed through
    ):
        headers = {"content-type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        req = urllib.request.Request(tollway.url + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body else None)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                got, hdrs = r.status, r.headers
        except urllib.error.HTTPError as e:
            got, hdrs = e.code, e.headers
        assert got == status and "x-tollway-trace-id" in hdrs, (path, got)
        overhead(hdrs)


def test_time_waiting_on_the_provider_is_not_overhead(tollway: Tollway) -> None:
    oai = openai_client(tollway)
    t = time.perf_counter()
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi [[delay:1]]"}])
    total_ms = (time.perf_counter() - t) * 1000
    assert total_ms >= 1000
    assert overhead(raw.headers) < 500  # the provider's second is upstream time, not Tollway's
    t = time.perf_counter()
    with oai.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi [[delay:1]]"}]) as r:
        assert (time.perf_counter() - t) * 1000 >= 1000
        assert overhead(r.headers) < 500
