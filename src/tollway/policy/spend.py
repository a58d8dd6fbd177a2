"""Spend per budget window from the ledger: how counters are rebuilt at start-up (and how the
CLI reports spend when it works on the store directly).

A call belongs to the window holding its start time (`usage_records.ts`); the policy stage
reserves against the same window, so a counter and the ledger agree to the nano-dollar.
"""

from __future__ import annotations

import time
from collections import defaultdict

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.policy.model import Budget
from tollway.storage.schema import usage_records

_COLUMN = {"key": usage_records.c.key_id, "team": usage_records.c.team, "project": usage_records.c.project,
           "customer": usage_records.c.customer}


async def ledger_spend(engine: AsyncEngine, budgets: list[Budget], now: float | None = None) -> dict[str, int]:
    """budget id -> nano-USD spent in its current window, one query per (scope, window kind)."""
    now = time.time() if now is None else now
    groups: dict[tuple[str, str], list[Budget]] = defaultdict(list)
    for b in budgets:
        groups[(b.scope, b.window)].append(b)
    out: dict[str, int] = {b.id: 0 for b in budgets}
    async with engine.connect() as conn:
        for (scope, _window), bs in groups.items():
            col = _COLUMN[scope]
            win, _ = bs[0].current(now)
            targets = sorted({b.target for b in bs})
            sums: dict[str, int] = {}
            for i in range(0, len(targets), 500):
                cond = [col.in_(targets[i:i + 500]), usage_records.c.cost_nanousd.is_not(None)]
                if win.start > 0:
                    cond += [usage_records.c.ts >= win.start, usage_records.c.ts < win.end]
                q = select(col, func.sum(usage_records.c.cost_nanousd)).where(and_(*cond)).group_by(col)
                for target, total in await conn.execute(q):
                    sums[target] = int(total or 0)
            for b in bs:
                out[b.id] = sums.get(b.target, 0)
    return out
