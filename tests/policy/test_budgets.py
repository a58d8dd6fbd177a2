"""Budgets on a live Tollway (in-process counters): reservations hold under concurrency, a
call is refused exactly when spent + reserved + its worst case is over the limit, the counter
equals the ledger to the nano-dollar, refusals never reach a provider, spend survives a restart."""

from __future__ import annotations

import concurrent.futures
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import TEAM_KEY, Tollway, anthropic_client, openai_client, standard_config
from tests.policy.support import EASY_PRICE, HELLO, admin, budget_of, eventually, ledger_sum
from tollway.estimate import prompt_tokens
from tollway.tokens import TokenCounter

TOKEN = Decimal("0.000001")  # EASY_PRICE: one token in or out


def fake_ratelimit_header() -> str:
    """What the fake provider sends, from its recorded OpenAI headers."""
    import json

    return json.loads((Path(__file__).parents[1] / "fixtures/openai/headers.json").read_text())[
        "x-ratelimit-limit-requests"]


def worst_case(messages: list[dict], max_tokens: int) -> Decimal:
    """What Tollway reserves: the prompt counted with the model's tokenizer, plus max_tokens."""
    n = prompt_tokens(TokenCounter(), "chat", "gpt-4o-mini", {"model": "gpt-4o-mini", "messages": messages})
    return (n + max_tokens) * TOKEN


def config(fake: FakeProvider, key_budget: str, **extra) -> dict:
    cfg = standard_config(fake.url, prices=[EASY_PRICE], **extra)
    cfg["keys"][0]["budget"] = key_budget
    return cfg


def test_concurrent_calls_never_overspend_and_the_counter_equals_the_ledger(fake: FakeProvider,
                                                                            tmp_path: Path) -> None:
    # the fake answers 11 input + 7 output tokens: 18 µUSD a call; each reserves 8 + 40 tokens
    tw = Tollway(tmp_path, config(fake, "0.0005/total"))
    try:
        slow = [{"role": "user", "content": "Hello [[delay:0.3]]"}]
        worst = worst_case(slow, 40)
        client = openai_client(tw, TEAM_KEY)

        def call(_: int) -> int:
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=slow, max_tokens=40)
                return 200
            except openai.RateLimitError as e:
                assert e.body["type"] == "budget_exceeded" and e.body["code"] == "key_budget_exceeded"
                return 429

        fake.clear()
        for _wave in range(3):
            with concurrent.futures.ThreadPoolExecutor(24) as pool:
                codes = list(pool.map(call, range(24)))
            assert set(codes) <= {200, 429}
        served = len(fake.requests)
        limit = Decimal("0.0005")
        assert served * 18 * TOKEN <= limit  # never spent more than the budget
        assert served >= int(limit / worst)  # and the first wave alone admitted what fitted
        tw_budget = budget_of(tw, "key", "team-alpha")

        def settled() -> bool:
            b = budget_of(tw, "key", "team-alpha")
            return b["reserved_usd"] == "0.000000000" and Decimal(b["spent_usd"]) == ledger_sum(tw, key_id="team-alpha")

        eventually(settled)
        b = budget_of(tw, "key", "team-alpha")
        assert Decimal(b["spent_usd"]) == served * 18 * TOKEN == ledger_sum(tw, key_id="team-alpha")
        assert tw_budget["limit_usd"] == "0.000500000"
    finally:
        tw.stop()


def test_refused_exactly_when_spent_plus_worst_case_is_over(fake: FakeProvider, tmp_path: Path) -> None:
    tw = Tollway(tmp_path, config(fake, "0.0001/day"))
    try:
        client = openai_client(tw, TEAM_KEY)
        worst, cost, limit = worst_case(HELLO, 10), 18 * TOKEN, Decimal("0.0001")
        spent = Decimal(0)
        fake.clear()
        while True:
            fits = spent + worst <= limit
            if not fits:
                with pytest.raises(openai.RateLimitError) as e:
                    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
                h = e.value.response.headers
                assert Decimal(h["x-tollway-budget-spent"]) == spent
                assert h["x-tollway-budget-limit"] == "0.000100000" and h["x-tollway-budget"] == "key:team-alpha/day"
                assert h["x-tollway-budget-reset"].endswith("T00:00:00Z") and int(h["retry-after"]) > 0
                assert "team-alpha" in e.value.message and "resets" in e.value.message
                break
            r = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
            assert Decimal(r.headers["x-tollway-budget-spent"]) == spent
            spent += cost
        assert len(fake.requests) == int((limit - worst) / cost) + 1  # the refused call never reached it
        # at the boundary: the largest max_tokens that fits the room left is admitted, one more is not
        room = int((limit - spent) / TOKEN) - prompt_tokens(TokenCounter(), "chat", "gpt-4o-mini",
                                                             {"messages": HELLO})
        assert room >= 1
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=room + 1)
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=room)
    finally:
        tw.stop()


