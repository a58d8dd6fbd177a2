"""The attempt loop: execute the route stage's plan (`ctx.plan`) until one deployment serves.

Each deployment is tried with each of its provider's credentials (`[[providers.profiles]]`,
in `profile_order`, skipping those the health board says are cooling); a retryable failure
(429, 500, 502, 503, 504, 529, connect errors, timeouts) is retried on the same deployment
up to `[routing.retry] retries` times with jittered exponential backoff (a provider's
`retry-after` / `retry-after-ms` wins; one longer than `max_retry_after_secs` moves on to the
next deployment instead), then the plan's next deployment is tried. A credential the provider
refused (401/403) or throttled (429) is cooled and the next one used. Other 4xx are the
caller's: relayed as they are, never retried. At most `max_attempts` provider calls a request.

One attempt is `Forwarder.forward` (same format, the byte fast path) or `forward_translated`
(another wire format): it either answers the client, or raises `Failed` having sent nothing.
A stream that may still fail over holds its preamble back until the first real token
(`ctx.failover`), so a provider that breaks or stalls before producing output is replaced
without the client seeing it; after the first byte a failure ends the stream in-band.

When every option failed the client gets one error in its own format naming each attempt; a
single failed attempt is relayed as the provider said it (unchanged bytes), as without a loop.
Every response carries `x-tollway-route` (the deployment that served, or was tried last) and
`x-tollway-attempts`. The health board is told of every provider call (`started` from
`upstream.send`, `finished` here, exactly once, whatever happened).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tollway.errors import ProxyError
from tollway.pipeline.attempt_failures import CREDENTIAL_STATUS, RETRYABLE_KINDS, Failed, failed_by
from tollway.pipeline.context import Attempt, RequestContext
from tollway.routing.outcome import Outcome

if TYPE_CHECKING:
    from pydantic import SecretStr

    from tollway.api.asgi import Receive, Send
    from tollway.routing.catalog import Deployment
    from tollway.state import AppState

ROUTE_HEADER = b"x-tollway-route"
ATTEMPTS_HEADER = b"x-tollway-attempts"


def header_safe(text: str) -> bytes:
    """`text` as a header value: bytes outside printable ASCII (a client's model name may hold
    CR LF or NUL) percent-encoded, at most 512 bytes."""
    raw = text.encode("utf-8", "replace")[:512]
    if all(0x20 < b < 0x7F and b != 0x25 for b in raw):
        return raw
    return b"".join(bytes((b,)) if 0x20 < b < 0x7F and b != 0x25 else b"%%%02X" % b for b in raw)


@dataclass(slots=True)
class AttemptLimits:
    """One attempt's deadlines: seconds from its start, and (once armed) loop times."""

    connect_s: float | None
    first_token_s: float | None
    total_s: float | None
    holdback_bytes: int
    holdback_s: float = 30.0
    first_token_at: float | None = None
    total_at: float | None = None

    def hold_over(self, held_size: int, started: float) -> bool:
        """The holdback is full (bytes) or old (seconds since the call started, perf_counter)."""
        return held_size > self.holdback_bytes or time.perf_counter() - started > self.holdback_s

    def arm(self, now: float) -> None:
        self.first_token_at = now + self.first_token_s if self.first_token_s is not None else None
        self.total_at = now + self.total_s if self.total_s is not None else None


