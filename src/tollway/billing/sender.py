"""The background sender: leases due events per sink, posts them as one signed batch, and
records the outcome (delivered; or retried later with exponential backoff; or parked).

A batch is `POST <url>` with body `{"events": [...]}` and the headers
- `x-tollway-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed by the
  sink's secret>` (the receiver recomputes it and may reject old `t` to stop replays),
- `idempotency-key`: the event id for a single event, else `batch-` + SHA-256 of the
  comma-separated ids,
- `x-tollway-event-ids`: the ids in the batch, comma-separated.
Any 2xx delivers the whole batch; anything else (or no answer within `timeout_secs`) fails
it. Each event carries its own id: receivers must count an id once (delivery is at least
once: a batch whose 2xx was lost to a crash is sent again).

Hand-written on the project's own HTTP client (`providers.http_client`): a webhook POST is
one request; no webhook library adds what this needs (the outbox, leases, parking).

The loop takes batches back to back while they come full, and otherwise waits for the poll
interval (or a wake-up): at any load, a POST and its two statements carry as many events as
arrived meanwhile, up to `batch_size`, so their cost is shared (bench/billing_micro.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from typing import TYPE_CHECKING

from tollway import __version__
from tollway.billing.outbox import Batch, Outbox
from tollway.config import BillingSettings, BillingSinkSettings
from tollway.errors import ProxyError
from tollway.providers.http_client import HttpClient

if TYPE_CHECKING:
    from tollway.telemetry.metrics import Metrics

log = logging.getLogger("tollway.billing")


def signature(secret: bytes, body: bytes, ts: int) -> str:
    mac = hmac.new(secret, b"%d." % ts + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def idempotency_key(ids: str, count: int) -> str:
    """`ids`: the batch's event ids, comma-separated."""
    if count == 1:
        return ids
    return "batch-" + hashlib.sha256(ids.encode()).hexdigest()


class BillingSender:
    def __init__(self, outbox: Outbox, settings: BillingSettings, metrics: "Metrics | None" = None) -> None:
        self._outbox = outbox
        self._settings = settings
        self._metrics = metrics
        self._clients: dict[str, HttpClient] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_count = 0.0
        self._done: dict[str, Batch] = {}  # per sink: the batch delivered last, not yet deleted

    def delay_for(self, attempts: int) -> float:
        """Backoff before attempt `attempts + 1`: base * 2^(attempts-1), capped, jittered 50-100%."""
        s = self._settings
        d = min(s.retry_max_secs, s.retry_base_secs * (2 ** min(attempts - 1, 30)))
        return d * (0.5 + random.random() / 2)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self._task is None and self._settings.sinks:
            for sink in self._settings.sinks:
                client = HttpClient(connect_timeout=sink.timeout_secs, read_timeout=sink.timeout_secs)
                client.bind_loop()
                self._clients[sink.id] = client
            self._task = asyncio.create_task(self._run(), name="tollway-billing-sender")

    async def stop(self, grace_secs: float = 5.0) -> None:
        """Let the batch in flight finish (up to `grace_secs`), then stop. Whatever is not marked
        delivered stays in the outbox for the next start."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=grace_secs)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            self._task = None
        await self._forget_delivered()
        await self._outbox.close()
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def _run(self) -> None:
        while not self._stopping:
            busy = False
            for sink in self._settings.sinks:
                if self._stopping:
                    break
                try:
                    busy = await self._deliver_due(sink) or busy
                except Exception:
                    log.exception("billing: sender pass for sink %s failed", sink.id)
            await self._housekeeping()
            if not busy and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.poll_interval_secs):
                        await self._wake.wait()

    async def _forget_delivered(self) -> None:
        """Delete the batches delivered last (else they would be sent again after a restart)."""
        for sink_id, batch in list(self._done.items()):
            try:
                await self._outbox.delivered(batch)
                del self._done[sink_id]
            except Exception:
                log.exception("billing: marking a delivered batch for sink %s failed", sink_id)

    async def _housekeeping(self) -> None:
        """The pending gauge, once a minute."""
        now = time.time()
        if self._metrics is None or now - self._last_count < 60:
            return
        self._last_count = now
        try:
            counts = await self._outbox.pending_count()
            for sink in self._settings.sinks:
                self._metrics.billing_pending(sink.id, counts.get(sink.id, 0))
        except Exception:
            log.exception("billing: counting the outbox failed")

    async def _deliver_due(self, sink: BillingSinkSettings) -> bool:
        """One batch for one sink; True when it was full (there may be more due now)."""
        done = self._done.pop(sink.id, None)  # delivered, deleted with the next claim
        try:
            batch = await self._outbox.claim(sink.id, sink.batch_size, lease_secs=2 * sink.timeout_secs + 5,
                                             done=done)
        except BaseException:
            if done is not None:
                self._done[sink.id] = done
            raise
        if batch is None:
            return False
        error = await self._post(sink, batch)
        if error is None:
            self._count(sink.id, "delivered", batch.count)
            if batch.count >= sink.batch_size:  # more are due: deleted with the next claim, just after
                self._done[sink.id] = batch
                return True
            await self._outbox.delivered(batch)
            return False
        retrying, parked = await self._outbox.failed(batch, error, sink.max_attempts, self.delay_for)
        self._count(sink.id, "failed", batch.count)
        if parked:
            self._count(sink.id, "parked", parked)
            log.error("billing: parked %d event(s) for sink %s after %d attempts: %s", parked, sink.id,
                      sink.max_attempts, error)
        else:
            log.warning("billing: %d event(s) for sink %s will be retried: %s", retrying, sink.id, error)
        return False  # back off: do not spin on a failing sink

    async def _post(self, sink: BillingSinkSettings, batch: Batch) -> str | None:
        """Send one batch; None when delivered, else why not."""
        body = b'{"events":[' + batch.payload + b"]}"
        headers = {
            "content-type": "application/json",
            "user-agent": f"tollway/{__version__}",
            "x-tollway-signature": signature(sink.secret.get_secret_value().encode(), body, int(time.time())),
            "idempotency-key": idempotency_key(batch.ids, batch.count),
            "x-tollway-event-ids": batch.ids,
        }
        client = self._clients[sink.id]
        try:
            async with asyncio.timeout(sink.timeout_secs):
                resp = await client.request("POST", sink.url, headers, body)
                try:
                    await resp.read()
                finally:
                    resp.release()
        except TimeoutError:
            return f"no answer within {sink.timeout_secs:g}s"
        except ProxyError as e:
            return e.message.replace("provider", "receiver")
        except OSError as e:
            return f"{type(e).__name__}: {e}"
        if 200 <= resp.status < 300:
            return None
        return f"HTTP {resp.status}"

    def _count(self, sink: str, outcome: str, n: int) -> None:
        if self._metrics is not None:
            self._metrics.billing_events(sink, outcome, n)
