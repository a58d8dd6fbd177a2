"""GET /v1/records and GET /v1/stats on a live Tollway: filters, pagination, breakdowns, access."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest

from tests.harness import MASTER_KEY, TEAM_KEY, Tollway

HELLO = [{"role": "user", "content": "Hello"}]


def get(tollway: Tollway, path: str, key: str | None = MASTER_KEY, **query: Any) -> tuple[int, Any]:
    qs = urllib.parse.urlencode(query)
    req = urllib.request.Request(tollway.url + path + (f"?{qs}" if qs else ""),
                                 headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def records(tollway: Tollway, **query: Any) -> list[dict[str, Any]]:
    status, body = get(tollway, "/v1/records", **query)
    assert status == 200, body
    return body["data"]


def stats(tollway: Tollway, **query: Any) -> dict[str, Any]:
    status, body = get(tollway, "/v1/stats", **query)
    assert status == 200, body
    return body


@dataclass
class Calls:
    tag: str
    traces: dict[str, str]

    def source(self, name: str) -> str:
        return f"{name}-{self.tag}"


@pytest.fixture(scope="module")
def calls(tollway: Tollway) -> Calls:
    """Calls with names unique to this run, so the shared server's other rows never interfere."""
    tag = uuid.uuid4().hex[:10]
    c = Calls(tag, {})
    oai = openai.OpenAI(base_url=tollway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
    claude = anthropic.Anthropic(base_url=tollway.url, api_key=MASTER_KEY, max_retries=0, timeout=20)

    def attribution(source: str, project: str, customer: str | None = None) -> dict[str, str]:
        h = {"x-tollway-source": c.source(source), "x-tollway-project": f"{project}-{tag}"}
        if customer:
            h["x-tollway-customer"] = f"{customer}-{tag}"
        return h

    c.traces["mini"] = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers=attribution("web", "shop", "acme")
    ).headers["x-tollway-trace-id"]
    c.traces["4o"] = oai.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, extra_headers=attribution("web", "blog")
    ).headers["x-tollway-trace-id"]
    c.traces["claude"] = claude.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50, messages=HELLO, extra_headers=attribution("batch", "shop", "acme")
    ).headers["x-tollway-trace-id"]
    with pytest.raises(openai.NotFoundError) as nf:
        oai.chat.completions.create(model="no-such-model", messages=HELLO, extra_headers=attribution("batch", "shop"))
    c.traces["unknown"] = nf.value.response.headers["x-tollway-trace-id"]
    with pytest.raises(openai.InternalServerError) as ie:
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "[[fault:500]]"}],
                                    extra_headers=attribution("batch", "blog"))
    c.traces["fault"] = ie.value.response.headers["x-tollway-trace-id"]
    for i in range(5):
        c.traces[f"page{i}"] = oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HELLO, extra_headers=attribution("pager", "paging")
        ).headers["x-tollway-trace-id"]
    tollway.record(c.traces["page4"])  # written
    return c


def traces_of(rows: list[dict[str, Any]]) -> list[str]:
    return [r["trace_id"] for r in rows]


# -- filters ------------------------------------------------------------------------------------


def test_source_filter_newest_first(tollway: Tollway, calls: Calls) -> None:
    rows = records(tollway, source=calls.source("web"))
    assert traces_of(rows) == [calls.traces["4o"], calls.traces["mini"]]
    assert rows[0]["ts"] >= rows[1]["ts"]
    assert datetime.fromisoformat(rows[0]["time"].replace("Z", "+00:00")).timestamp() == pytest.approx(
        rows[0]["ts"], abs=0.001)


def test_project_filter(tollway: Tollway, calls: Calls) -> None:
    rows = records(tollway, project=f"shop-{calls.tag}")
    assert set(traces_of(rows)) == {calls.traces["mini"], calls.traces["claude"], calls.traces["unknown"]}
    assert all(r["project"] == f"shop-{calls.tag}" for r in rows)


def test_customer_filter(tollway: Tollway, calls: Calls) -> None:
    rows = records(tollway, customer=f"acme-{calls.tag}")
    assert set(traces_of(rows)) == {calls.traces["mini"], calls.traces["claude"]}


def test_model_filter_is_exact(tollway: Tollway, calls: Calls) -> None:
    rows = records(tollway, model="gpt-4o", source=calls.source("web"))
    assert traces_of(rows) == [calls.traces["4o"]]  # not gpt-4o-mini
    rows = records(tollway, model="no-such-model", project=f"shop-{calls.tag}")
    assert traces_of(rows) == [calls.traces["unknown"]]  # the model asked for counts too