def test_anthropic_route_gets_its_own_error_shape_and_streams_settle_on_tokens_seen(fake: FakeProvider,
                                                                                    tmp_path: Path) -> None:
    cfg = config(fake, "0.0002/month")
    cfg["prices"].append({"model": "claude-*", "input_per_mtok": "1", "output_per_mtok": "1"})
    tw = Tollway(tmp_path, cfg)
    try:
        oai = openai_client(tw, TEAM_KEY)
        # a stream broken off after two events: settled on what was seen, like the ledger
        with pytest.raises(openai.APIError):
            for _ in oai.chat.completions.create(model="gpt-4o-mini", max_tokens=20, stream=True,
                                                 messages=[{"role": "user", "content": "Hi [[reset_after:2]]"}]):
                pass
        claude = anthropic_client(tw, TEAM_KEY)
        while True:
            try:
                claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=30, messages=HELLO)
            except anthropic.RateLimitError as e:
                assert e.body == {"type": "error", "error": {"type": "budget_exceeded", "message": e.body["error"]
                                                             ["message"]}}
                assert "Budget exhausted" in e.body["error"]["message"]
                assert e.response.headers["x-tollway-budget-limit"] == "0.000200000"
                break
        eventually(lambda: Decimal(budget_of(tw, "key", "team-alpha")["spent_usd"])
                   == ledger_sum(tw, key_id="team-alpha") and budget_of(tw, "key", "team-alpha")["reserved_usd"]
                   == "0.000000000")
        assert any(r["tokens_estimated"] for r in tw.records(key_id="team-alpha"))
    finally:
        tw.stop()


