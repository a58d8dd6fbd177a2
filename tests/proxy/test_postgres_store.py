"""A whole Tollway on a Postgres store: migrated at start-up, records written and read back,
and a second instance on the same database sees the first one's records (scale-out)."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal

import asyncpg
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway, standard_config

ADMIN_DSN = os.environ.get("TOLLWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_database() -> Iterator[str]:
    name = f"tollway_it_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as e:
        if os.environ.get("TOLLWAY_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Postgres at {ADMIN_DSN} is required (TOLLWAY_REQUIRE_SERVICES=1): {e}")
        pytest.skip(f"Postgres at {ADMIN_DSN} is not reachable: {e}")
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_two_instances_share_one_postgres_ledger(fake: FakeProvider, tmp_path, pg_database: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cfg = standard_config(fake.url, store={"url": pg_database, "flush_interval_secs": 0.05})
    first = Tollway(tmp_path / "a", cfg)
    second = Tollway(tmp_path / "b", cfg)
    try:
        client = openai.OpenAI(base_url=first.url + "/v1", api_key=MASTER_KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}],
            extra_headers={"x-tollway-source": "pg-test"})
        trace = raw.headers["x-tollway-trace-id"]
        rec = first.record(trace)
        assert (rec["input_tokens"], rec["output_tokens"], rec["source"]) == (11, 7, "pg-test")
        assert Decimal(rec["cost_usd"]) == Decimal(raw.headers["x-tollway-cost-usd"]) > 0
        # the other instance reads the same ledger
        assert second.record(trace)["trace_id"] == trace
        status, stats = second.get("/v1/stats?source=pg-test")
        assert status == 200 and stats["totals"]["requests"] == 1
        assert not (tmp_path / "a" / ".tollway" / "tollway.db").exists()  # nothing went to SQLite
    finally:
        first.stop()
        second.stop()


def test_nul_in_a_slug_or_model_never_costs_a_record_on_postgres(fake: FakeProvider, tmp_path,
                                                                 pg_database: str) -> None:
    """Postgres refuses NUL in text: the values are stored with U+FFFD, every record lands,
    nothing is dead-lettered and no batch falls back to row-by-row writes."""
    tw = Tollway(tmp_path, standard_config(fake.url, store={"url": pg_database, "flush_interval_ms": 20}))
    try:
        traces = []
        for i in range(20):
            client = openai.OpenAI(base_url=f"{tw.url}/projects/team%00{i}/v1", api_key=MASTER_KEY, max_retries=0)
            with pytest.raises(openai.BadRequestError) as bad:  # no such slug: refused, and recorded
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
            traces.append(bad.value.response.headers["x-tollway-trace-id"])
            client = openai.OpenAI(base_url=f"{tw.url}/v1", api_key=MASTER_KEY, max_retries=0)
            with pytest.raises(openai.NotFoundError) as nf:
                client.chat.completions.create(model=f"gpt\x00{i}", messages=[{"role": "user", "content": "Hi"}])
            traces.append(nf.value.response.headers["x-tollway-trace-id"])
        assert tw.record(traces[0])["path"] == "/projects/team\ufffd0/v1/chat/completions"
        assert tw.record(traces[1])["model_requested"] == "gpt\ufffd0"
        for trace in traces:
            tw.record(trace)
        _, health = tw.get("/health")
        ledger = health["ledger"]
        assert (ledger["rejected"], ledger["batch_fallbacks"], ledger["spooled"]) == (0, 0, 0)
        assert not (tmp_path / ".tollway" / "spool" / "rejected.jsonl").exists()
    finally:
        tw.stop()


def test_nul_in_a_key_id_a_response_id_or_an_admin_filter_is_never_a_500_on_postgres(fake: FakeProvider, tmp_path,
                                                                           pg_database: str) -> None:
    """The Responses store and the admin API on Postgres, which refuses NUL even in a
    query: a key id with NUL stores its responses (and reads them back), an id with NUL is simply
    not found, an admin filter with NUL is a 400. (Bodies with NUL: tests/storage/test_bodies.py.)"""
    nul_key = "tw-key-with-a-nul-id"
    cfg = standard_config(fake.url, store={"url": pg_database, "flush_interval_ms": 20})
    cfg["keys"].append({"id": "odd\x00id", "key": nul_key})
    tw = Tollway(tmp_path, cfg)
    try:
        client = openai.OpenAI(base_url=f"{tw.url}/v1", api_key=nul_key, max_retries=0)
        first = client.responses.create(model="claude-haiku-4-5", input="Hi")  # translated: Tollway stores it
        second = client.responses.create(model="claude-haiku-4-5", input="Again", previous_response_id=first.id)
        assert client.responses.retrieve(second.id).id == second.id
        assert [i.type for i in client.responses.input_items.list(second.id)] == ["message"] * 3
        kept = client.responses.create(model="gpt-4o-mini", input="Hi")  # OpenAI keeps it; Tollway notes whose
        assert client.responses.retrieve(kept.id).id == kept.id
        other = openai.OpenAI(base_url=f"{tw.url}/v1", api_key=TEAM_KEY, max_retries=0)
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(kept.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="claude-haiku-4-5", input="x", previous_response_id="resp_\x00abc")
        for method, path in (("GET", "/v1/responses/resp_%00abc"), ("DELETE", "/v1/responses/resp_%00abc"),
                             ("GET", "/v1/responses/resp_%00abc/input_items")):
            req = urllib.request.Request(tw.url + path, method=method, headers={"Authorization": f"Bearer {MASTER_KEY}"})
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)
            assert e.value.code == 400 and json.loads(e.value.read())["error"]["type"] == "invalid_request_error"
        status, body = tw.get("/admin/audit?actor=%00")
        assert status == 400 and "NUL" in body["error"]["message"]
        assert "Internal" not in tw.log() and "Traceback" not in tw.log()
    finally:
        tw.stop()



@pytest.mark.parametrize("stream", [False, True])
def test_a_response_the_provider_keeps_is_only_its_keys_across_two_instances(
        fake: FakeProvider, tmp_path, pg_database: str, stream: bool) -> None:
    """Whose a response OpenAI keeps is noted in the shared store: the instance that relayed it
    and every other instance on the same Postgres refuse another key alike, before the provider
    is called, and a delete through one is seen by the other."""
    beta_key = "tw-team-beta-key"
    cfg = standard_config(fake.url, store={"url": pg_database, "flush_interval_ms": 20})
    cfg["keys"].append({"id": "team-beta", "key": beta_key})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Tollway(tmp_path / "a", cfg), Tollway(tmp_path / "b", cfg)
    try:
        def client(tw: Tollway, key: str) -> openai.OpenAI:
            return openai.OpenAI(base_url=f"{tw.url}/v1", api_key=key, max_retries=0)

        alpha_1, alpha_2, beta_2 = client(first, TEAM_KEY), client(second, TEAM_KEY), client(second, beta_key)
        if stream:
            with alpha_1.responses.stream(model="gpt-4o-mini", input="The secret word is heliotrope.") as s:
                rid = s.get_final_response().id
        else:
            rid = alpha_1.responses.create(model="gpt-4o-mini", input="The secret word is heliotrope.").id
        assert fake.requests[-1].path == "/v1/responses"  # the provider keeps it, not Tollway
        before = len(fake.requests)
        with pytest.raises(openai.NotFoundError):
            beta_2.responses.retrieve(rid)
        with pytest.raises(openai.NotFoundError):
            beta_2.responses.input_items.list(rid)
        with pytest.raises(openai.NotFoundError):
            beta_2.responses.delete(rid)
        with pytest.raises(openai.NotFoundError) as ei:
            beta_2.responses.create(model="gpt-4o-mini", previous_response_id=rid, input="What is the secret word?")
        assert ei.value.body["param"] == "previous_response_id"
        assert len(fake.requests) == before  # none of it reached the provider with Tollway's key

        assert alpha_2.responses.retrieve(rid).id == rid  # its own key, through the other instance
        alpha_2.responses.delete(rid)
        assert [r.method for r in fake.requests if r.path.startswith(f"/v1/responses/{rid}")] == ["GET", "DELETE"]
        with pytest.raises(openai.NotFoundError):  # forgotten in the shared store: the first instance knows
            alpha_1.responses.retrieve(rid)
        assert [r.method for r in fake.requests if r.path.startswith(f"/v1/responses/{rid}")] == ["GET", "DELETE"]
    finally:
        first.stop()
        second.stop()