def test_status_filter(tollway: Tollway, calls: Calls) -> None:
    batch = calls.source("batch")
    assert traces_of(records(tollway, source=batch, status=404)) == [calls.traces["unknown"]]
    assert traces_of(records(tollway, source=batch, status=500)) == [calls.traces["fault"]]
    assert set(traces_of(records(tollway, source=batch, status="error"))) == {calls.traces["unknown"],
                                                                              calls.traces["fault"]}
    assert traces_of(records(tollway, source=batch, status="ok")) == [calls.traces["claude"]]
    assert traces_of(records(tollway, source=batch, status=200)) == [calls.traces["claude"]]


def test_since_filter_unix_and_iso(tollway: Tollway, calls: Calls) -> None:
    pager = calls.source("pager")
    all_rows = records(tollway, source=pager)
    assert len(all_rows) == 5
    third = next(r for r in all_rows if r["trace_id"] == calls.traces["page2"])
    newer = records(tollway, source=pager, since=third["ts"])  # inclusive
    assert set(traces_of(newer)) == {calls.traces["page2"], calls.traces["page3"], calls.traces["page4"]}
    future = datetime.fromtimestamp(all_rows[0]["ts"] + 3600, timezone.utc).isoformat()
    assert records(tollway, source=pager, since=future) == []
    past = datetime.fromtimestamp(all_rows[-1]["ts"] - 3600, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(records(tollway, source=pager, since=past)) == 5


def test_filters_combine(tollway: Tollway, calls: Calls) -> None:
    rows = records(tollway, project=f"shop-{calls.tag}", source=calls.source("batch"), status="ok")
    assert traces_of(rows) == [calls.traces["claude"]]
    assert records(tollway, project=f"blog-{calls.tag}", customer=f"acme-{calls.tag}") == []


def test_one_record_by_trace_id(tollway: Tollway, calls: Calls) -> None:
    status, rec = get(tollway, f"/v1/records/{calls.traces['claude']}")
    assert status == 200 and rec["route"] == "anthropic.messages" and rec["customer"] == f"acme-{calls.tag}"
    status, body = get(tollway, "/v1/records/not-a-trace")
    assert status == 404 and body["error"]["message"]


# -- pagination ---------------------------------------------------------------------------------


def test_cursor_pagination_walks_every_row_once(tollway: Tollway, calls: Calls) -> None:
    pager = calls.source("pager")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query: dict[str, Any] = {"source": pager, "limit": 2}
        if cursor:
            query["cursor"] = cursor
        status, page = get(tollway, "/v1/records", **query)
        assert status == 200, page
        pages += 1
        assert len(page["data"]) <= 2
        seen += traces_of(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert seen == [calls.traces[f"page{i}"] for i in (4, 3, 2, 1, 0)]


def test_a_cursor_stays_stable_while_rows_are_added(tollway: Tollway, calls: Calls, oai: openai.OpenAI) -> None:
    pager = calls.source("pager")
    status, first = get(tollway, "/v1/records", source=pager, limit=2)
    assert status == 200
    # a new row arrives between pages: it is newer, so it must not shift the next page
    extra = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO,
                                                          extra_headers={"x-tollway-source": pager})
    tollway.record(extra.headers["x-tollway-trace-id"])
    status, second = get(tollway, "/v1/records", source=pager, limit=2, cursor=first["next_cursor"])
    assert status == 200
    assert traces_of(second["data"]) == [calls.traces["page2"], calls.traces["page1"]]


# -- stats --------------------------------------------------------------------------------------


def test_stats_totals_and_breakdowns(tollway: Tollway, calls: Calls) -> None:
    web = stats(tollway, source=calls.source("web"))
    rows = records(tollway, source=calls.source("web"))
    t = web["totals"]
    assert t["requests"] == 2 and t["errors"] == 0
    assert t["input_tokens"] == sum(r["input_tokens"] for r in rows) == 22
    assert t["output_tokens"] == 14 and t["total_tokens"] == 36
    assert Decimal(t["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in rows) > 0
    assert t["latency_ms_p50"] is not None and t["latency_ms_p95"] >= t["latency_ms_p50"]
    by_model = {m["model"]: m for m in web["by_model"]}
    assert set(by_model) == {"gpt-4o-mini", "gpt-4o"} and all(m["requests"] == 1 for m in by_model.values())
    by_project = {p["project"]: p["requests"] for p in web["by_project"]}
    assert by_project == {f"shop-{calls.tag}": 1, f"blog-{calls.tag}": 1}
    assert [(s["source"], s["requests"]) for s in web["by_source"]] == [(calls.source("web"), 2)]


def test_stats_count_errors_and_split_by_source(tollway: Tollway, calls: Calls) -> None:
    batch = stats(tollway, source=calls.source("batch"))
    assert batch["totals"]["requests"] == 3 and batch["totals"]["errors"] == 2
    by_model = {m["model"]: m for m in batch["by_model"]}
    assert by_model["no-such-model"]["errors"] == 1 and by_model["claude-haiku-4-5"]["errors"] == 0

    shop = stats(tollway, project=f"shop-{calls.tag}")
    by_source = {s["source"]: s for s in shop["by_source"]}
    assert {k: v["requests"] for k, v in by_source.items()} == {calls.source("web"): 1, calls.source("batch"): 2}
    assert by_source[calls.source("batch")]["errors"] == 1
    assert shop["totals"]["requests"] == 3

    acme = stats(tollway, customer=f"acme-{calls.tag}", model="claude-haiku-4-5")
    assert acme["totals"]["requests"] == 1 and acme["totals"]["output_tokens"] == 7


def test_stats_since_in_the_future_is_empty(tollway: Tollway, calls: Calls) -> None:
    empty = stats(tollway, source=calls.source("web"), since="2999-01-01")
    assert empty["totals"]["requests"] == 0 and Decimal(empty["totals"]["cost_usd"]) == 0
    assert empty["by_model"] == [] and empty["totals"]["latency_ms_p50"] is None


# -- access and bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/records", "/v1/stats", "/v1/records/anything"])
def test_no_key_is_401_and_team_key_is_403(tollway: Tollway, path: str) -> None:
    status, body = get(tollway, path, key=None)
    assert status == 401 and body["error"]["message"]
    status, body = get(tollway, path, key=TEAM_KEY)
    assert status == 403 and body["error"]["type"] == "permission_error"


def test_team_key_via_x_api_key_is_403_too(tollway: Tollway) -> None:
    req = urllib.request.Request(tollway.url + "/v1/records", headers={"x-api-key": TEAM_KEY})
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(req, timeout=10)
    assert ei.value.code == 403


def test_an_unknown_key_is_401_like_on_the_proxy_routes(tollway: Tollway) -> None:
    status, _ = get(tollway, "/v1/records", key="tw-not-a-configured-key")
    assert status == 401


@pytest.mark.parametrize("path,query,param", [
    ("/v1/records", {"bogus": "1"}, "bogus"),
    ("/v1/records", {"since": "yesterday-ish"}, "since"),
    ("/v1/records", {"limit": "ten"}, "limit"),
    ("/v1/records", {"status": "broken"}, None),
    ("/v1/records", {"cursor": "%%%not-base64%%%"}, None),
    ("/v1/records", {"cursor": "bm90LWpzb24"}, None),
    ("/v1/stats", {"limit": "10"}, "limit"),  # not a stats parameter
    ("/v1/stats", {"group_by": "colour"}, None),
    ("/v1/stats", {"since": "soon"}, "since"),
    # what gave plain-text 500s: not ASCII digits, beyond 32 bits, NUL (Postgres refuses it), not finite
    ("/v1/records", {"limit": "²"}, "limit"),
    ("/v1/records", {"limit": "0"}, "limit"),
    ("/v1/records", {"status": "²"}, "status"),
    ("/v1/records", {"status": "99999999999"}, "status"),
    ("/v1/records", {"status": "-1"}, "status"),
    ("/v1/records", {"project": "a\x00b"}, "project"),
    ("/v1/records", {"model": "\x00"}, "model"),
    ("/v1/records", {"source": "s\x00"}, "source"),
    ("/v1/records", {"customer": "c\x00"}, "customer"),
    ("/v1/records", {"key_id": "k\x00"}, "key_id"),
    ("/v1/records", {"since": "1e400"}, "since"),
    ("/v1/records", {"since": "nan"}, "since"),
    ("/v1/records", {"project": "x" * 5000}, "project"),
    ("/v1/records", {"cursor": "WzEuMCwiYVx1MDAwMGIiXQ"}, None),  # [1.0,"a\u0000b"]
    ("/v1/records", {"cursor": "WzFlNDAwLCJhIl0"}, None),  # [1e400,"a"]
    ("/v1/records", {"after_seq": "²"}, "after_seq"),
    ("/v1/records", {"after_seq": "-5"}, "after_seq"),
    ("/v1/records", {"after_seq": "9" * 40}, "after_seq"),
    ("/v1/records", {"after_seq": "5", "cursor": "WzEuMCwiYSJd"}, "cursor"),
    ("/v1/stats", {"model": "m\x00"}, "model"),
    ("/v1/stats", {"project": "²\x00"}, "project"),
])
def test_bad_filters_are_400_openai_shaped(tollway: Tollway, path: str, query: dict[str, str],
                                           param: str | None) -> None:
    status, body = get(tollway, path, **query)
    assert status == 400, body
    err = body["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    if param is not None:
        assert err.get("param") == param or param in err["message"]


def test_a_huge_limit_is_capped_not_refused(tollway: Tollway, calls: Calls) -> None:
    status, body = get(tollway, "/v1/records", limit="9" * 40, source=calls.source("pager"))
    assert status == 200 and len(body["data"]) == len(records(tollway, source=calls.source("pager"), limit=1000)) >= 5


def test_a_trace_id_no_record_can_have_is_a_404(tollway: Tollway) -> None:
    for trace in ("a%00b", "x" * 300):
        status, body = get(tollway, f"/v1/records/{trace}")
        assert status == 404 and body["error"]["code"] == "not_found"


# -- exporters: insertion order -------------------------------------------------------------------


def test_after_seq_gives_an_exporter_every_record_once_long_calls_included(tollway: Tollway,
                                                                           oai: openai.OpenAI) -> None:
    """A call that starts first and ends last is missed by a `since` poller (since filters on
    start time); polling `after_seq` sees it once it is recorded, and nothing twice."""
    import threading

    tag = f"export-{uuid.uuid4().hex[:8]}"
    head = records(tollway, limit=1)[0]["seq"]
    long_call: dict[str, str] = {}

    def slow() -> None:
        raw = oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[delay:2]] take your time"}],
            extra_headers={"x-tollway-source": tag})
        long_call["trace"] = raw.headers["x-tollway-trace-id"]

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)  # the long call has started
    short = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO,
                                                          extra_headers={"x-tollway-source": tag})
    short_trace = short.headers["x-tollway-trace-id"]
    tollway.record(short_trace)

    status, page = get(tollway, "/v1/records", after_seq=head, source=tag)
    assert status == 200 and traces_of(page["data"]) == [short_trace]
    position = page["next_after_seq"]
    assert position == page["data"][0]["seq"] > head
    since = page["data"][0]["ts"]

    thread.join(20)
    tollway.record(long_call["trace"])
    assert long_call["trace"] not in traces_of(records(tollway, source=tag, since=since))  # missed by since
    status, page = get(tollway, "/v1/records", after_seq=position, source=tag)
    assert status == 200 and traces_of(page["data"]) == [long_call["trace"]]  # seen by after_seq
    status, page = get(tollway, "/v1/records", after_seq=page["next_after_seq"], source=tag)
    assert page["data"] == [] and page["next_after_seq"] > position


