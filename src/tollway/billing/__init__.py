"""Billing events: per-customer usage sent to webhooks, at least once, never lost.

`events` builds an event per (usage record, sink); `outbox` stores them in the same store
transaction as the usage record and hands them out to `sender`, which posts signed batches
and retries with backoff until they are delivered or parked.
"""
