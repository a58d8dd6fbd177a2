"""/health tells whether records reach the store: backlog, spool, last write, what could not be
replayed; 503 "degraded" while a write hangs or a threshold is passed, 200 again after."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import openai

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, standard_config
from tollway.storage.rows import record_to_json
from tollway.usage import Usage, UsageRecord

HELLO = [{"role": "user", "content": "Hello"}]


def health(tw: Tollway) -> tuple[int, dict[str, Any]]:
    return tw.get("/health", key=None)


def wait_health(tw: Tollway, predicate, timeout: float = 20.0) -> tuple[int, dict[str, Any]]:
    deadline = time.time() + timeout
    while True:
        status, body = health(tw)
        if predicate(status, body):
            return status, body
        assert time.time() < deadline, body
        time.sleep(0.1)


def test_health_degrades_while_writes_hang_and_recovers(fake: FakeProvider, tmp_path: Path) -> None:
    cfg = standard_config(fake.url, store={"flush_interval_ms": 20, "degraded_pending": 5, "degraded_write_secs": 1})
    tw = Tollway(tmp_path, cfg)
    lock = None
    try:
        oai = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
        oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        status, body = wait_health(tw, lambda s, b: b["ledger"]["written"] >= 1)
        assert status == 200 and body["status"] == "ok" and body["problems"] == []
        assert body["ledger"]["last_write"].endswith("Z") and body["ledger"]["last_write_age_secs"] < 10

        lock = sqlite3.connect(tmp_path / ".tollway" / "tollway.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # every write now waits
        for _ in range(10):  # answered as usual: accounting never blocks a response
            assert oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices
        status, body = wait_health(tw, lambda s, b: s == 503 and any("in flight" in p for p in b["problems"]))
        assert body["status"] == "degraded"
        assert body["ledger"]["pending"] >= 10 and any("waiting to be written" in p for p in body["problems"])
        # the write gives up (busy timeout), the records go to the spool: still degraded, for that reason
        status, body = wait_health(tw, lambda s, b: not b["ledger"]["store_ok"])
        assert status == 503 and body["ledger"]["spool_bytes"] > 0
        assert any("spool" in p for p in body["problems"])

        lock.execute("COMMIT")
        lock.close()
        lock = None
        status, body = wait_health(tw, lambda s, b: s == 200)
        assert body["status"] == "ok" and body["ledger"]["store_ok"] and body["ledger"]["spool_bytes"] == 0
        assert body["ledger"]["written"] >= 11 and body["ledger"]["unreplayable"] == 0
    finally:
        if lock is not None:
            lock.close()
        tw.stop()


def test_a_spool_line_cut_by_a_crash_is_counted_and_logged(fake: FakeProvider, tmp_path: Path) -> None:
    spool = tmp_path / ".tollway" / "spool"
    spool.mkdir(parents=True)
    whole = UsageRecord("01a00000-0000-7000-8000-000000000001", time.time(), "openai.chat", usage=Usage(1, 2),
                        status=200)
    cut = record_to_json(UsageRecord("01a00000-0000-7000-8000-000000000002", time.time(), "openai.chat"))[:50]
    (spool / "spool.jsonl").write_bytes(record_to_json(whole) + b"\n" + cut)  # the crash came mid-line
    tw = Tollway(tmp_path, standard_config(fake.url))
    try:
        status, body = wait_health(tw, lambda s, b: b["ledger"]["replayed"] == 1)
        assert body["ledger"]["unreplayable"] == 1 and body["ledger"]["dead_letter_bytes"] == len(cut) + 1
        assert tw.record(whole.trace_id)["input_tokens"] == 1
        assert "UNREPLAYABLE" in tw.log()
    finally:
        tw.stop()


def test_health_reports_connections_and_unauthenticated_requests(tollway: Tollway) -> None:
    status, body = health(tollway)
    assert status == 200
    assert body["connections"]["open"] >= 1 and body["connections"]["max"] == 1000
    assert isinstance(body["requests"]["unauthenticated"], int)