class AttemptLoop:
    def __init__(self, state: "AppState") -> None:
        self._state = state
        # (provider id, its settings object) -> profiles: a reload with new settings reads them again
        self._keys: dict[tuple[str, int], list[tuple[str, "SecretStr | None"]]] = {}
        self._route_values: dict[str, bytes] = {}  # deployment name -> x-tollway-route value

    def _route_value(self, dep: "Deployment") -> bytes:
        name = dep.name
        v = self._route_values.get(name)
        if v is None:
            v = header_safe(name)
            if len(self._route_values) < 4096:
                self._route_values[name] = v
        return v

    # -- credentials ------------------------------------------------------------------------------
    def profiles(self, dep: "Deployment") -> list[tuple[str, "SecretStr | None"]]:
        """The provider's credential profiles in the order to try them (empty: its api_key only)."""
        settings = dep.provider.settings
        cache_key = (dep.provider.id, id(settings))
        found = self._keys.get(cache_key)
        if found is None:
            from pydantic import SecretStr

            by_name = {p.name: p for p in settings.profiles}
            order = settings.profile_order or list(by_name)
            order += [n for n in by_name if n not in order]
            found = []
            for name in order:
                p = by_name[name]
                key = p.api_key if p.api_key is not None else (
                    SecretStr(os.environ[p.api_key_env]) if os.environ.get(p.api_key_env or "") else None)
                found.append((name, key))
            if len(self._keys) > 1024:
                self._keys.clear()
            self._keys[cache_key] = found
        return found

    def credentials(self, ctx: RequestContext, dep: "Deployment") -> list[str | None]:
        if ctx.byok or (ctx.key is not None and ctx.key.credentials and dep.provider.kind in ctx.key.credentials):
            return [None]  # the caller's own key: never a profile
        profiles = self.profiles(dep)
        if not profiles:
            return [None]
        health = self._state.health
        return [name for name, key in profiles if key is not None and not health.cooling(dep.provider.id, name)]

    def profile_key(self, dep: "Deployment", name: str) -> "SecretStr | None":
        for n, key in self.profiles(dep):
            if n == name:
                return key
        return None

    def with_profile(self, ctx: RequestContext, dep: "Deployment", headers: dict[str, str]) -> dict[str, str]:
        """`headers` with the current profile's credential in place of the provider's api_key."""
        if ctx.credential is None:
            return headers
        key = self.profile_key(dep, ctx.credential)
        if key is None:
            return headers
        out = dict(headers)
        for name in dep.provider.auth_headers():
            out.pop(name, None)
        out.update(dep.provider.auth_headers(key.get_secret_value()))
        return out

    # -- deadlines --------------------------------------------------------------------------------
    def limits(self, dep: "Deployment") -> AttemptLimits:
        d = self._state.settings.routing.timeouts
        own = dep.timeouts
        return AttemptLimits(
            (own.connect_s if own and own.connect_s else None) or d.connect_secs,
            (own.first_token_s if own and own.first_token_s else None) or d.first_token_secs,
            (own.total_s if own and own.total_s else None) or d.total_secs,
            d.holdback_bytes, d.holdback_secs)

    # -- the loop ---------------------------------------------------------------------------------
    async def run(self, ctx: RequestContext, receive: "Receive", send: "Send") -> None:
        state = self._state
        rs = state.settings.routing.retry
        plan = ctx.plan or ([ctx.deployment] if ctx.deployment is not None else [])
        ctx.health = state.health
        if ctx.stream:
            ctx.stream_trace = (ctx.headers.get(b"x-tollway-trace", b"").lower() in (b"true", b"1")
                                or (ctx.key is not None and ctx.key.trace))
            if ctx.stream_trace:
                self._cost_estimate(ctx)
        hdr_at = len(ctx.response_headers)
        ctx.response_headers.append((ROUTE_HEADER, b""))
        ctx.response_headers.append((ATTEMPTS_HEADER, b"0"))
        failures: list[Failed] = []
        n = 0
        last = len(plan) - 1
        metrics = state.metrics
        for di, dep in enumerate(plan):
            if di and metrics is not None and failures:
                metrics.fell_back(plan[di - 1].provider.id, dep.provider.id)
            creds = self.credentials(ctx, dep)
            if not creds:
                f = Failed(None, "credentials_cooling", "every credential of the provider is cooling down")
                f.deployment = dep.name
                failures.append(f)
                continue
            ci, retries_left, tries = 0, rs.retries, 0
            while ci < len(creds) and n < rs.max_attempts:
                cred = creds[ci]
                more = n + 1 < rs.max_attempts and (di < last or ci < len(creds) - 1 or retries_left > 0)
                n += 1
                tries += 1
                ctx.response_headers[hdr_at] = (ROUTE_HEADER, self._route_value(dep))
                ctx.response_headers[hdr_at + 1] = (ATTEMPTS_HEADER, str(n).encode())
                ctx.attempt_count = n
                try:
                    await self._one(ctx, dep, cred, more, receive, send)
                    ctx.mitigated = bool(failures)
                    return
                except Failed as f:
                    f.deployment = dep.name + (f" ({cred})" if cred else "")
                    failures.append(f)
                    ctx.attempt_errors.append(f.describe())
                    failed = f
                if failed.status in CREDENTIAL_STATUS or failed.status == 429:
                    if cred is not None:
                        cool = failed.retry_after if failed.status == 429 and failed.retry_after else rs.cooldown_secs
                        state.health.cool(dep.provider.id, cred, cool)
                        if ci < len(creds) - 1:
                            ci += 1
                            continue
                    if failed.status != 429:
                        break  # a refused credential: the next deployment (another provider's keys)
                if not failed.retryable or retries_left <= 0:
                    break
                wait = self._backoff(rs, tries, failed.retry_after)
                if wait is None:
                    break  # the provider wants a longer pause than we wait: the next deployment
                retries_left -= 1
                if metrics is not None:
                    metrics.retried(dep.provider.id, _retry_reason(failed))
                if wait > 0:
                    await asyncio.sleep(wait)
            if n >= rs.max_attempts:
                break
        ctx.mitigated = False
        self._all_failed(ctx, failures, n)
        if len(failures) == 1 and n == 1 and failures[0].error is not None:
            raise failures[0].error  # the one attempt's own error, as without a loop
        if len(failures) == 1 and failures[0].reply is not None and n == 1:
            status, hdrs, body = failures[0].reply
            ctx.status = status
            ctx.response_started = True
            from tollway.api.asgi import send_bytes

            await send_bytes(send, status, body, hdrs)
            return
        waits = [f.retry_after for f in failures if f.status == 429 and f.retry_after is not None]
        if waits and all(f.status == 429 for f in failures):  # all rate limited: when to come back
            ctx.response_headers.append((b"retry-after", b"%d" % max(1, round(min(waits)))))
        raise self._summary(failures)

    def _cost_estimate(self, ctx: RequestContext) -> None:
        """The trace event's cost estimate, when the router made none (it makes it on demand)."""
        router = getattr(self._state, "router", None)
        rt = ctx.route_trace
        if router is None or rt is None or rt.get("cost_estimate") is not None:
            return
        try:
            rt["cost_estimate"] = router.cost_estimate(ctx)
        except Exception:  # an estimate is a courtesy: never fail the call for it
            rt["cost_estimate"] = None

    @staticmethod
    def _backoff(rs, tries: int, after: float | None) -> float | None:
        if after is not None:
            return after if after <= rs.max_retry_after_secs else None
        cap = rs.backoff_max_ms / 1000.0
        base = min(cap, rs.backoff_base_ms / 1000.0 * (2 ** (tries - 1)))
        return base * (0.5 + random.random() / 2)

    def _all_failed(self, ctx: RequestContext, failures: list[Failed], n: int) -> None:
        last = failures[-1] if failures else None
        ctx.error_type = last.error_type if last is not None else "no_deployment"

    @staticmethod
    def _summary(failures: list[Failed]) -> ProxyError:
        if not failures:
            return ProxyError("unavailable", "No deployment could be tried for this model.")
        parts = "; ".join(f.describe() for f in failures)
        statuses = [f.status for f in failures]
        if all(s == 429 for s in statuses):
            kind = "rate_limit"
        else:
            last = failures[-1]
            if last.error is not None:
                kind = last.error.kind
            elif last.status in (503, 529) or last.error_type == "credentials_cooling":
                kind = "unavailable"
            elif last.status == 504:
                kind = "upstream_timeout"
            else:
                kind = "upstream_error"
        return ProxyError(kind, f"Every option to serve this request failed: {parts}.")

    async def _one(self, ctx: RequestContext, dep: "Deployment", cred: str | None, more: bool,
                   receive: "Receive", send: "Send") -> None:
        """One attempt; raises Failed when it failed and nothing was sent."""
        if ctx.attempts or ctx.attempt_count > 1:
            _reset(ctx)
        ctx.deployment = dep
        ctx.credential = cred
        ctx.failover = more
        ctx.limits = self.limits(dep)
        first = len(ctx.attempts)
        outcome_error: Failed | None = None
        try:
            await self._state.forwarder.attempt(ctx, receive, send)
        except Failed as f:
            outcome_error = f
            raise
        except ProxyError as e:
            if e.kind not in RETRYABLE_KINDS or ctx.response_started or len(ctx.attempts) == first:
                raise
            outcome_error = failed_by(e)
            raise outcome_error from None
        finally:
            self._finished(ctx, dep, cred, first, outcome_error)

    def _finished(self, ctx: RequestContext, dep: "Deployment", cred: str | None, first: int,
                  failed: Failed | None) -> None:
        health = self._state.health
        for a in ctx.attempts[first:]:
            if failed is not None and a.error_type is None:
                a.error_type = failed.error_type
            health.finished(dep, cred, _outcome(ctx, a, failed))


