"""`GET /v1/guard`: what the guard found, per UTC day: finding types and counts in requests and
answers, and what was done (requests redacted / forwarded / refused, answers logged / redacted /
blocked). Read from the records' `guard_findings` (types and counts, never values) through a
partial index on the calls that have any, so the calls without findings are never read; it
covers the records still stored (retention deletes older ones)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.rows import iso_utc
from tollway.storage.schema import usage_records as t

DAY = 86400
GUARD_FILTERS = ("project", "source", "customer", "key_id", "team")


class _Day:
    __slots__ = ("calls", "request", "response", "request_actions", "response_actions")

    def __init__(self) -> None:
        self.calls = 0
        self.request: Counter[str] = Counter()
        self.response: Counter[str] = Counter()
        self.request_actions: Counter[str] = Counter()
        self.response_actions: Counter[str] = Counter()

    def add(self, doc: dict[str, Any]) -> None:
        self.calls += 1
        self.request.update(doc.get("request") or {})
        self.response.update(doc.get("response") or {})
        if doc.get("request_action"):
            self.request_actions[doc["request_action"]] += 1
        if doc.get("response_action"):
            self.response_actions[doc["response_action"]] += 1

    def merge(self, o: "_Day") -> None:
        self.calls += o.calls
        for a in ("request", "response", "request_actions", "response_actions"):
            getattr(self, a).update(getattr(o, a))

    def entry(self) -> dict[str, Any]:
        def ordered(c: Counter[str]) -> dict[str, int]:
            return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
        # blocked: requests refused by the compliance gate and answers withheld; redacted: either side
        return {"calls": self.calls, "request_findings": ordered(self.request),
                "response_findings": ordered(self.response), "request_actions": ordered(self.request_actions),
                "response_actions": ordered(self.response_actions),
                "blocked": self.request_actions["refused"] + self.response_actions["blocked"],
                "redacted": self.request_actions["redacted"] + self.response_actions["redacted"]}


async def guard_stats(engine: AsyncEngine, *, since: float | None = None, until: float | None = None,
                      **filters: str | None) -> dict[str, Any]:
    """Totals and one entry per UTC day with findings (in time order)."""
    q = select(t.c.ts, t.c.guard_findings).where(t.c.guard_findings.is_not(None))
    if since is not None:
        q = q.where(t.c.ts >= since)
    if until is not None:
        q = q.where(t.c.ts < until)
    for name in GUARD_FILTERS:
        value = filters.get(name)
        if value is not None:
            q = q.where(t.c[name] == value)
    days: dict[int, _Day] = {}
    async with engine.connect() as conn:
        for ts, raw in await conn.execute(q):
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(doc, dict):
                continue
            day = int(ts // DAY) * DAY
            got = days.get(day)
            if got is None:
                got = days[day] = _Day()
            got.add(doc)
    total = _Day()
    for d in days.values():
        total.merge(d)
    return {"since": since, "until": until, "totals": total.entry(),
            "days": [{"time": iso_utc(k), "ts": k, **days[k].entry()} for k in sorted(days)]}
