"""Helpers shared by the provider-kind tests: a Tollway per module on the shared fake provider."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any


from tests.fakes.provider import FakeProvider, ReceivedRequest
from tests.harness import MASTER_KEY


def nonce() -> str:
    """A marker to find this test's upstream request among everything the shared fake saw."""
    return f"[n {uuid.uuid4().hex[:12]}]"


def upstream(fake: FakeProvider, marker: str) -> list[ReceivedRequest]:
    return [r for r in fake.requests if marker in r.text]


def only_upstream(fake: FakeProvider, marker: str) -> ReceivedRequest:
    found = upstream(fake, marker)
    assert len(found) == 1, [r.path for r in found]
    return found[0]


def cost(input_tokens: int, output_tokens: int, price: tuple[str, str]) -> Decimal:
    return (Decimal(price[0]) * input_tokens + Decimal(price[1]) * output_tokens) / Decimal(1_000_000)


def base_config(providers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "server": {"master_key": MASTER_KEY, "shutdown_grace_secs": 5, "read_timeout_secs": 5,
                   "connect_timeout_secs": 2},
        "store": {"flush_interval_secs": 0.05},
        "providers": providers,
    }
    cfg.update(extra)
    return cfg
