"""Pass-through answers and memory: a download of any size is relayed as it arrives, never held;
an answer Tollway must read whole (a metered endpoint's JSON, an error) is capped at
`[server] max_response_bytes` and answered 502 in the route's format beyond it.

Each test attacks the running server through a scripted upstream while `/health` is polled
(it must keep answering), and checks what the client got, what was recorded and the server's
peak memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import web

from tests.fakes.scripted import ScriptedUpstream, json_body
from tests.harness import MASTER_KEY, Tollway, anthropic_client, openai_client
from tests.proxy.test_hostile_upstream import Liveness, peak_rss_mib

MiB = 1024 * 1024
ANSWER_LIMIT = 8 * MiB
BLOCK = bytes(range(256)) * 4096  # 1 MiB, not all one byte


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def tw(upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg: dict[str, Any] = {
        "server": {"master_key": MASTER_KEY, "read_timeout_secs": 20, "connect_timeout_secs": 2,
                   "max_response_bytes": ANSWER_LIMIT},
        "store": {"flush_interval_secs": 0.05},
        "providers": [
            {"id": "openai", "kind": "openai", "base_url": upstream.url + "/v1", "api_key": "sk-x",
             "models": ["gpt-4o-mini"]},
            {"id": "anthropic", "kind": "anthropic", "base_url": upstream.url, "api_key": "sk-ant-x",
             "models": ["claude-*"]},
        ],
    }
    t = Tollway(tmp_path_factory.mktemp("passthrough-limits"), cfg)
    yield t
    t.stop()


def download(n_blocks: int, length: bool = True, break_after: int | None = None):
    """A file answer of `n_blocks` MiB, with or without Content-Length; optionally the connection
    is cut after `break_after` blocks."""

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"content-type": "application/octet-stream"}
        if length:
            headers["content-length"] = str(n_blocks * MiB)
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        for i in range(n_blocks):
            if break_after is not None and i == break_after:
                assert request.transport is not None
                request.transport.abort()
                return resp
            await resp.write(BLOCK)
            await asyncio.sleep(0)
        await resp.write_eof()
        return resp

    return handler


def get(tw: Tollway, path: str, method: str = "GET") -> tuple[int, dict[str, str], Any]:
    """(status, headers, body digest and length, or the exception the read ended with)."""
    conn = http.client.HTTPConnection("127.0.0.1", tw.port, timeout=60)
    try:
        conn.request(method, path, headers={"Authorization": f"Bearer {MASTER_KEY}"})
        resp = conn.getresponse()
        digest, size = hashlib.sha256(), 0
        try:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        except http.client.IncompleteRead as e:
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, e
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, (digest.hexdigest(), size)
    finally:
        conn.close()


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
def test_a_download_far_over_the_answer_limit_is_relayed_whole_without_being_held(
        tw: Tollway, upstream: ScriptedUpstream, length: bool) -> None:
    n = 200  # MiB: 25 times max_response_bytes
    upstream.reset(download(n, length))
    before = peak_rss_mib(tw)
    with Liveness(tw):
        status, headers, got = get(tw, "/v1/files/file-big/content")
    assert status == 200
    expected = hashlib.sha256(BLOCK * n).hexdigest()
    assert got == (expected, n * MiB)
    assert (headers.get("content-length") == str(n * MiB)) is length
    assert peak_rss_mib(tw) - before < 64  # held: about one chunk, not the file
    rec = tw.record(headers["x-tollway-trace-id"])
    assert rec["status"] == 200 and rec["error_type"] is None and rec["cost_usd"] is None
    assert rec["cost_note"] == "pass-through endpoint that reports no usage"


def test_head_of_a_download_gives_its_length(tw: Tollway, upstream: ScriptedUpstream) -> None:
    upstream.reset(download(3))
    status, headers, got = get(tw, "/v1/files/file-big/content", method="HEAD")
    assert status == 200 and headers["content-length"] == str(3 * MiB) and got == (hashlib.sha256().hexdigest(), 0)


def test_a_download_that_breaks_off_ends_short_for_the_client_and_is_recorded(
        tw: Tollway, upstream: ScriptedUpstream) -> None:
    upstream.reset(download(20, length=True, break_after=5))
    status, headers, got = get(tw, "/v1/files/file-big/content")
    # the connection ends before the promised length: never a complete-looking file
    assert status == 200 and headers["content-length"] == str(20 * MiB)
    size = got.partial.__len__() if isinstance(got, http.client.IncompleteRead) else got[1]
    assert size < 20 * MiB
    rec = tw.record(headers["x-tollway-trace-id"])
    assert rec["status"] == 200 and rec["error_type"] in ("upstream_error", "upstream_unreachable")


def test_a_metered_json_answer_over_the_limit_is_a_502_in_the_openai_shape(
        tw: Tollway, upstream: ScriptedUpstream) -> None:
    big = b'{"data": [{"b64_json": "' + b"A" * (ANSWER_LIMIT + MiB) + b'"}], "usage": {"input_tokens": 5}}'
    upstream.reset(json_body(big))
    before = peak_rss_mib(tw)
    with Liveness(tw):
        with pytest.raises(openai.APIStatusError) as ei:
            openai_client(tw).images.generate(model="gpt-image-1", prompt="a cat")
    assert ei.value.status_code == 502
    assert ei.value.body["code"] == "upstream_response_too_large" and "max_response_bytes" in ei.value.body["message"]
    assert peak_rss_mib(tw) - before < 2 * ANSWER_LIMIT / MiB + 32
    rec = tw.record(ei.value.response.headers["x-tollway-trace-id"])
    assert rec["status"] == 502 and rec["error_type"] == "upstream_too_large" and rec["route"] == "passthrough.openai"


def test_a_metered_json_answer_under_the_limit_is_still_metered(tw: Tollway, upstream: ScriptedUpstream) -> None:
    answer = {"created": 1, "data": [{"b64_json": "AAAA"}],
              "usage": {"input_tokens": 5, "output_tokens": 9, "total_tokens": 14}}
    upstream.reset(json_body(json.dumps(answer).encode()))
    raw = openai_client(tw).images.with_raw_response.generate(model="gpt-image-1", prompt="a cat")
    assert raw.parse().data[0].b64_json == "AAAA"
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert (rec["input_tokens"], rec["output_tokens"]) == (5, 9)


def test_an_anthropic_error_body_over_the_limit_is_a_502_in_the_anthropic_shape(
        tw: Tollway, upstream: ScriptedUpstream) -> None:
    async def huge_error(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=400, headers={"content-type": "application/json"})
        await resp.prepare(request)
        for _ in range(ANSWER_LIMIT // MiB + 2):
            await resp.write(b" " * MiB)
        await resp.write_eof()
        return resp

    upstream.reset(huge_error)
    with pytest.raises(anthropic.APIStatusError) as ei:
        anthropic_client(tw).beta.files.list()
    assert ei.value.status_code == 502
    assert ei.value.body["type"] == "error" and "max_response_bytes" in ei.value.body["error"]["message"]
