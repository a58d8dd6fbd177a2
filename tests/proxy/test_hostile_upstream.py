"""A hostile upstream cannot make Tollway hold unbounded memory or stall other traffic.

Each test attacks the running server through a scripted upstream (streams that never end an
event, gzip bombs, answers far over the limit, huge streams a client hangs up on, a huge
count_tokens body) while a watcher checks that `/health` keeps answering within 2 s, then
checks what the client saw and what was recorded.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.scripted import ScriptedUpstream, chat_chunk, gzip_bomb, json_body, sse_stream
from tests.harness import MASTER_KEY, Tollway, anthropic_client, openai_client

MiB = 1024 * 1024
EVENT_LIMIT = 1 * MiB
ANSWER_LIMIT = 8 * MiB
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def tw(upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg: dict[str, Any] = {
        "server": {"master_key": MASTER_KEY, "read_timeout_secs": 20, "connect_timeout_secs": 2,
                   "max_body_bytes": 40 * MiB, "max_response_bytes": ANSWER_LIMIT,
                   "max_stream_event_bytes": EVENT_LIMIT},
        "store": {"flush_interval_secs": 0.05},
        "providers": [
            {"id": "openai", "kind": "openai", "base_url": upstream.url + "/v1", "api_key": "sk-x",
             "models": ["gpt-4o-mini"]},
            {"id": "anthropic", "kind": "anthropic", "base_url": upstream.url, "api_key": "sk-ant-x",
             "models": ["claude-*"]},
        ],
    }
    t = Tollway(tmp_path_factory.mktemp("hostile"), cfg)
    yield t
    t.stop()


class Liveness:
    """Polls /health from another thread while an attack runs: each answer must come within 10 s
    (a stalled event loop never answers; a busy shared test machine can take a few seconds)."""

    def __init__(self, tw: Tollway) -> None:
        self.url = tw.url + "/health"
        self.failures: list[str] = []
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                urllib.request.urlopen(self.url, timeout=10).read()
                self.answers += 1
            except Exception as e:  # a timeout or a refused connection: the server stalled
                self.failures.append(f"{type(e).__name__}: {e} after {time.monotonic() - t0:.1f}s")
            self._stop.wait(0.1)

    def __enter__(self) -> "Liveness":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        assert not self.failures, f"/health stalled during the attack: {self.failures}"
        assert self.answers > 0


def peak_rss_mib(tw: Tollway) -> float:
    status = Path(f"/proc/{tw.proc.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def post(tw: Tollway, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", tw.port, timeout=60)
    conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {MASTER_KEY}",
                                                   "content-type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.headers), json.loads(data)


# --- streams -----------------------------------------------------------------------------------------

def test_a_stream_without_blank_lines_is_cut_at_the_event_limit(tw: Tollway, upstream: ScriptedUpstream) -> None:
    line = b"data: " + b"a" * (64 * 1024 - 7) + b"\n"  # 50 MB of data lines, never a blank one
    upstream.reset(sse_stream(lambda: (line for _ in range(800))))
    oai = openai_client(tw)
    with Liveness(tw):
        with oai.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=HELLO,
                                                                  stream=True) as raw:
            trace = raw.headers["x-tollway-trace-id"]
            with pytest.raises(openai.APIError, match="max_stream_event_bytes"):
                for _ in raw.parse():
                    pass
    rec = tw.record(trace)
    assert rec["error_type"] == "upstream_too_large" and rec["stream"] is True


def test_a_gzip_bomb_stream_is_cut_at_the_event_limit(tw: Tollway, upstream: ScriptedUpstream) -> None:
    bomb = gzip_bomb(256 * MiB)

    async def handler(request):  # an event stream, compressed, that inflates to 256 MB of spaces
        from aiohttp import web
        resp = web.StreamResponse(headers={"content-type": "text/event-stream", "content-encoding": "gzip"})
        await resp.prepare(request)
        await resp.write(bomb)
        await resp.write_eof()
        return resp

    upstream.reset(handler)
    claude = anthropic_client(tw)
    with Liveness(tw):
        with pytest.raises(anthropic.APIError, match="max_stream_event_bytes"):
            with claude.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=HELLO) as s:
                for _ in s:
                    pass
    rec = tw.records(limit=1)[0]
    assert rec["error_type"] == "upstream_too_large" and rec["route"] == "anthropic.messages"


def test_a_huge_stream_without_usage_is_counted_without_stalling(tw: Tollway, upstream: ScriptedUpstream) -> None:
    """36 MB of answer and no usage: counted as it passes (no 20 s tokeniser stall at the end)."""
    piece = " hello world" * 2000  # 24 KB of text, 4,000 tokens
    n = 1500
    upstream.reset(sse_stream(lambda: [*(chat_chunk(piece) for _ in range(n)), b"data: [DONE]\n\n"]))
    before = peak_rss_mib(tw)
    got = 0
    with Liveness(tw):
        with openai_client(tw).chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=HELLO, stream=True) as raw:
            trace = raw.headers["x-tollway-trace-id"]
            for chunk in raw.parse():
                got += len(chunk.choices[0].delta.content or "") if chunk.choices else 0
    assert got == len(piece) * n
    rec = tw.record(trace)
    assert rec["tokens_estimated"] is True and rec["cancelled"] is False and rec["error_type"] is None
    assert abs(rec["output_tokens"] - 4000 * n) <= 0.02 * 4000 * n  # exact for the first MB, then by ratio
    assert peak_rss_mib(tw) - before < 64, "the stream's text was held"


def test_a_client_hanging_up_on_a_huge_stream_is_recorded_with_what_it_got(tw: Tollway,
                                                                            upstream: ScriptedUpstream) -> None:
    piece = " hello world" * 2000
    upstream.reset(sse_stream(lambda: (chat_chunk(piece) for _ in range(20_000))))  # ~480 MB if read to the end
    with Liveness(tw):
        conn = http.client.HTTPConnection("127.0.0.1", tw.port, timeout=30)
        conn.request("POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}",
                                                              "content-type": "application/json"},
                     body=json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": HELLO}))
        resp = conn.getresponse()
        trace = resp.headers["x-tollway-trace-id"]
        read = 0
        while read < 30 * MiB:
            read += len(resp.read1(1 << 20))
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        rec = tw.record(trace, timeout=20)
    assert rec["cancelled"] is True and rec["error_type"] == "client_disconnected"
    assert rec["tokens_estimated"] is True and rec["output_tokens"] >= 4000 * 1000  # at least what 30 MB held
    assert rec["cost_usd"] is not None
    deadline = time.time() + 10
    while upstream.disconnects < 1 and time.time() < deadline:
        time.sleep(0.1)
    assert upstream.disconnects == 1, "the upstream stream was not cancelled"


# --- mid-stream errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("spacing", [b'{"error":{', b'{"error": {', b'{ "error" : {'], ids=["compact", "spaced", "padded"])
def test_a_same_format_stream_error_is_recorded_whatever_the_json_whitespace(tw: Tollway, upstream: ScriptedUpstream,
                                                                          spacing: bytes) -> None:
    error = b"data: " + spacing + b'"message": "Rate limit reached", "type": "rate_limit_error"}}\n\n'
    # the stream stays open after the error: the SDK raises and hangs up while Tollway still relays
    upstream.reset(sse_stream([chat_chunk(""), chat_chunk("Hi"), error, 3.0, b"data: [DONE]\n\n"]))
    with openai_client(tw).chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=HELLO,
                                                                            stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        with pytest.raises(openai.APIError, match="Rate limit reached"):
            for _ in raw.parse():
                pass
    rec = tw.record(trace)
    assert rec["error_type"] == "stream_error" and rec["cancelled"] is False


def test_a_translated_stream_error_is_recorded_even_when_the_client_hangs_up_on_it(tw: Tollway,
                                                                                 upstream: ScriptedUpstream) -> None:
    def ev(kind: str, obj: dict) -> bytes:
        return b"event: " + kind.encode() + b"\ndata: " + json.dumps({"type": kind, **obj}).encode() + b"\n\n"

    upstream.reset(sse_stream([
        ev("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                                         "model": "claude-haiku-4-5", "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ev("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}),
        3.0,  # still open: the client has its error and hangs up first
    ]))
    with openai_client(tw).chat.completions.with_streaming_response.create(model="claude-haiku-4-5",
                                                                            messages=HELLO, stream=True) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        with pytest.raises(openai.APIError, match="Overloaded"):
            for _ in raw.parse():
                pass
    rec = tw.record(trace)
    assert rec["error_type"] == "provider:overloaded_error" and rec["cancelled"] is False


# --- whole answers -----------------------------------------------------------------------------------

def test_a_gzip_bomb_answer_is_a_502_in_the_clients_format(tw: Tollway, upstream: ScriptedUpstream) -> None:
    upstream.reset(json_body(gzip_bomb(512 * MiB), gzipped=True))
    before = peak_rss_mib(tw)
    with Liveness(tw):
        with pytest.raises(openai.APIStatusError) as ei:
            openai_client(tw).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert ei.value.status_code == 502
    assert ei.value.body["code"] == "upstream_response_too_large" and "max_response_bytes" in ei.value.body["message"]
    assert peak_rss_mib(tw) - before < 64
    rec = tw.record(ei.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == 502 and rec["error_type"] == "upstream_too_large"


def test_a_huge_answer_is_a_502_in_the_clients_format(tw: Tollway, upstream: ScriptedUpstream) -> None:
    block = b" " * MiB
    upstream.reset(json_body(lambda: (block for _ in range(100))))  # 100 MB, never complete JSON
    before = peak_rss_mib(tw)
    with Liveness(tw):
        with pytest.raises(anthropic.APIStatusError) as ei:
            anthropic_client(tw).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
    assert ei.value.status_code == 502
    assert ei.value.body["type"] == "error" and ei.value.body["error"]["type"] == "api_error"
    assert "max_response_bytes" in ei.value.body["error"]["message"]
    assert peak_rss_mib(tw) - before < 64
    rec = tw.record(ei.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == 502 and rec["error_type"] == "upstream_too_large"


def test_a_huge_count_tokens_body_is_counted_off_the_event_loop(tw: Tollway, upstream: ScriptedUpstream) -> None:
    upstream.reset(json_body(b"{}"))
    text = " hello world" * (30 * MiB // 12)  # 30 MB, 5.2 M tokens: seconds of tokeniser time
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).encode()
    with Liveness(tw):
        status, _, answer = post(tw, "/v1/messages/count_tokens", body, {"anthropic-version": "2023-06-01"})
    assert status == 200
    assert answer["input_tokens"] == 2 * (30 * MiB // 12) + 7  # chat recipe: 3 per message, 3 to prime, "user"
    assert upstream.calls == 0  # an OpenAI-family model is counted by Tollway itself
