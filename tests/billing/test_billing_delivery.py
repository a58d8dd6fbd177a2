"""Billing events end to end: Tollway in front of the fake provider, a fake webhook receiver
that verifies signatures and counts each event id once; failures, timeouts, parking,
operator retry, SIGTERM / SIGKILL of Tollway while a batch is in flight, and on Postgres a
sink outage, a crash and two instances sending from one outbox."""

from __future__ import annotations

import json
from collections import Counter
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.provider import FakeProvider
from tests.fakes.webhook import WebhookReceiver
from tests.harness import MASTER_KEY, Tollway, openai_client, standard_config
from tests.services import pg_store_url  # noqa: F401  (fixture)

SECRET = "whsec-test-secret"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as r:
        yield r


def billing_config(fake: FakeProvider, receiver: WebhookReceiver, **sink: Any) -> dict[str, Any]:
    cfg = standard_config(fake.url)
    cfg["billing"] = {"retry_base_secs": 0.2, "retry_max_secs": 0.5, "poll_interval_secs": 0.1}
    cfg["billing.sinks"] = [{"id": "meter", "url": receiver.url, "secret": SECRET, "timeout_secs": 1,
                             "batch_size": 3, **sink}]
    return cfg


def call(tw: Tollway, customer: str | None, text: str = "hi") -> str:
    client = openai_client(tw)
    headers = {"x-tollway-customer": customer} if customer else {}
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], extra_headers=headers)
    return raw.headers["x-tollway-trace-id"]


