"""Reservations and slots are released on every way a call can end: finished, streamed to the end,
a client that hangs up mid-stream, a provider error, a provider that resets the stream, a
provider that hangs past the timeout. And a mixed load of all of those through three Tollway
instances sharing Redis (and a Postgres store) never spends past the budget, and leaves the
counter equal to the ledger to the nano-dollar."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import TEAM_KEY, Tollway, openai_client, standard_config
from tests.policy.support import EASY_PRICE, HELLO, budget_of, eventually, ledger_sum
from tests.services import REDIS_URL, pg_store_url, redis_prefix  # noqa: F401  (fixtures)

ZERO = "0.000000000"


def say(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def one_call(client: openai.OpenAI, kind: str) -> str:
    """One call of a kind; what the client saw."""
    try:
        if kind == "plain":
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
        elif kind == "stream":
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10, stream=True):
                pass
        elif kind == "hangup":  # the client reads one chunk and goes away
            with client.chat.completions.create(model="gpt-4o-mini", messages=say("Hello [[chunk_delay:0.15]]"),
                                                max_tokens=10, stream=True) as s:
                next(iter(s))
            return "hangup"
        elif kind == "fault":
            client.chat.completions.create(model="gpt-4o-mini", messages=say("Hello [[fault:500]]"), max_tokens=10)
        elif kind == "reset":
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=say("Hello [[reset_after:2]]"),
                                                    max_tokens=10, stream=True):
                pass
        return "ok"
    except openai.RateLimitError as e:
        return "budget" if e.body and e.body.get("type") == "budget_exceeded" else "429"
    except openai.InternalServerError:
        return "5xx"
    except (openai.APIConnectionError, openai.APIError):
        return "broken"


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url, prices=[EASY_PRICE], budgets={"lease_secs": 300})
    cfg["server"]["read_timeout_secs"] = 2
    cfg["keys"][0].update(budget="5/month", max_concurrency=1)
    t = Tollway(tmp_path_factory.mktemp("exit-paths"), cfg)
    yield t
    t.stop()


@pytest.mark.parametrize("kind", ["plain", "stream", "hangup", "fault", "reset", "hang"])
def test_every_exit_releases_the_reservation_and_the_slot(tw: Tollway, fake: FakeProvider, kind: str) -> None:
    client = openai_client(tw, TEAM_KEY)
    spent_before = Decimal(budget_of(tw, "key", "team-alpha")["spent_usd"])
    if kind == "hang":  # the provider never answers: 504 after read_timeout_secs
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="gpt-4o-mini", messages=say("Hello [[hang]]"), max_tokens=10)
        assert e.value.status_code == 504
    else:
        assert one_call(client, kind) in ("ok", "hangup", "5xx", "broken")
    # the lease is 300 s: only the call's own end can have released these
    eventually(lambda: budget_of(tw, "key", "team-alpha")["reserved_usd"] == ZERO, within=3)
    # max_concurrency = 1: the slot is free again at once
    assert one_call(client, "plain") == "ok"
    eventually(lambda: budget_of(tw, "key", "team-alpha")["reserved_usd"] == ZERO, within=3)
    spent = Decimal(budget_of(tw, "key", "team-alpha")["spent_usd"])
    if kind in ("fault", "hang"):  # nothing was produced: only the second call is charged
        assert spent - spent_before == Decimal("0.000018")
    eventually(lambda: ledger_sum(tw, key_id="team-alpha") == Decimal(budget_of(tw, "key", "team-alpha")["spent_usd"]))


def test_mixed_load_through_three_instances_never_overspends(fake: FakeProvider, tmp_path: Path,
                                                             redis_prefix: str, pg_store_url: str) -> None:  # noqa: F811
    limit = Decimal("0.0005")
    cfg = standard_config(fake.url, prices=[EASY_PRICE], redis={"url": REDIS_URL, "prefix": redis_prefix},
                          budgets={"lease_secs": 300})
    cfg["store"] = {"url": pg_store_url, "flush_interval_secs": 0.05}
    cfg["keys"][0].update(budget=f"{limit}/total")
    nodes = []
    for name in "abc":
        (tmp_path / name).mkdir()
        nodes.append(Tollway(tmp_path / name, cfg))
    try:
        clients = [openai_client(n, TEAM_KEY) for n in nodes]
        kinds = ["plain", "stream", "hangup", "fault", "reset"]
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            seen = list(pool.map(lambda i: one_call(clients[i % 3], kinds[i % 5]), range(150)))
        assert "429" not in seen and seen.count("budget") > 0, seen
        for n in nodes:
            eventually(lambda n=n: budget_of(n, "key", "team-alpha")["reserved_usd"] == ZERO, within=5)
        spent = Decimal(budget_of(nodes[0], "key", "team-alpha")["spent_usd"])
        assert 0 < spent <= limit
        assert all(Decimal(budget_of(n, "key", "team-alpha")["spent_usd"]) == spent for n in nodes)
        # the counter is the ledger, to the nano-dollar, hang-ups and resets included
        eventually(lambda: ledger_sum(nodes[1], key_id="team-alpha") == spent, within=10)
        # and what is left is refused only if this call's worst case does not fit
        left = limit - spent
        outcome = one_call(clients[2], "plain")
        worst = Decimal("0.000021")  # 11 input tokens counted locally + max_tokens 10, at 1 USD per million
        assert outcome == ("ok" if worst <= left else "budget"), (outcome, left)
    finally:
        for n in nodes:
            n.stop()


def test_max_concurrency_and_its_queue_hold_across_instances(fake: FakeProvider, tmp_path: Path,
                                                            redis_prefix: str) -> None:  # noqa: F811
    cfg = standard_config(fake.url, redis={"url": REDIS_URL, "prefix": redis_prefix})
    cfg["keys"][0].update(max_concurrency=2, queue_timeout_ms=20_000)
    nodes = []
    for name in "ab":
        (tmp_path / name).mkdir()
        nodes.append(Tollway(tmp_path / name, cfg))
    try:
        clients = [openai_client(n, TEAM_KEY) for n in nodes]
        fake.clear()
        slow = say("Hello [[delay:0.4]]")
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            done = list(pool.map(lambda i: clients[i % 2].chat.completions.create(model="gpt-4o-mini", messages=slow),
                                 range(10)))
        assert len(done) == 10  # every one waited for its turn, none was refused
        # never more than two at the provider at once: each answer takes 0.4 s from its arrival, and
        # a third call can only start once one of the two before it has ended
        arrivals = sorted(r.received_at for r in fake.requests)
        assert len(arrivals) == 10
        assert all(arrivals[i + 2] - arrivals[i] >= 0.4 for i in range(8)), arrivals
    finally:
        for n in nodes:
            n.stop()


def test_many_async_clients_hold_every_scopes_budget_across_instances(fake: FakeProvider, tmp_path: Path,
                                                                       redis_prefix: str,  # noqa: F811
                                                                       pg_store_url: str) -> None:  # noqa: F811
    import asyncio

    limits = {("team", "platform"): Decimal("0.0006"), ("project", "alpha"): Decimal("0.0004"),
              ("project", "beta"): Decimal("0.0003"), ("customer", "acme"): Decimal("0.0002")}
    cfg = standard_config(fake.url, prices=[EASY_PRICE], redis={"url": REDIS_URL, "prefix": redis_prefix})
    cfg["store"] = {"url": pg_store_url, "flush_interval_secs": 0.05}
    cfg["teams"] = [{"id": "platform", "budget": f"{limits[('team', 'platform')]}/day"}]
    cfg["projects"] = [{"id": p, "budget": f"{limits[('project', p)]}/week"} for p in ("alpha", "beta")]
    cfg["customers"] = [{"id": "acme", "budget": f"{limits[('customer', 'acme')]}/month"}]
    cfg["keys"] = [{"id": "svc", "key": "tw-svc-key-for-many-clients", "team": "platform"}]
    nodes = []
    for name in "ab":
        (tmp_path / name).mkdir()
        nodes.append(Tollway(tmp_path / name, cfg))

    async def load() -> list[int]:
        clients = [openai.AsyncOpenAI(base_url=n.url + "/v1", api_key="tw-svc-key-for-many-clients", max_retries=0,
                                      timeout=30) for n in nodes]

        async def one(i: int) -> int:
            h = {"x-tollway-project": "alpha" if i % 3 else "beta"}
            if i % 4 == 0:
                h["x-tollway-customer"] = "acme"
            try:
                if i % 2:
                    await clients[i % 2].chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10,
                                                                 extra_headers=h)
                else:
                    stream = await clients[i % 2].chat.completions.create(
                        model="gpt-4o-mini", messages=HELLO, max_tokens=10, stream=True, extra_headers=h)
                    async for _ in stream:
                        pass
                return 200
            except openai.RateLimitError as e:
                assert e.body["type"] == "budget_exceeded", e.body
                return 429

        try:
            return await asyncio.gather(*(one(i) for i in range(200)))
        finally:
            for c in clients:
                await c.close()

    try:
        codes = asyncio.run(load())
        assert codes.count(200) > 0 and codes.count(429) > 0
        for n in nodes:
            eventually(lambda n=n: all(budget_of(n, s, t)["reserved_usd"] == ZERO for s, t in limits), within=5)
        for (scope, target), limit in limits.items():
            spent = Decimal(budget_of(nodes[0], scope, target)["spent_usd"])
            assert spent <= limit, (scope, target, spent)
            assert Decimal(budget_of(nodes[1], scope, target)["spent_usd"]) == spent
            eventually(lambda f={scope: target}, want=spent: ledger_sum(nodes[1], **f) == want, within=10)
    finally:
        for n in nodes:
            n.stop()


def test_redis_lost_and_back_fails_closed_then_recovers_by_itself(fake: FakeProvider, tmp_path: Path,
                                                                  redis_prefix: str) -> None:  # noqa: F811
    from urllib.parse import urlparse

    from tests.fakes.tcp_proxy import ThreadedTcpProxy

    target = urlparse(REDIS_URL)
    proxy = ThreadedTcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    cfg = standard_config(fake.url, prices=[EASY_PRICE],
                          redis={"url": f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}", "prefix": redis_prefix,
                                 "on_error": "fail_closed", "timeout_ms": 300})
    cfg["keys"][0].update(budget="1/month", rpm=1000)
    tw = Tollway(tmp_path, cfg)
    try:
        client = openai_client(tw, TEAM_KEY)
        assert one_call(client, "plain") == "ok"
        eventually(lambda: budget_of(tw, "key", "team-alpha")["spent_usd"] == "0.000018000")
        proxy.down()

        def refused() -> bool:
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
                return False
            except openai.APIStatusError as e:
                return e.status_code == 503 and e.body["code"] == "limits_unavailable"
        eventually(refused, within=10)
        eventually(lambda: tw.get("/health", key=None)[1]["counters"]["ok"] is False, within=10)
        proxy.restore()
        # back on its own: calls pass again, /health is ok, and the spend Redis held is still there
        eventually(lambda: one_call(client, "plain") == "ok", within=15, every=0.3)
        eventually(lambda: tw.get("/health", key=None)[1]["counters"]["ok"] is True, within=10)
        eventually(lambda: budget_of(tw, "key", "team-alpha")["spent_usd"] == "0.000036000")
        assert budget_of(tw, "key", "team-alpha")["reserved_usd"] == ZERO
    finally:
        tw.stop()
        proxy.close()