# -- the record of a stream the client read to [DONE] ---------------------------------------------


def _openai_stream_chunks() -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-late-eof", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    return [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}},
    ]


@pytest.fixture(scope="module")
def late_eof_upstream() -> Iterator[str]:
    """An OpenAI-compatible upstream whose connection ends a moment after `data: [DONE]` (as a
    real one can, when the chunked terminator comes in a later packet)."""
    import asyncio
    import threading

    from aiohttp import web

    from tests.harness import free_port

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in _openai_stream_chunks():
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await asyncio.sleep(0.5)
        try:
            await resp.write_eof()
        except ConnectionError:
            pass
        return resp

    port = free_port()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_a_stream_read_to_done_is_recorded_complete(late_eof_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.harness import standard_config

    tw = Tollway(tmp_path_factory.mktemp("late-eof"), standard_config(late_eof_upstream))
    try:
        client = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
        with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=HELLO,
                                                                    stream=True) as raw:
            trace = raw.headers["x-tollway-trace-id"]
            chunks = list(raw.parse())
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there"
        rec = tw.record(trace)
        assert (rec["cancelled"], rec["error_type"]) == (False, None)
        assert (rec["input_tokens"], rec["output_tokens"], rec["tokens_estimated"]) == (11, 7, False)
    finally:
        tw.stop()
