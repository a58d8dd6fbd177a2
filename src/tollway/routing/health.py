"""The health board: circuit breakers, latency and time-to-first-token EWMAs, in-flight counts
and credential cool-downs, judged from what the attempt loop reports (`routing.outcome`).

A breaker exists per deployment (`provider:model`) and per (provider, credential). It opens
after `failures` consecutive failures, or when at least `min_requests` calls in the current
`window_secs` failed at `error_rate` or more; after `cooldown_secs` it half-opens: one probe
call may go, and its outcome closes the breaker or opens it again. A failure is what says the
provider (not the caller) is unwell: no answer (connect error, timeout), 429 or 5xx; 401/403
count against the credential only. Everything here is plain dict arithmetic on the event loop.

With `[redis] url` set, `routing.health_sync.RedisHealthSync` shares open breakers and cooling
credentials between instances in the background; requests never wait for Redis (see there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tollway.routing.outcome import Outcome

if TYPE_CHECKING:
    from tollway.routing.catalog import Deployment
    from tollway.routing.settings import BreakerSettings

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_MAX_TRACKED = 10_000  # deployments with stats; beyond, idle closed ones are forgotten


class Breaker:
    __slots__ = ("state", "consecutive", "window_start", "requests", "failures", "until", "probing",
                 "opened_count", "last_error")

    def __init__(self) -> None:
        self.state = CLOSED
        self.consecutive = 0
        self.window_start = 0.0
        self.requests = 0
        self.failures = 0
        self.until = 0.0  # open: when it may half-open (wall clock, shared between instances)
        self.probing = False
        self.opened_count = 0
        self.last_error: str | None = None

    def allows(self, now: float) -> bool:
        """May a call go now? An open breaker past its cool-down allows one probe."""
        if self.state is CLOSED:
            return True
        return now >= self.until and not self.probing

    def view(self, now: float) -> dict[str, Any]:
        state = self.state
        if state == OPEN and now >= self.until:
            state = HALF_OPEN
        return {"state": state, "consecutive_failures": self.consecutive,
                "window": {"requests": self.requests, "failures": self.failures},
                "retry_in_s": round(max(0.0, self.until - now), 3) if self.state != CLOSED else None,
                "opened": self.opened_count, "last_error": self.last_error}


class DeploymentStats:
    __slots__ = ("latency_s", "ttft_s", "inflight", "requests", "failures", "minute", "minute_calls",
                 "tokens_minute", "minute_tokens")

    def __init__(self) -> None:
        self.latency_s: float | None = None
        self.ttft_s: float | None = None
        self.inflight = 0
        self.requests = 0
        self.failures = 0
        self.minute = 0  # the current clock minute, and the calls started in it (max_rpm)
        self.minute_calls = 0
        self.tokens_minute = 0  # ... and the tokens answers reported in it (max_tpm)
        self.minute_tokens = 0

    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None


def _is_failure(outcome: Outcome) -> bool:
    if outcome.ok:
        return False
    s = outcome.status
    return s is None or s == 429 or s >= 500


def _is_credential_failure(outcome: Outcome) -> bool:
    return _is_failure(outcome) or outcome.status in (401, 403)


def credential_key(provider_id: str, credential: str) -> str:
    return f"{provider_id}|{credential}"


class MemoryHealth:
    """The in-process board (`AppState.health`); `sync` shares it through Redis when set."""

    def __init__(self, breaker: "BreakerSettings", ewma_alpha: float = 0.2) -> None:
        self.settings = breaker
        self.alpha = ewma_alpha
        self.breakers: dict[str, Breaker] = {}  # deployment name or "provider|credential"
        self.stats: dict[str, DeploymentStats] = {}
        self.cooling_until: dict[str, float] = {}  # "provider|credential" -> wall clock
        self.open_count = 0  # breakers not closed: the router's fast path checks this first
        # transitions for the Redis sync to publish: breaker key -> until (0.0: closed)
        self.changed: dict[str, float] = {}
        self.cool_changed: dict[str, float] = {}
        self.sync: Any = None
        # told (breaker key, healthy) when a breaker opens or closes: the deployment-health metric
        self.on_change: "Callable[[str, bool], None] | None" = None

    # -- the attempt loop's side (routing.outcome.HealthBoard) --------------------------------------
    def started(self, dep: "Deployment", credential: str | None) -> None:
        name = dep.name
        st = self.stats.get(name)
        if st is None:
            if len(self.stats) >= _MAX_TRACKED:
                self._prune()
            st = self.stats[name] = DeploymentStats()
        st.inflight += 1
        if dep.max_rpm is not None:
            minute = int(time.time() // 60)
            if st.minute != minute:
                st.minute, st.minute_calls = minute, 0
            st.minute_calls += 1
        if self.open_count:
            now = time.time()
            for key in (name, credential_key(dep.provider.id, credential) if credential else None):
                b = self.breakers.get(key) if key else None
                if b is not None and b.state is not CLOSED and now >= b.until:
                    b.state = HALF_OPEN
                    b.probing = True

    def finished(self, dep: "Deployment", credential: str | None, outcome: Outcome) -> None:
        try:
            self._finished(dep, credential, outcome)
        except Exception:  # never into the request path
            pass

    def _finished(self, dep: "Deployment", credential: str | None, outcome: Outcome) -> None:
        name = dep.name
        st = self.stats.get(name)
        if st is None:
            st = self.stats[name] = DeploymentStats()
        if st.inflight > 0:
            st.inflight -= 1
        st.requests += 1
        a = self.alpha
        failed = _is_failure(outcome)
        if failed:
            st.failures += 1
        elif outcome.ok:
            lat = outcome.latency_s
            st.latency_s = lat if st.latency_s is None else st.latency_s + a * (lat - st.latency_s)
            if outcome.ttft_s is not None:
                t = outcome.ttft_s
                st.ttft_s = t if st.ttft_s is None else st.ttft_s + a * (t - st.ttft_s)
        if not self.settings.enabled:
            return
        now = time.time()
        why = outcome.error_type or (f"status {outcome.status}" if outcome.status else None)
        self._judge(name, failed, now, why)
        if credential:
            self._judge(credential_key(dep.provider.id, credential), _is_credential_failure(outcome), now, why)

    def _judge(self, key: str, failed: bool, now: float, why: str | None) -> None:
        b = self.breakers.get(key)
        if b is None:
            b = self.breakers[key] = Breaker()
        s = self.settings
        if now - b.window_start > s.window_secs:
            b.window_start, b.requests, b.failures = now, 0, 0
        b.requests += 1
        if failed:
            b.failures += 1
            b.consecutive += 1
            b.last_error = why
        else:
            b.consecutive = 0
        if b.state is CLOSED:
            if failed and (b.consecutive >= s.failures or
                           (b.requests >= s.min_requests and b.failures >= s.error_rate * b.requests)):
                self._open(key, b, now)
        elif b.probing or now >= b.until:  # the half-open probe (or a call that was already on its way)
            if failed:
                self._open(key, b, now)
            else:
                self._close(key, b)

    def _open(self, key: str, b: Breaker, now: float, until: float | None = None, publish: bool = True) -> None:
        if b.state is CLOSED:
            self.open_count += 1
            b.opened_count += 1
            if self.on_change is not None:
                self.on_change(key, False)
        b.state = OPEN
        b.probing = False
        b.until = until if until is not None else now + self.settings.cooldown_secs
        if publish:
            self.changed[key] = b.until
            if self.sync is not None:
                self.sync.poke()

    def _close(self, key: str, b: Breaker, publish: bool = True) -> None:
        if b.state is not CLOSED:
            self.open_count -= 1
            if self.on_change is not None:
                self.on_change(key, True)
        b.state = CLOSED
        b.probing = False
        b.consecutive = 0
        b.window_start, b.requests, b.failures = 0.0, 0, 0
        b.until = 0.0
        if publish:
            self.changed[key] = 0.0
            if self.sync is not None:
                self.sync.poke()

    def _prune(self) -> None:
        """Bound memory when clients make up names (a glob routes any): forget idle, closed ones."""
        for name in [n for n, st in self.stats.items() if st.inflight == 0]:
            b = self.breakers.get(name)
            if b is None or b.state is CLOSED:
                del self.stats[name]
                self.breakers.pop(name, None)

    def cooling(self, provider_id: str, credential: str) -> bool:
        key = credential_key(provider_id, credential)
        if self.cooling_until:
            until = self.cooling_until.get(key)
            if until is not None:
                if time.time() < until:
                    return True
                del self.cooling_until[key]
        if self.open_count:
            b = self.breakers.get(key)
            if b is not None and not b.allows(time.time()):
                return True
        return False

    def cool(self, provider_id: str, credential: str, seconds: float) -> None:
        key = credential_key(provider_id, credential)
        until = time.time() + max(0.0, seconds)
        if until > self.cooling_until.get(key, 0.0):
            self.cooling_until[key] = until
            self.cool_changed[key] = until
            if self.sync is not None:
                self.sync.poke()

    # -- the router's side -------------------------------------------------------------------------
    def available(self, name: str, now: float) -> bool:
        """The deployment's breaker lets a call through now (closed, or a half-open probe)."""
        b = self.breakers.get(name)
        return b is None or b.allows(now)

    def retry_in(self, name: str, now: float) -> float:
        b = self.breakers.get(name)
        return max(0.0, b.until - now) if b is not None and b.state is not CLOSED else 0.0

    def inflight(self, name: str) -> int:
        st = self.stats.get(name)
        return st.inflight if st is not None else 0

    def add_tokens(self, name: str, tokens: int) -> None:
        """An answer of this deployment reported `tokens` (input + output): for max_tpm."""
        st = self.stats.get(name)
        if st is None:
            if len(self.stats) >= _MAX_TRACKED:
                self._prune()
            st = self.stats[name] = DeploymentStats()
        minute = int(time.time() // 60)
        if st.tokens_minute != minute:
            st.tokens_minute, st.minute_tokens = minute, 0
        st.minute_tokens += max(0, tokens)

    def tokens_this_minute(self, name: str) -> int:
        st = self.stats.get(name)
        return st.minute_tokens if st is not None and st.tokens_minute == int(time.time() // 60) else 0

    def calls_this_minute(self, name: str) -> int:
        st = self.stats.get(name)
        return st.minute_calls if st is not None and st.minute == int(time.time() // 60) else 0

    def latency(self, name: str) -> float | None:
        st = self.stats.get(name)
        return st.latency_s if st is not None else None

    def view(self, name: str, now: float) -> dict[str, Any]:
        b = self.breakers.get(name)
        st = self.stats.get(name)
        out: dict[str, Any] = b.view(now) if b is not None else {
            "state": CLOSED, "consecutive_failures": 0, "window": {"requests": 0, "failures": 0},
            "retry_in_s": None, "opened": 0, "last_error": None}
        out.update({
            "latency_ewma_ms": None if st is None or st.latency_s is None else round(st.latency_s * 1000, 3),
            "ttft_ewma_ms": None if st is None or st.ttft_s is None else round(st.ttft_s * 1000, 3),
            "in_flight": st.inflight if st is not None else 0,
            "requests": st.requests if st is not None else 0,
            "error_rate": None if st is None or st.error_rate() is None else round(st.error_rate() or 0.0, 4)})
        return out

    def credentials_view(self, now: float) -> list[dict[str, Any]]:
        """Credentials with an open breaker or a cool-down (never the secret: a profile name)."""
        out = []
        keys = {k for k in self.breakers if "|" in k} | set(self.cooling_until)
        for key in sorted(keys):
            provider, _, cred = key.partition("|")
            b = self.breakers.get(key)
            until = self.cooling_until.get(key, 0.0)
            out.append({"provider": provider, "credential": cred,
                        "breaker": b.view(now)["state"] if b is not None else CLOSED,
                        "cooling_for_s": round(until - now, 3) if until > now else None})
        return out

    # -- the Redis sync's side ---------------------------------------------------------------------
    def apply_remote(self, breakers: dict[str, float], cooling: dict[str, float], now: float) -> None:
        """What other instances published: open breakers (until) and cool-downs. A breaker open
        here but gone from the shared table was closed elsewhere."""
        for key, until in breakers.items():
            if key in self.changed:
                continue  # ours is newer (not yet published)
            b = self.breakers.get(key)
            if b is None:
                b = self.breakers[key] = Breaker()
            if b.state is CLOSED or b.until != until:
                if not (b.state is HALF_OPEN and b.probing and until <= now):
                    self._open(key, b, now, until=until, publish=False)
        for key, b in self.breakers.items():
            if b.state is not CLOSED and key not in breakers and key not in self.changed:
                self._close(key, b, publish=False)
        for key, until in cooling.items():
            if until > now and until > self.cooling_until.get(key, 0.0):
                self.cooling_until[key] = until