def test_unpriced_model_under_a_budget(fake: FakeProvider, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    refuse = Tollway(tmp_path / "a", config(fake, "5/month"))
    try:
        with pytest.raises(openai.BadRequestError) as e:
            openai_client(refuse, TEAM_KEY).chat.completions.create(model="gpt-4.1-nobody-prices-me",
                                                                    messages=HELLO)
        assert "[[prices]]" in e.value.message and "gpt-4.1-nobody-prices-me" in e.value.message
        assert e.value.body["code"] == "model_unpriced"
    finally:
        refuse.stop()
    allow = Tollway(tmp_path / "b", config(fake, "5/month", budgets={"unpriced": "allow"}))
    try:
        r = openai_client(allow, TEAM_KEY).chat.completions.with_raw_response.create(
            model="gpt-4.1-nobody-prices-me", messages=HELLO)
        assert r.status_code == 200
    finally:
        allow.stop()


def test_spend_survives_a_restart(fake: FakeProvider, tmp_path: Path) -> None:
    cfg = config(fake, "0.0001/week")
    tw = Tollway(tmp_path, cfg)
    try:
        client = openai_client(tw, TEAM_KEY)
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
        eventually(lambda: Decimal(budget_of(tw, "key", "team-alpha")["spent_usd"]) == 54 * TOKEN)
    finally:
        tw.stop()
    again = Tollway(tmp_path, cfg)
    try:
        b = budget_of(again, "key", "team-alpha")
        assert Decimal(b["spent_usd"]) == 54 * TOKEN == ledger_sum(again, key_id="team-alpha")
        client = openai_client(again, TEAM_KEY)
        for _ in range(2):  # 54 + 18 and 72 + 18 fit in 100 µUSD; 90 + 18 does not
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    finally:
        again.stop()


def test_team_project_and_customer_budgets_each_apply(fake: FakeProvider, tmp_path: Path) -> None:
    cfg = standard_config(fake.url, prices=[EASY_PRICE],
                          teams=[{"id": "alpha-team", "budget": "0.00005/month"}],
                          projects=[{"id": "beta", "budget": "0.00003/month"}],
                          customers=[{"id": "acme", "budget": "0.00003/day"}])
    cfg["keys"].append({"id": "member", "key": "tw-member-key-1", "team": "alpha-team"})
    cfg["keys"].append({"id": "roamer", "key": "tw-roamer-key-1"})  # bound to no project: may name any
    tw = Tollway(tmp_path, cfg)
    try:
        member = openai_client(tw, "tw-member-key-1")
        member.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)  # 18 of 50 µUSD
        with pytest.raises(openai.RateLimitError) as e:  # 18 spent + 8 + 30 reserved > 50
            member.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=30)
        assert e.value.body["code"] == "team_budget_exceeded" and "alpha-team" in e.value.message
        team = openai_client(tw, "tw-roamer-key-1")
        team.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5,
                                     extra_headers={"x-tollway-project": "beta"})
        with pytest.raises(openai.RateLimitError) as e:
            team.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10,
                                         extra_headers={"x-tollway-project": "beta"})
        assert e.value.body["code"] == "project_budget_exceeded"
        team.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5,
                                     extra_headers={"x-tollway-customer": "acme"})
        with pytest.raises(openai.RateLimitError) as e:
            team.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10,
                                         extra_headers={"x-tollway-customer": "acme"})
        assert e.value.body["code"] == "customer_budget_exceeded" and "acme" in e.value.message
        # other projects and customers are not limited
        team.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10,
                                     extra_headers={"x-tollway-customer": "other", "x-tollway-project": "gamma"})
        eventually(lambda: Decimal(budget_of(tw, "team", "alpha-team")["spent_usd"])
                   == ledger_sum(tw, team="alpha-team") == 18 * TOKEN)
    finally:
        tw.stop()


def test_no_limits_no_stage(fake: FakeProvider, tollway: Tollway) -> None:
    """Without limits anywhere, answers carry no budget headers, and the provider's own
    x-ratelimit-* headers pass through untouched (the stage is not there)."""
    r = openai_client(tollway, TEAM_KEY).chat.completions.with_raw_response.create(model="gpt-4o-mini",
                                                                                  messages=HELLO)
    assert not any(h.startswith("x-tollway-budget") for h in r.headers)
    assert r.headers.get("x-ratelimit-limit-requests") == fake_ratelimit_header()
    status, _ = admin(tollway, "GET", "/admin/budgets")
    assert status == 200


def test_a_budget_set_mid_window_counts_the_windows_spend_and_the_change_is_audited(fake: FakeProvider,
                                                                                   tmp_path: Path) -> None:
    tw = Tollway(tmp_path, standard_config(fake.url, prices=[EASY_PRICE]))
    try:
        status, k = admin(tw, "POST", "/admin/keys", {"name": "late-budget"})
        client = openai_client(tw, k["key"])
        for _ in range(3):  # 18 µUSD each
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        eventually(lambda: len(tw.records(key_id=k["id"])) == 3)
        # a PATCH that sets budgets answers (it used to wait on SQLite's lock inside its own
        # transaction for 5 s, then fail with a 500)
        status, body = admin(tw, "PATCH", f"/admin/keys/{k['id']}", {"budgets": ["0.00005/month"], "rpm": 100})
        assert status == 200, body
        # this month's spend, made before the budget existed, counts
        eventually(lambda: budget_of(tw, "key", k["id"])["spent_usd"] == "0.000054000")
        eventually(lambda: _refused(client))
        audit = admin(tw, "GET", "/admin/audit?limit=10")[1]["data"]
        change = next(e for e in audit if e["action"] == "key.update")
        assert change["after"]["budgets"] == ["0.00005/month"] and change["after"]["limits"]["rpm"] == 100
        assert change["before"]["budgets"] == [] and change["before"]["limits"]["rpm"] is None
    finally:
        tw.stop()


def _refused(client: openai.OpenAI) -> bool:
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        return False
    except openai.RateLimitError as e:
        return e.body["code"] == "key_budget_exceeded"
