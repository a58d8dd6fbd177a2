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
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from tollway.config import BillingSinkSettings
from tollway.storage.money import decimal_from_nanousd, format_usd, nanousd_from_decimal
from tollway.storage.rows import iso_utc
from tollway.usage import UsageRecord


def event_id(trace_id: str, sink_id: str) -> str:
    return f"{trace_id}:{sink_id}"


@dataclass(slots=True, frozen=True)
class BillingEvent:
    event_id: str
    sink: str
    trace_id: str
    created_at: float
    payload: bytes  # the event as JSON, exactly as it will be sent


def _cost_nanousd(record: UsageRecord) -> int | None:
    try:
        return nanousd_from_decimal(record.cost_usd)
    except (ValueError, TypeError, ArithmeticError):
        return None


def _stripe_value(record: UsageRecord, sink: BillingSinkSettings) -> int:
    u = record.usage
    if sink.value == "input_tokens":
        return u.input_tokens or 0
    if sink.value == "output_tokens":
        return u.output_tokens or 0
    if sink.value == "cost_nanousd":
        return max(0, _cost_nanousd(record) or 0)
    return u.total_tokens or 0


def _tollway_payload(record: UsageRecord, sink: BillingSinkSettings, eid: str) -> dict:
    u = record.usage
    cost = _cost_nanousd(record)
    return {
        "id": eid, "type": "usage", "metric": sink.event_name, "customer": record.customer,
        "key_id": record.key_id, "project": record.project, "source": record.source,
        "model": record.model_served or record.model_requested, "provider": record.provider,
        "input_tokens": u.input_tokens or 0, "output_tokens": u.output_tokens or 0,
        "cached_tokens": u.cached_tokens, "cache_creation_tokens": u.cache_creation_tokens,
        "reasoning_tokens": u.reasoning_tokens, "total_tokens": u.total_tokens or 0,
        "tokens_estimated": u.estimated,
        "cost_usd": format_usd(decimal_from_nanousd(cost)),  # nine decimals, as in GET /v1/records
        "trace_id": record.trace_id, "time": iso_utc(record.ts), "ts": record.ts,
    }


def _stripe_payload(record: UsageRecord, sink: BillingSinkSettings, eid: str, value: int) -> dict:
    customer = record.customer or ""
    return {
        "event_name": sink.event_name, "identifier": eid, "timestamp": int(record.ts),
        "payload": {"stripe_customer_id": sink.customer_map.get(customer, customer), "value": str(value)},
    }


def billable(record: UsageRecord) -> bool:
    """A customer and something to bill: tokens, or a cost above zero."""
    if not record.customer:
        return False
    if record.usage.total_tokens:
        return True
    cost = _cost_nanousd(record)
    return cost is not None and cost > 0


def events_for(record: UsageRecord, sinks: list[BillingSinkSettings]) -> list[BillingEvent]:
    if not sinks or not billable(record):
        return []
    out: list[BillingEvent] = []
    for sink in sinks:
        eid = event_id(record.trace_id, sink.id)
        if sink.format == "stripe_meter":
            value = _stripe_value(record, sink)
            if value <= 0:
                continue
            payload = _stripe_payload(record, sink, eid, value)
        else:
            payload = _tollway_payload(record, sink, eid)
        out.append(BillingEvent(eid, sink.id, record.trace_id, record.ts, orjson.dumps(payload)))
    return out
