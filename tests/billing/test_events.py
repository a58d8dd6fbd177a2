"""Billing event payloads: the shortcuts the outbox takes (integer cost formatting, the cached
time prefix, per-sink plans) give exactly the documented event, field for field, for any
record; only records with a customer and something to bill make events."""

from __future__ import annotations

from decimal import Decimal

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tollway.billing.events import Clock, SinkPlan, events_for, payloads, usd_from_nanos
from tollway.config import BillingSinkSettings
from tollway.storage.money import decimal_from_nanousd, format_usd, nanousd_from_decimal
from tollway.storage.rows import iso_utc
from tollway.usage import Usage, UsageRecord

SINKS = [BillingSinkSettings(id="meter", url="http://127.0.0.1:9/a", secret="s", event_name="llm_tokens"),
         BillingSinkSettings(id="stripe", url="http://127.0.0.1:9/b", secret="s", format="stripe_meter",
                             customer_map={"acme": "cus_123"}),
         BillingSinkSettings(id="cost", url="http://127.0.0.1:9/c", secret="s", format="stripe_meter",
                             value="cost_nanousd", event_name="llm_cost")]


def reference(record: UsageRecord, sink: BillingSinkSettings) -> dict | None:
    """The events as the README documents them, built the plain way."""
    u = record.usage
    try:
        cost = nanousd_from_decimal(record.cost_usd)
    except (ValueError, TypeError, ArithmeticError):
        cost = None
    if not record.customer or not (u.total_tokens or (cost is not None and cost > 0)):
        return None
    eid = f"{record.trace_id}:{sink.id}"
    if sink.format == "stripe_meter":
        value = {"input_tokens": u.input_tokens or 0, "output_tokens": u.output_tokens or 0,
                 "cost_nanousd": max(0, cost or 0), "total_tokens": u.total_tokens or 0}[sink.value]
        if value <= 0:
            return None
        return {"event_name": sink.event_name, "identifier": eid, "timestamp": int(record.ts),
                "payload": {"stripe_customer_id": sink.customer_map.get(record.customer, record.customer),
                            "value": str(value)}}
    return {"id": eid, "type": "usage", "metric": sink.event_name, "customer": record.customer,
            "key_id": record.key_id, "project": record.project, "source": record.source,
            "model": record.model_served or record.model_requested, "provider": record.provider,
            "input_tokens": u.input_tokens or 0, "output_tokens": u.output_tokens or 0,
            "cached_tokens": u.cached_tokens, "cache_creation_tokens": u.cache_creation_tokens,
            "reasoning_tokens": u.reasoning_tokens, "total_tokens": u.total_tokens or 0,
            "tokens_estimated": u.estimated, "cost_usd": format_usd(decimal_from_nanousd(cost)),
            "trace_id": record.trace_id, "time": iso_utc(record.ts), "ts": record.ts}


tokens = st.one_of(st.none(), st.integers(0, 10**9))
costs = st.one_of(st.none(), st.decimals(min_value=Decimal("-1000"), max_value=Decimal("100000"), places=12,
                                         allow_nan=False, allow_infinity=False))
records = st.builds(
    UsageRecord, trace_id=st.uuids().map(str), ts=st.floats(0, 4_102_444_800, allow_nan=False),
    route=st.just("openai.chat"), provider=st.sampled_from([None, "openai"]),
    model_requested=st.sampled_from([None, "gpt-4o-mini"]), model_served=st.sampled_from([None, "gpt-4o-mini-2024"]),
    usage=st.builds(Usage, input_tokens=tokens, output_tokens=tokens, cached_tokens=st.integers(0, 100),
                    estimated=st.booleans()),
    cost_usd=costs, key_id=st.sampled_from([None, "key_1"]), project=st.sampled_from([None, "alpha"]),
    customer=st.sampled_from([None, "", "acme", "globex", "ünïcode \"quoted\""]))


@settings(max_examples=400, deadline=None)
@given(st.lists(records, min_size=1, max_size=8))
def test_payloads_equal_the_documented_event(batch: list[UsageRecord]) -> None:
    plans, clock = [SinkPlan(s) for s in SINKS], Clock()  # one clock across records, as in the outbox
    for record in batch:
        got = {plan.id: (eid, orjson.loads(payload)) for plan, eid, payload in payloads(record, plans, clock)}
        for sink in SINKS:
            want = reference(record, sink)
            if want is None:
                assert sink.id not in got
            else:
                assert got[sink.id] == (f"{record.trace_id}:{sink.id}", want)
        assert [(e.event_id, orjson.loads(e.payload)) for e in events_for(record, SINKS)] == [
            got[s.id] for s in SINKS if s.id in got]


@given(st.integers(-(2**63), 2**63 - 1))
def test_cost_strings_match_decimal_formatting(n: int) -> None:
    assert usd_from_nanos(n) == format_usd(decimal_from_nanousd(n))


@example(1_700_000_000.9999995)
@example(1_700_000_000.0004999)
@example(1_699_999_999.9995)
@example(0.0)
@given(st.floats(0, 4_102_444_800, allow_nan=False))
def test_time_strings_match_iso_utc(ts: float) -> None:
    clock = Clock()
    assert clock.iso(ts) == iso_utc(ts)
    assert clock.iso(ts) == iso_utc(ts)  # the cached second gives the same
