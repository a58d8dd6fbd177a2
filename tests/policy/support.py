"""Helpers for the policy tests: the admin API, ledger sums, waiting for background work."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tests.harness import MASTER_KEY, Tollway

HELLO = [{"role": "user", "content": "Hello"}]
# Prices that make arithmetic easy: 1 USD per million tokens in and out (0.000001 per token).
EASY_PRICE = {"model": "gpt-4o-mini", "input_per_mtok": "1", "output_per_mtok": "1"}


def admin(tw: Tollway, method: str, path: str, body: Any = None, key: str | None = MASTER_KEY) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(tw.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def all_records(tw: Tollway, **filters: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {**filters, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        status, body = tw.get("/v1/records?" + "&".join(f"{k}={v}" for k, v in q.items()))
        assert status == 200, body
        out += body["data"]
        cursor = body.get("next_cursor")
        if not cursor:
            return out


def ledger_sum(tw: Tollway, **filters: Any) -> Decimal:
    return sum((Decimal(r["cost_usd"]) for r in all_records(tw, **filters) if r["cost_usd"] is not None), Decimal(0))


def budget_of(tw: Tollway, scope: str, target: str) -> dict[str, Any]:
    status, body = admin(tw, "GET", f"/admin/budgets?scope={scope}&target={target}")
    assert status == 200 and len(body["data"]) == 1, body
    return body["data"][0]


def eventually(check: Callable[[], bool], within: float = 5.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s")
        time.sleep(every)