def _retry_reason(failed: Failed) -> str:
    """tollway_retries' reason label: "429", "5xx", or the failure kind (timeout, connect...)."""
    if failed.status == 429:
        return "429"
    if failed.status is not None and failed.status >= 500:
        return "5xx"
    return (failed.error_type or "error")[:40]


def _outcome(ctx: RequestContext, a: Attempt, failed: Failed | None) -> Outcome:
    end = a.ended or time.perf_counter()
    latency = (end if ctx.stream else (a.headers_at or end)) - a.started
    ttft = (a.first_token_at - a.started) if a.first_token_at else None
    if failed is not None:
        return Outcome(False, failed.status or (a.status or None), failed.error_type, latency, ttft,
                       failed.retry_after)
    ok = 200 <= a.status < 300
    return Outcome(ok, a.status or None, a.error_type or (None if ok else ctx.error_type), latency, ttft)


async def start_stream(ctx: RequestContext, send: "Send", start: dict) -> None:
    """Send a stream's response start (and, when asked for, the routing trace event first)."""
    await send(start)
    ctx.response_started = True
    if ctx.stream_trace:
        await send({"type": "http.response.body", "body": trace_event(ctx), "more_body": True})


def trace_event(ctx: RequestContext) -> bytes:
    """`data: {"type":"trace",...}`: the deployment that serves and why (the router's account)."""
    import orjson

    dep = ctx.deployment
    rt = ctx.route_trace or {}
    body = {"type": "trace", "model": dep.model if dep else ctx.model, "provider": dep.provider.id if dep else None,
            "deployment": dep.name if dep else None, "attempts": ctx.attempt_count,
            "policy": rt.get("policy"), "profile": rt.get("profile"), "scores": rt.get("scores"),
            "cost_estimate": rt.get("cost_estimate")}
    return b"data: " + orjson.dumps(body, default=str) + b"\n\n"


def _reset(ctx: RequestContext) -> None:
    """Forget what a failed attempt left on the context."""
    ctx.status = 0
    ctx.error_type = None
    ctx.usage = None
    ctx.model_served = None
    ctx.ttft_ms = None
    ctx.incomplete = False
