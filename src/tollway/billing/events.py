"""The billing event of a usage record, in a sink's format.

An event exists only for a record that carries a customer and something to bill (tokens or
cost). Its id is `<trace_id>:<sink id>`: stable across retries, restarts and spool replays,
so a receiver that counts each id once counts each call once.

Formats:
- `tollway`: `{"id", "type": "usage", "metric", "customer", "key_id", "project", "source",
  "model", "provider", "input_tokens", "output_tokens", "cached_tokens",
  "cache_creation_tokens", "reasoning_tokens", "total_tokens", "cost_usd" (decimal string or
  null), "trace_id", "time" (ISO 8601), "ts"}`
- `stripe_meter`: Stripe's meter-event shape `{"event_name", "identifier", "timestamp",
  "payload": {"stripe_customer_id", "value"}}` (`value` a decimal string, as Stripe returns it).

Cost: events are built by the ledger's background writer, on the proxy's core, so building
one is kept to a dict and one orjson call: what a sink needs is read from its settings once
(`SinkPlan`), cost is formatted from integer nano-USD with integer arithmetic, and the time
string reuses its seconds part while records arrive within the same second (`Clock`); both
give exactly what `storage.money` and `storage.rows.iso_utc` give (tests/billing/test_events.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from tollway.config import BillingSinkSettings
from tollway.storage.money import nanousd_from_decimal
from tollway.usage import UsageRecord

NANOS_PER_USD = 1_000_000_000


def event_id(trace_id: str, sink_id: str) -> str:
    return f"{trace_id}:{sink_id}"


@dataclass(slots=True)
class BillingEvent:
    event_id: str
    sink: str
    trace_id: str
    created_at: float
    payload: bytes  # the event as JSON, exactly as it will be sent


class SinkPlan:
    """What building a sink's events needs, read from its settings once."""

    __slots__ = ("id", "suffix", "stripe", "event_name", "value", "customer_map")

    def __init__(self, sink: BillingSinkSettings) -> None:
        self.id = sink.id
        self.suffix = ":" + sink.id
        self.stripe = sink.format == "stripe_meter"
        self.event_name = sink.event_name
        self.value = sink.value
        self.customer_map = dict(sink.customer_map)


class Clock:
    """`iso_utc(ts)` ('2024-11-22T14:37:01.123Z'), with the seconds part kept while the second
    lasts. Splits seconds and microseconds as `datetime.fromtimestamp` does (half-even)."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second: int | None = None
        self._prefix = ""

    def iso(self, ts: float) -> str:
        frac, whole = math.modf(ts)
        us = round(frac * 1e6)
        if us >= 1_000_000:
            us -= 1_000_000
            whole += 1.0
        elif us < 0:
            us += 1_000_000
            whole -= 1.0
        second = int(whole)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{us // 1000:03d}Z"


def usd_from_nanos(n: int | None) -> str | None:
    """nano-USD → '0.000012345' (nine decimals), as format_usd(decimal_from_nanousd(n))."""
    if n is None:
        return None
    if n < 0:
        return f"-{-n // NANOS_PER_USD}.{-n % NANOS_PER_USD:09d}"
    return f"{n // NANOS_PER_USD}.{n % NANOS_PER_USD:09d}"


def _cost_nanousd(record: UsageRecord) -> int | None:
    try:
        return nanousd_from_decimal(record.cost_usd)
    except (ValueError, TypeError, ArithmeticError):
        return None


def _stripe_value(record: UsageRecord, plan: SinkPlan, cost: int | None) -> int:
    u = record.usage
    if plan.value == "input_tokens":
        return u.input_tokens or 0
    if plan.value == "output_tokens":
        return u.output_tokens or 0
    if plan.value == "cost_nanousd":
        return max(0, cost or 0)
    return u.total_tokens or 0


def billed_cost(record: UsageRecord) -> tuple[bool, int | None]:
    """(does the record make events, its cost in nano-USD): a customer and something to bill."""
    if not record.customer:
        return False, None
    cost = _cost_nanousd(record)
    return bool(record.usage.total_tokens) or (cost is not None and cost > 0), cost


def event_json(record: UsageRecord, plan: SinkPlan, eid: str, cost: int | None, clock: Clock) -> bytes | None:
    """One event of a billable record for one sink, as JSON; None when a Stripe meter's value is 0."""
    u = record.usage
    if plan.stripe:
        value = _stripe_value(record, plan, cost)
        if value <= 0:
            return None
        return orjson.dumps({"event_name": plan.event_name, "identifier": eid, "timestamp": int(record.ts),
                             "payload": {"stripe_customer_id": plan.customer_map.get(record.customer, record.customer),
                                         "value": str(value)}})
    return orjson.dumps({
        "id": eid, "type": "usage", "metric": plan.event_name, "customer": record.customer,
        "key_id": record.key_id, "project": record.project, "source": record.source,
        "model": record.model_served or record.model_requested, "provider": record.provider,
        "input_tokens": u.input_tokens or 0, "output_tokens": u.output_tokens or 0,
        "cached_tokens": u.cached_tokens, "cache_creation_tokens": u.cache_creation_tokens,
        "reasoning_tokens": u.reasoning_tokens, "total_tokens": u.total_tokens or 0, "tokens_estimated": u.estimated,
        "cost_usd": usd_from_nanos(cost),  # nine decimals, as in GET /v1/records
        "trace_id": record.trace_id, "time": clock.iso(record.ts), "ts": record.ts,
    })


def payloads(record: UsageRecord, plans: Sequence[SinkPlan], clock: Clock) -> list[tuple[SinkPlan, str, bytes]]:
    """(sink, event id, JSON) of each event a record makes; none without a customer or
    anything to bill."""
    bill, cost = billed_cost(record)
    if not bill:
        return []
    out: list[tuple[SinkPlan, str, bytes]] = []
    for plan in plans:
        eid = record.trace_id + plan.suffix
        body = event_json(record, plan, eid, cost, clock)
        if body is not None:
            out.append((plan, eid, body))
    return out


def events_for(record: UsageRecord, sinks: list[BillingSinkSettings]) -> list[BillingEvent]:
    """The events of one record (convenience; the outbox uses `payloads` with its own plans)."""
    return [BillingEvent(eid, plan.id, record.trace_id, record.ts, payload)
            for plan, eid, payload in payloads(record, [SinkPlan(s) for s in sinks], Clock())]
