"""The exact cache through the official SDKs, in every client format: hits and misses, plain and
streamed, the fast path and the translated one, and what the ledger, stats and metrics say."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.cache.clients import FORMATS, BrokenStream, ask
from tests.cache.conftest import unique, upstream_count
from tests.fakes.provider import FakeProvider
from tests.harness import Tollway

REPLY = "Hello from the fake provider!"


@pytest.mark.parametrize("first_stream", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
def test_miss_then_hit_plain_and_streamed(cached: Tollway, fake: FakeProvider, fmt: str, first_stream: bool) -> None:
    prompt = unique()
    miss = ask(cached, fmt, prompt, stream=first_stream)
    assert miss.cache == "miss" and miss.text == REPLY
    assert "age" not in miss.headers
    hits = [ask(cached, fmt, prompt, stream=s) for s in (first_stream, not first_stream)]
    for hit in hits:
        assert hit.cache == "hit", hit.headers
        assert hit.text == REPLY and int(hit.headers["age"]) >= 0
        assert (hit.input_tokens, hit.output_tokens) == (miss.input_tokens, miss.output_tokens)
        assert hit.id and hit.id != miss.id  # a fresh id per answer
    assert hits[0].id != hits[1].id
    assert upstream_count(fake, prompt) == 1  # one provider call for three answers


@pytest.mark.parametrize("fmt,model", [("openai_chat", "claude-haiku-4-5"), ("anthropic", "gpt-4o-mini"),
                                       ("gemini", "gpt-4o-mini"), ("responses", "claude-haiku-4-5")])
@pytest.mark.parametrize("stream", [False, True])
def test_translated_calls_are_cached_too(cached: Tollway, fake: FakeProvider, fmt: str, model: str,
                                         stream: bool) -> None:
    prompt = unique()
    miss = ask(cached, fmt, prompt, model=model, stream=stream)
    hit = ask(cached, fmt, prompt, model=model, stream=not stream)
    assert (miss.cache, hit.cache) == ("miss", "hit")
    assert hit.text == miss.text == REPLY and hit.output_tokens == miss.output_tokens
    assert upstream_count(fake, prompt) == 1


def test_a_hit_is_recorded_at_cost_zero_with_the_cost_saved(cached: Tollway) -> None:
    project = "cache-ledger-" + unique("p").split("(")[1][:10]
    prompt = unique()
    miss = ask(cached, "openai_chat", prompt, headers={"x-tollway-project": project})
    hit = ask(cached, "openai_chat", prompt, stream=True, headers={"x-tollway-project": project})
    m, h = cached.record(miss.trace), cached.record(hit.trace)
    assert m["cache"] == "miss" and m["cost_saved_usd"] is None and float(m["cost_usd"]) > 0
    assert h["cache"] == "hit" and h["cost_usd"] == "0.000000000" and h["cost_saved_usd"] == m["cost_usd"]
    assert h["status"] == 200 and h["stream"] is True and h["output_tokens"] == m["output_tokens"]
    assert Decimal(miss.headers["x-tollway-cost-usd"]) == Decimal(m["cost_usd"])
    assert Decimal(hit.headers["x-tollway-cost-saved-usd"]) == Decimal(m["cost_usd"])
    status, stats = cached.get(f"/v1/stats?project={project}")
    assert status == 200
    totals = stats["totals"]
    assert totals["requests"] == 2 and totals["cache_hits"] == 1
    assert totals["cost_saved_usd"] == m["cost_usd"] and totals["cost_usd"] == m["cost_usd"]


def test_hits_and_misses_count_in_metrics(cached: Tollway) -> None:
    from tests.telemetry.promtext import scrape, value

    before = scrape(cached)[1]
    prompt = unique()
    ask(cached, "anthropic", prompt)
    ask(cached, "anthropic", prompt)
    after = scrape(cached)[1]
    for result in ("hit", "miss"):
        assert value(after, "tollway_cache_lookups_total", cache="exact", result=result) == \
            value(before, "tollway_cache_lookups_total", cache="exact", result=result) + 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_errors_are_never_cached(cached: Tollway, fake: FakeProvider, fmt: str) -> None:
    import anthropic
    import openai
    from google.genai import errors as gerrors

    prompt = unique("[[fault:500]]")
    for _ in range(2):
        with pytest.raises((openai.APIStatusError, anthropic.APIStatusError, gerrors.APIError)):
            ask(cached, fmt, prompt)
    assert upstream_count(fake, prompt) == 2


@pytest.mark.parametrize("directive", ["[[reset_after:3]]", "[[stream_error]]"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_cut_or_failed_stream_is_never_cached(cached: Tollway, fake: FakeProvider, fmt: str, directive: str) -> None:
    import anthropic
    import openai
    from google.genai import errors as gerrors

    prompt = unique(directive)
    for _ in range(2):  # each SDK raises its own error for a broken stream
        with pytest.raises((openai.APIError, anthropic.APIError, gerrors.APIError, BrokenStream)):
            ask(cached, fmt, prompt, stream=True)
    assert upstream_count(fake, prompt) == 2


def test_a_client_that_hangs_up_mid_stream_leaves_nothing_cached(cached: Tollway, fake: FakeProvider) -> None:
    import http.client
    import json
    import socket

    from tests.harness import MASTER_KEY

    prompt = unique("slowly [[chunk_delay:0.2]]")
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    conn = http.client.HTTPConnection("127.0.0.1", cached.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body),
                 headers={"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.headers["x-tollway-cache"] == "miss"
    resp.fp.readline()
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    cached.record(resp.headers["x-tollway-trace-id"])  # the call is over
    again = ask(cached, "openai_chat", prompt)
    assert again.cache == "miss" and upstream_count(fake, prompt) == 2


def test_gemini_json_array_streams_are_replayed_as_json_arrays(cached: Tollway, fake: FakeProvider) -> None:
    import json
    import urllib.request

    from tests.harness import MASTER_KEY

    prompt = unique()
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}).encode()
    seen = []
    for _ in range(2):
        req = urllib.request.Request(f"{cached.url}/v1beta/models/gemini-2.0-flash:streamGenerateContent", body,
                                     {"x-goog-api-key": MASTER_KEY, "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers["content-type"].startswith("application/json")
            chunks = json.loads(r.read())
            seen.append(r.headers["x-tollway-cache"])
        text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"].get("parts", []))
        assert text == REPLY and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert seen == ["miss", "hit"] and upstream_count(fake, prompt) == 1


def test_an_anthropic_beta_header_keeps_its_own_entries(cached: Tollway) -> None:
    """anthropic-beta switches features on (longer outputs, other tool behaviour): an answer
    made with one set of betas is not replayed to a request with another, or with none."""
    prompt = unique("beta question")
    seen = [ask(cached, "anthropic", prompt, headers=h).cache for h in
            (None, {"anthropic-beta": "output-128k-2025-02-19"}, {"anthropic-beta": "output-128k-2025-02-19"}, None)]
    assert seen == ["miss", "miss", "hit", "hit"]