def admin(tw: Tollway, method: str, path: str, body: dict | None = None, key: str | None = MASTER_KEY):
    req = urllib.request.Request(tw.url + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def eventually(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_events_are_delivered_signed_in_both_formats(fake: FakeProvider, tmp_path: Path) -> None:
    with WebhookReceiver(SECRET) as plain, WebhookReceiver(SECRET) as stripe:
        cfg = standard_config(fake.url)
        cfg["billing"] = {"poll_interval_secs": 0.1}
        cfg["billing.sinks"] = [
            {"id": "ledger", "url": plain.url, "secret": SECRET},
            {"id": "stripe", "url": stripe.url, "secret": SECRET, "format": "stripe_meter",
             "event_name": "llm_tokens", "customer_map": {"acme": "cus_ACME123"}},
        ]
        tw = Tollway(tmp_path, cfg)
        try:
            billed = [call(tw, "acme"), call(tw, "acme", "two"), call(tw, "globex")]
            unbilled = call(tw, None)  # no customer: no event
            ids = plain.wait_for(3)
            assert ids == {f"{t}:ledger" for t in billed}
            stripe.wait_for(3)
            records = {t: tw.record(t) for t in billed}
            for ev in plain.delivered():
                rec = records[ev["trace_id"]]
                assert ev["metric"] == "llm_tokens" and ev["type"] == "usage"
                assert ev["customer"] == rec["customer"] and ev["model"] == rec["model_served"]
                assert (ev["input_tokens"], ev["output_tokens"], ev["total_tokens"]) == (
                    rec["input_tokens"], rec["output_tokens"], rec["total_tokens"])
                assert ev["cost_usd"] == rec["cost_usd"] and ev["key_id"] == "master"
            by_id = {e["identifier"]: e for e in stripe.delivered()}
            assert set(by_id) == {f"{t}:stripe" for t in billed}
            first = by_id[f"{billed[0]}:stripe"]
            assert first["event_name"] == "llm_tokens"
            assert first["payload"] == {"stripe_customer_id": "cus_ACME123",
                                        "value": str(records[billed[0]]["total_tokens"])}
            assert isinstance(first["timestamp"], int)
            assert by_id[f"{billed[2]}:stripe"]["payload"]["stripe_customer_id"] == "globex"  # unmapped: as is
            assert plain.bad_signatures == stripe.bad_signatures == 0
            assert all(h.get("idempotency-key") and h.get("x-tollway-event-ids") for h in plain.headers)
            assert f"{unbilled}:ledger" not in plain.seen
        finally:
            tw.stop()


def test_receiver_that_fails_then_times_out_then_recovers_gets_everything_once(
        fake: FakeProvider, receiver: WebhookReceiver, tmp_path: Path) -> None:
    receiver.set_mode("fail")
    tw = Tollway(tmp_path, billing_config(fake, receiver))
    try:
        traces = [call(tw, f"cust-{i % 3}", f"m{i}") for i in range(7)]
        eventually(lambda: receiver.posts >= 3, what="failed posts")
        receiver.set_mode("hang")  # answers nothing: Tollway's 1 s timeout
        posts = receiver.posts
        eventually(lambda: receiver.posts >= posts + 2, what="timed-out posts")
        receiver.set_mode("ok")
        ids = receiver.wait_for(7)
        assert ids == {f"{t}:meter" for t in traces}
        assert receiver.bad_signatures == 0
        # at least once: retried batches may repeat ids, but each was counted once
        assert len(receiver.unique_ids) == 7
        assert max(receiver.seen.values()) >= 2
    finally:
        tw.stop()


def test_events_that_keep_failing_are_parked_and_resent_on_request(
        fake: FakeProvider, receiver: WebhookReceiver, tmp_path: Path) -> None:
    receiver.set_mode("fail")
    tw = Tollway(tmp_path, billing_config(fake, receiver, max_attempts=2))
    try:
        traces = [call(tw, "acme", f"m{i}") for i in range(4)]
        expected = {f"{t}:meter" for t in traces}

        def parked() -> list[dict]:
            status, body = admin(tw, "GET", "/admin/billing/failed")
            assert status == 200, body
            return body["data"] if {e["event_id"] for e in body["data"]} == expected else []

        rows = eventually(parked, what="parked events")
        assert all(r["attempts"] == 2 and r["last_error"] == "HTTP 500" and r["sink"] == "meter" for r in rows)
        assert {r["event"]["trace_id"] for r in rows} == set(traces)
        assert admin(tw, "GET", "/admin/billing/failed", key=None)[0] == 401
        assert admin(tw, "POST", "/admin/billing/retry", {"event_ids": [f"{traces[0]}:meter"]}, key="wrong")[0] == 401
        receiver.set_mode("ok")
        time.sleep(0.5)
        assert receiver.unique_ids == set()  # parked events stay parked until asked
        status, body = admin(tw, "POST", "/admin/billing/retry", {"event_ids": [f"{traces[0]}:meter"]})
        assert (status, body) == (200, {"retried": 1})
        assert receiver.wait_for(1) == {f"{traces[0]}:meter"}
        status, body = admin(tw, "POST", "/admin/billing/retry")
        assert (status, body) == (200, {"retried": 3})
        assert receiver.wait_for(4) == expected
        assert admin(tw, "GET", "/admin/billing/failed")[1]["data"] == []
        status, body = admin(tw, "POST", "/admin/billing/retry", {"event_ids": "nope"})
        assert status == 400 and body["error"]["param"] == "event_ids"
    finally:
        tw.stop()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_tollway_killed_mid_delivery_delivers_everything_after_restart(
        fake: FakeProvider, receiver: WebhookReceiver, tmp_path: Path, sig: signal.Signals) -> None:
    cfg = billing_config(fake, receiver)
    receiver.set_mode("hang")
    tw = Tollway(tmp_path, cfg)
    try:
        traces = [call(tw, "acme", f"m{i}") for i in range(5)]
        for t in traces:
            tw.record(t)  # stored, so its events are in the outbox
        eventually(lambda: receiver.posts >= 1, what="a batch in flight")
        tw.signal(sig)
        tw.proc.wait(20)
    finally:
        tw.stop()
    if sig == signal.SIGTERM:
        assert tw.proc.returncode == 0, tw.log()
    receiver.set_mode("ok")
    assert receiver.unique_ids == set()
    tw2 = Tollway(tmp_path, cfg)
    try:
        more = [call(tw2, "acme", "after restart")]
        ids = receiver.wait_for(6, timeout=30)
        assert ids == {f"{t}:meter" for t in traces + more}
        assert receiver.bad_signatures == 0
    finally:
        tw2.stop()


def test_on_postgres_events_survive_a_sink_outage_and_a_crash_and_two_instances_share_the_work(
        fake: FakeProvider, receiver: WebhookReceiver, tmp_path: Path, pg_store_url: str) -> None:  # noqa: F811
    cfg = billing_config(fake, receiver)
    cfg["store"] = {"url": pg_store_url, "flush_interval_secs": 0.05}
    receiver.set_mode("fail")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    tw = Tollway(tmp_path / "a", cfg)
    try:
        traces = [call(tw, f"cust-{i % 2}", f"m{i}") for i in range(6)]
        for t in traces:
            tw.record(t)  # stored, so its events are in the outbox
        eventually(lambda: receiver.posts >= 2, what="failed posts")
        tw.signal(signal.SIGKILL)
        tw.proc.wait(20)
    finally:
        tw.stop()
    assert receiver.unique_ids == set()
    receiver.set_mode("ok")
    a, b = Tollway(tmp_path / "a", cfg), Tollway(tmp_path / "b", cfg)
    try:
        more = [call(tw2, "acme", f"after {i}") for i in range(10) for tw2 in (a, b)]
        ids = receiver.wait_for(26, timeout=30)
        assert ids == {f"{t}:meter" for t in traces + more}
        assert receiver.bad_signatures == 0
        time.sleep(1)  # nothing more comes: two senders never took the same batch
        delivered = Counter(e["id"] for e in receiver.delivered())
        assert len(delivered) == 26 and max(delivered.values()) == 1
    finally:
        a.stop()
        b.stop()
