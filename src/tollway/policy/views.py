"""JSON views of keys, groups and budgets for the admin API and the CLI (never a secret:
a key shows as its public id and `tw-<id>-…`, credentials as the provider kinds that have one)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tollway.policy.keys import key_prefix
from tollway.policy.model import Budget
from tollway.storage.money import decimal_from_nanousd, format_usd

if TYPE_CHECKING:
    from tollway.counters.base import CounterStore

# budgets -> {budget id: (spent, reserved) nano-USD in the current window}
SpendSource = Callable[[list[Budget]], Awaitable[dict[str, tuple[int, int]]]]


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usd(nanos: int) -> str:
    return format_usd(decimal_from_nanousd(nanos)) or "0"


def counters_spend(counters: "CounterStore") -> SpendSource:
    async def spend(budgets: list[Budget]) -> dict[str, tuple[int, int]]:
        from tollway.counters.base import CountersUnavailable

        now = time.time()
        try:
            states = await counters.budget_states([b.current(now)[1] for b in budgets])
        except CountersUnavailable:
            return {}  # listed without spend while the shared counters are unreachable
        return {b.id: s for b, s in zip(budgets, states, strict=True)}
    return spend


def budget_from_row(row: dict[str, Any]) -> Budget:
    return Budget(row["id"], row["scope"], row["target"], int(row["limit_nanousd"]), row["window"], "store")


def budget_view(b: Budget, spent: tuple[int, int] | None, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    win, _ = b.current(now)
    out: dict[str, Any] = {"id": b.id, "scope": b.scope, "target": b.target, "limit_usd": usd(b.limit),
                           "window": b.window, "source": b.source, "read_only": b.source == "config",
                           "window_start": iso(win.start) if win.start > 0 else None, "resets_at": win.resets_at()}
    if spent is not None:
        s, r = spent
        out.update(spent_usd=usd(s), reserved_usd=usd(r), remaining_usd=usd(max(0, b.limit - s - r)))
    return out


def key_state(k: dict[str, Any], now: float) -> str:
    if k.get("revoked_at") is not None:
        return "revoked"
    if k.get("expires_at") is not None and k["expires_at"] <= now:
        return "expired"
    return "active"


def key_view(k: dict[str, Any], budgets: list[dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """`k`: a store row or a config key, normalised to the store's field names."""
    now = time.time() if now is None else now
    rotating = k.get("prev_valid_until")
    return {
        "id": k["id"], "name": k.get("name"), "key_prefix": key_prefix(k["id"]) if k["source"] == "store" else None,
        "source": k["source"], "read_only": k["source"] == "config", "state": key_state(k, now),
        "roles": sorted(k.get("roles") or ["user"]), "team": k.get("team"), "project": k.get("project"),
        "customer": k.get("customer"),
        "limits": {"rpm": k.get("rpm"), "tpm": k.get("tpm"), "max_concurrency": k.get("max_concurrency"),
                   "queue_timeout_ms": k.get("queue_timeout_ms") or 0, "models": k.get("models"),
                   "max_tokens": k.get("max_tokens"), "max_body_bytes": k.get("max_body_bytes")},
        "budgets": budgets,
        "credentials": sorted(k.get("credentials") or {}),
        "expires_at": iso(k.get("expires_at")), "revoked_at": iso(k.get("revoked_at")),
        "old_secret_valid_until": iso(rotating) if rotating and rotating > now else None,
        "created_at": iso(k.get("created_at")), "updated_at": iso(k.get("updated_at")),
    }


def group_view(kind: str, g: dict[str, Any], budgets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": g["id"], "kind": kind, "name": g.get("name"), "source": g["source"],
            "read_only": g["source"] == "config", "rpm": g.get("rpm"), "tpm": g.get("tpm"), "budgets": budgets,
            "created_at": iso(g.get("created_at")), "updated_at": iso(g.get("updated_at"))}
