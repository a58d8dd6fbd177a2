"""Several Tollway processes sharing Redis counters (and a Postgres store): the combined RPM and
a budget hold across them, the budget counter equals the ledger, a key revoked on one instance
stops on the other within a second, `--workers 2` shares its limits, and an unreachable Redis
fails closed or open as configured, visibly on /health."""

from __future__ import annotations

import concurrent.futures
import time
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import TEAM_KEY, Tollway, openai_client, standard_config
from tests.policy.support import EASY_PRICE, HELLO, admin, budget_of, eventually, ledger_sum
from tests.services import REDIS_URL, pg_store_url, redis_prefix  # noqa: F401  (fixtures)


def shared_config(fake: FakeProvider, prefix: str, store_url: str | None = None, **key: object) -> dict:
    cfg = standard_config(fake.url, prices=[EASY_PRICE], redis={"url": REDIS_URL, "prefix": prefix})
    if store_url:
        cfg["store"] = {"url": store_url, "flush_interval_secs": 0.05}
    cfg["keys"][0].update(key)
    return cfg


def _call(client: openai.OpenAI, messages=HELLO, max_tokens: int | None = None) -> int:
    try:
        kw = {"max_tokens": max_tokens} if max_tokens else {}
        client.chat.completions.create(model="gpt-4o-mini", messages=messages, **kw)
        return 200
    except openai.RateLimitError:
        return 429


def test_two_instances_hold_one_rpm_and_one_budget(fake: FakeProvider, tmp_path: Path, redis_prefix: str,  # noqa: F811
                                                   pg_store_url: str) -> None:  # noqa: F811
    cfg = shared_config(fake, redis_prefix, pg_store_url, rpm=30, budget="0.0004/month")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Tollway(tmp_path / "a", cfg)
    b = Tollway(tmp_path / "b", cfg)
    try:
        clients = [openai_client(a, TEAM_KEY), openai_client(b, TEAM_KEY)]
        slow = [{"role": "user", "content": "Hello [[delay:0.2]]"}]
        fake.clear()
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda i: _call(clients[i % 2], slow, max_tokens=10), range(48)))
        elapsed = time.monotonic() - t0
        served = len(fake.requests)
        assert codes.count(200) == served
        # 18 µUSD per call against 400: at most 22 calls' worth of budget, whatever the RPM allows
        assert served * 18 <= 400
        assert served <= 30 + int(elapsed * 30 / 60) + 1
        assert codes.count(429) == 48 - served
        for tw in (a, b):
            eventually(lambda tw=tw: budget_of(tw, "key", "team-alpha")["reserved_usd"] == "0.000000000")
        spent = Decimal(budget_of(a, "key", "team-alpha")["spent_usd"])
        assert spent == Decimal(budget_of(b, "key", "team-alpha")["spent_usd"]) == served * 18 * Decimal("0.000001")
        eventually(lambda: ledger_sum(a, key_id="team-alpha") == spent)
        # RPM: the two together, not each
        rpm_codes = [_call(clients[i % 2]) for i in range(12)]
        assert rpm_codes.count(200) <= 31 - 22 + 3  # what the budget and the shared RPM still allow
    finally:
        a.stop()
        b.stop()
    again = Tollway(tmp_path / "a", cfg)  # a restart reads the spend back (Redis and the ledger agree)
    try:
        assert Decimal(budget_of(again, "key", "team-alpha")["spent_usd"]) == spent
    finally:
        again.stop()


def test_combined_rpm_across_instances(fake: FakeProvider, tmp_path: Path, redis_prefix: str) -> None:  # noqa: F811
    cfg = shared_config(fake, redis_prefix, rpm=20)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Tollway(tmp_path / "a", cfg)
    b = Tollway(tmp_path / "b", cfg)
    try:
        clients = [openai_client(a, TEAM_KEY), openai_client(b, TEAM_KEY)]
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(lambda i: _call(clients[i % 2]), range(60)))
        elapsed = time.monotonic() - t0
        assert 20 <= codes.count(200) <= 20 + int(elapsed * 20 / 60) + 1
    finally:
        a.stop()
        b.stop()


def test_revoked_on_one_instance_stops_on_the_other_within_a_second(fake: FakeProvider, tmp_path: Path,
                                                                    pg_store_url: str) -> None:  # noqa: F811
    cfg = standard_config(fake.url, store={"url": pg_store_url, "flush_interval_secs": 0.05})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Tollway(tmp_path / "a", cfg)
    b = Tollway(tmp_path / "b", cfg)
    try:
        k = admin(a, "POST", "/admin/keys", {"name": "roaming"})[1]
        eventually(lambda: _works(b, k["key"]), within=1.0)
        assert admin(a, "POST", f"/admin/keys/{k['id']}/revoke")[0] == 200
        t0 = time.monotonic()
        eventually(lambda: not _works(b, k["key"]), within=1.0, every=0.02)
        assert time.monotonic() - t0 < 1.0
    finally:
        a.stop()
        b.stop()


def _works(tw: Tollway, key: str) -> bool:
    try:
        openai_client(tw, key).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        return True
    except openai.AuthenticationError:
        return False


def test_workers_share_the_limits(fake: FakeProvider, tmp_path: Path, redis_prefix: str) -> None:  # noqa: F811
    tw = Tollway(tmp_path, shared_config(fake, redis_prefix, rpm=15), extra_args=["--workers", "2"])
    try:
        t0 = time.monotonic()
        client = openai_client(tw, TEAM_KEY)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: _call(client), range(40)))
        assert 15 <= codes.count(200) <= 15 + int((time.monotonic() - t0) * 15 / 60) + 1
    finally:
        tw.stop()


@pytest.mark.parametrize("on_error", ["fail_closed", "fail_open"])
def test_unreachable_redis(fake: FakeProvider, tmp_path: Path, on_error: str) -> None:
    cfg = standard_config(fake.url, redis={"url": "redis://127.0.0.1:1/0", "on_error": on_error, "timeout_ms": 200})
    cfg["keys"].append({"id": "limited", "key": "tw-limited", "rpm": 100})
    tw = Tollway(tmp_path, cfg)
    try:
        health = tw.get("/health", key=None)[1]
        assert health["status"] == "degraded" and health["counters"]["ok"] is False
        assert health["counters"]["on_error"] == on_error and "redis://" not in str(health)
        limited = openai_client(tw, "tw-limited")
        if on_error == "fail_closed":
            with pytest.raises(openai.APIStatusError) as e:
                limited.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            assert e.value.status_code == 503 and e.value.body["code"] == "limits_unavailable"
        else:
            assert _call(limited) == 200
        assert _call(openai_client(tw, TEAM_KEY)) == 200  # a key without limits never needs the counters
        assert "Redis is unreachable" in tw.log()
    finally:
        tw.stop()
