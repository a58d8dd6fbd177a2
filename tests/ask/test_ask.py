"""POST /v1/ask on a live Tollway: the fake model writes the SQL. Good SQL answers with the same
numbers as /v1/stats and is metered as source tollway-ask; hostile SQL is refused (or stopped
by the timeout) with the SQL shown, and nothing in the store changes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway, openai_client, standard_config

VIEWER = "tw-viewer-ask-key"
ASK_MODEL = "gpt-4o"


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url, ask={"model": ASK_MODEL, "timeout_secs": 1.0, "max_rows": 50})
    cfg["keys"] = [*cfg["keys"], {"id": "viewer", "key": VIEWER, "roles": ["viewer"]}]
    t = Tollway(tmp_path_factory.mktemp("ask"), cfg)
    client = openai_client(t)  # (team-alpha's key is bound to project alpha: it cannot name beta)
    for project, n in (("alpha", 3), ("beta", 2)):
        for _ in range(n):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                           extra_headers={"x-tollway-project": project, "x-tollway-source": "app"})
    yield t
    t.stop()


def ask(tw: Tollway, fake: FakeProvider, sql: str, key: str = VIEWER) -> tuple[int, Any]:
    fake.reply_next(f"Here you go:\n```sql\n{sql}\n```", scope=ASK_MODEL)
    req = urllib.request.Request(tw.url + "/v1/ask", data=json.dumps({"question": "what happened?"}).encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def snapshot(tw: Tollway) -> str:
    """Everything in the store but Ask's own usage records (each question adds one)."""
    db = tw.workdir / ".tollway" / "tollway.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        h = hashlib.sha256()
        for (sql,) in conn.execute("SELECT sql FROM sqlite_master ORDER BY name"):
            h.update((sql or "").encode())
        for table in ("audit_log", "runtime_providers", "store_markers", "responses"):
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):
                h.update(repr(row).encode())
        for row in conn.execute("SELECT * FROM usage_records WHERE source IS NOT 'tollway-ask' ORDER BY trace_id"):
            h.update(repr(row).encode())
        return h.hexdigest()
    finally:
        conn.close()


def test_good_sql_answers_with_the_numbers_of_stats_and_is_metered(tw: Tollway, fake: FakeProvider) -> None:
    status, body = ask(tw, fake, "SELECT project, COUNT(*) AS requests, SUM(cost_nanousd) AS cost_nanousd "
                                 "FROM ask_requests WHERE source = 'app' GROUP BY project ORDER BY project")
    assert status == 200, body
    assert body["refused"] is None
    assert body["columns"] == ["project", "requests", "cost_nanousd"]
    stats = tw.get("/v1/stats?group_by=project&source=app")[1]
    expected = {g["project"]: g for g in stats["groups"]}
    assert [r[0] for r in body["rows"]] == ["alpha", "beta"]
    for project, requests, nanos in body["rows"]:
        assert requests == expected[project]["requests"]
        assert f"{nanos / 1e9:.9f}" == expected[project]["cost_usd"]
    assert body["chart"] == {"type": "bar", "x": "project", "y": ["requests", "cost_nanousd"]}
    assert "LIMIT 50" in body["executed_sql"]
    record = tw.record(body["trace_id"])  # the model call went through Tollway, metered
    assert (record["source"], record["model_requested"], record["key_id"]) == ("tollway-ask", ASK_MODEL, "viewer")
    assert record["cost_usd"] is not None


def test_the_daily_view_outlives_records_and_charts_over_time(tw: Tollway, fake: FakeProvider) -> None:
    status, body = ask(tw, fake, "SELECT day, SUM(requests) AS requests FROM ask_usage_daily "
                                 "WHERE source = 'app' GROUP BY day ORDER BY day")
    assert status == 200 and body["refused"] is None, body
    assert sum(r[1] for r in body["rows"]) == 5
    assert body["chart"]["type"] == "line"


HOSTILE = [
    ("DROP TABLE usage_records", "Only SELECT"),
    ("ATTACH DATABASE '/tmp/tollway-ask-evil.db' AS evil", "Only SELECT"),
    ("SELECT 1; DELETE FROM usage_records", "Exactly one statement"),
    ("SELECT * FROM ask_requests; DROP TABLE audit_log", "Exactly one statement"),
    ("PRAGMA writable_schema = ON", "Only SELECT"),
    ("UPDATE usage_records SET cost_nanousd = 0", "Only SELECT"),
    ("SELECT * FROM usage_records", "not allowed"),
    ("SELECT name, sql FROM sqlite_master", "not allowed"),
    ("SELECT trace_id FROM ask_requests UNION SELECT key FROM runtime_providers", "not allowed"),
    ("SELECT * FROM main.ask_requests", "Qualified"),
    ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
    ("SELECT readfile('/etc/passwd')", "readfile"),
    ("SELECT * FROM pragma_table_info('usage_records')", "not allowed"),
    ("SELECT count(*) FROM ask_requests a, ask_requests b, ask_requests c, ask_requests d, ask_requests e",
     "table references"),
    ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n", "longer than"),
    ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000) "
     "SELECT count(*) FROM n a, n b", "longer than"),
    ("this is not sql at all", ""),
]


@pytest.mark.parametrize(("sql", "reason"), HOSTILE)
def test_hostile_sql_is_refused_with_the_sql_shown_and_nothing_changes(
        tw: Tollway, fake: FakeProvider, sql: str, reason: str) -> None:
    before = snapshot(tw)
    status, body = ask(tw, fake, sql)
    assert status == 200, body
    assert body["refused"] and reason in body["refused"], body
    assert body["sql"] == sql and body["rows"] == []
    assert snapshot(tw) == before
    assert not Path(tempfile.gettempdir(), "tollway-ask-evil.db").exists()


def test_ask_needs_the_viewer_role(tw: Tollway, fake: FakeProvider) -> None:
    assert ask(tw, fake, "SELECT 1", key=TEAM_KEY)[0] == 403
    assert ask(tw, fake, "SELECT 1", key="tw-wrong")[0] == 401
    fake.clear()


def test_without_a_model_ask_says_how_to_set_one(fake: FakeProvider, tmp_path: Path) -> None:
    t = Tollway(tmp_path, standard_config(fake.url))
    try:
        status, body = ask(t, fake, "SELECT 1", key=MASTER_KEY)
        assert status == 400 and "[ask] model" in body["error"]["message"]
        assert t.get("/v1/ask")[1]["model"] is None
    finally:
        t.stop()
        fake.clear()


def test_a_failing_ask_model_is_a_clear_502(tw: Tollway, fake: FakeProvider) -> None:
    fake.fail_next(500, scope=ASK_MODEL)
    req = urllib.request.Request(tw.url + "/v1/ask", data=b'{"question": "spend?"}',
                                 headers={"Authorization": f"Bearer {VIEWER}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 502 and ASK_MODEL in json.loads(e.value.read())["error"]["message"]
    with pytest.raises(openai.NotFoundError):  # unrelated calls still work as before
        openai_client(tw).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
