"""GET /health/live and /health/ready: ready while the store (or, when it is down, the spool)
takes records; 503 naming the failed check when neither does."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.fakes.provider import FakeProvider
from tests.fakes.tcp_proxy import ThreadedTcpProxy
from tests.harness import Tollway, openai_client, standard_config
from tests.proxy.test_postgres_store import pg_database  # noqa: F401  (fixture)


def get(tw: Tollway, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(tw.url + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_live_and_ready_need_no_key(tollway: Tollway) -> None:
    assert get(tollway, "/health/live") == (200, {"status": "ok"})
    assert get(tollway, "/health/ready") == (200, {"status": "ready", "checks": {"store": {"ok": True}}})


def test_ready_follows_the_store_and_its_spool(fake: FakeProvider, tmp_path: Path, pg_database: str) -> None:  # noqa: F811
    proxy = ThreadedTcpProxy("127.0.0.1", 5432)
    url = pg_database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    tw = Tollway(tmp_path, standard_config(fake.url, store={"url": url, "flush_interval_secs": 0.05}))
    try:
        assert get(tw, "/health/ready")[0] == 200
        proxy.down()
        status, body = get(tw, "/health/ready")
        assert status == 200 and body["checks"]["store"]["ok"] is True
        assert "spooled" in body["checks"]["store"]["detail"]
        # the spool takes what the store cannot: nothing lost
        raw = openai_client(tw).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        spool = tmp_path / ".tollway" / "spool"
        deadline = time.time() + 10
        while not spool.is_dir() and time.time() < deadline:
            time.sleep(0.05)
        # neither store nor spool: not ready, and the answer says why
        aside = spool.with_name("spool-aside")
        spool.rename(aside)
        spool.write_text("not a directory")
        status, body = get(tw, "/health/ready")
        assert status == 503 and body["status"] == "not_ready"
        assert body["checks"]["store"]["ok"] is False and "spool not writable" in body["checks"]["store"]["detail"]
        assert get(tw, "/health/live")[0] == 200
        spool.unlink()
        aside.rename(spool)
        proxy.restore()
        assert get(tw, "/health/ready")[0] == 200
        assert tw.record(raw.headers["x-tollway-trace-id"], timeout=20)["status"] == 200  # replayed, not lost
    finally:
        tw.stop()
        proxy.close()
