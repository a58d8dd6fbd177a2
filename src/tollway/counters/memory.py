"""Counters in this process (the default): exact for one instance, gone on restart.

Budgets survive restarts anyway: their spend is rebuilt from the ledger at start-up (`seed`).
Every method runs on the event loop without awaiting, so each acquire is atomic by itself.
Memory is bounded: window counters are dropped after their `ttl_s`, rate state once it has
refilled, reservations and slots at settlement or when their lease runs out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from tollway.counters.base import Admission, Refusal, Settlement

_MARKER_EXTRA_MS = 86_400_000  # a settlement may arrive this long after its lease ended


class _Budget:
    __slots__ = ("spent", "reserved", "leases", "next_expiry", "expires")

    def __init__(self) -> None:
        self.spent = 0
        self.reserved = 0
        self.leases: dict[str, tuple[int, float]] = {}  # trace id -> (amount, lease end)
        self.next_expiry = math.inf
        self.expires = math.inf  # when the window counter may be forgotten

    def purge(self, now: float) -> None:
        if now < self.next_expiry:
            return
        nxt = math.inf
        for trace, (amount, until) in list(self.leases.items()):
            if until <= now:
                del self.leases[trace]
                self.reserved -= amount
            elif until < nxt:
                nxt = until
        self.next_expiry = nxt


class MemoryCounters:
    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}  # GCRA theoretical arrival time, ms
        self._budgets: dict[str, _Budget] = {}
        self._slots: dict[str, dict[str, float]] = {}  # key -> {trace id: lease end, ms}
        # trace id -> when to forget it: admissions not settled yet (settling removes it, so a
        # second settlement of the same trace changes nothing)
        self._unsettled: dict[str, float] = {}
        self._last_sweep = 0.0
        self.on_released: Callable[[str], None] | None = None
        self.generation = 0  # never changes: nothing is lost while the process lives

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @property
    def healthy(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {"backend": "memory", "ok": True}

    def _budget(self, key: str) -> _Budget:
        b = self._budgets.get(key)
        if b is None:
            b = self._budgets[key] = _Budget()
        return b

    async def acquire(self, adm: Admission) -> Refusal | None:
        return self.acquire_now(adm)

    def acquire_now(self, adm: Admission) -> Refusal | None:
        """`acquire` without a coroutine: nothing here ever waits (the policy stage calls this)."""
        now = self._clock() * 1000.0
        if now - self._last_sweep > 60_000:
            self._sweep(now)
        refusal: Refusal | None = None
        tats = self._tat
        rates = adm.rates
        new_tats: list[float] = []
        remaining: list[int] = []
        resets: list[int] = []
        settle = False
        for i, r in enumerate(rates):
            period = r.period_ms
            limit = r.limit
            cost = r.cost
            ei = period / limit
            tat = tats.get(r.key, now)
            if tat < now:
                tat = now
            new_tat = tat + ei * cost
            allow_at = new_tat - period
            if r.tokens:
                settle = True
            if cost > limit:
                refusal = refusal or Refusal("too_large", i, 0)
                remaining.append(max(0, int((now - (tat - period)) / ei)))
                resets.append(math.ceil(tat - now))
            elif now < allow_at:
                retry = math.ceil(allow_at - now)
                if refusal is None or (refusal.kind == "rate" and retry > refusal.retry_after_ms):
                    refusal = Refusal("rate", i, retry)
                remaining.append(0)
                resets.append(math.ceil(tat - now))
            else:
                remaining.append(int((now - allow_at) / ei))
                resets.append(math.ceil(new_tat - now))
            new_tats.append(new_tat)
        adm.rate_remaining, adm.rate_reset_ms = remaining, resets
        holds = adm.budgets
        found: list[_Budget] = []
        if holds:
            settle = True
            spent_out: list[int] = []
            reserved_out: list[int] = []
            for i, h in enumerate(holds):
                b = self._budget(h.key)
                if now >= b.next_expiry:
                    b.purge(now)
                spent, reserved = b.spent, b.reserved
                spent_out.append(spent)
                reserved_out.append(reserved)
                found.append(b)
                if refusal is None and spent + reserved + h.amount > h.limit:
                    refusal = Refusal("budget", i, 0)
            adm.budget_spent, adm.budget_reserved = spent_out, reserved_out
        slot = adm.slot
        if slot is not None:
            settle = True
            if refusal is None:
                held = self._slots.get(slot.key)
                if held is not None:
                    self._purge_slot(held, now)
                    if len(held) >= slot.limit:
                        refusal = Refusal("slot", 0, 0)
        if refusal is not None:
            return refusal
        for r, t in zip(rates, new_tats, strict=True):
            tats[r.key] = t
        until = now + adm.lease_ms
        trace = adm.trace_id
        for h, b in zip(holds, found, strict=True):
            if h.ttl_s:
                b.expires = now + h.ttl_s * 1000.0
            amount = h.amount
            if amount:
                b.reserved += amount
                b.leases[trace] = (amount, until)
                if until < b.next_expiry:
                    b.next_expiry = until
        if slot is not None:
            self._slots.setdefault(slot.key, {})[trace] = until
        if settle:
            self._unsettled[trace] = until + _MARKER_EXTRA_MS
        adm.acquired = True
        return None

    @staticmethod
    def _purge_slot(held: dict[str, float], now: float) -> None:
        for trace, until in list(held.items()):
            if until <= now:
                del held[trace]

    def settle(self, s: Settlement) -> None:
        adm = s.admission
        if adm.settled or not adm.acquired:
            return
        adm.settled = True
        trace = adm.trace_id
        if self._unsettled.pop(trace, None) is None:
            return  # settled before (idempotent by trace id)
        now = self._clock() * 1000.0
        holds = adm.budgets
        if holds:
            cost = s.cost
            for h in holds:
                b = self._budget(h.key)
                lease = b.leases.pop(trace, None)
                if lease is not None:
                    b.reserved -= lease[0]
                b.spent += cost
        tokens = s.tokens
        if tokens is not None:
            tats = self._tat
            for r in adm.rates:
                if r.tokens and tokens != r.cost:
                    tat = max(tats.get(r.key, now), now) + (tokens - r.cost) * r.period_ms / r.limit
                    if tat > now:
                        tats[r.key] = tat
                    else:
                        tats.pop(r.key, None)
        slot = adm.slot
        if slot is not None:
            held = self._slots.get(slot.key)
            if held is not None and held.pop(trace, None) is not None and self.on_released is not None:
                self.on_released(slot.key)

    async def flush(self) -> None:
        return None

    async def seed(self, items: list[tuple[str, int, int]]) -> None:
        now = self._clock() * 1000.0
        for key, spent, ttl_s in items:
            if key not in self._budgets:
                b = self._budget(key)
                b.spent = spent
                if ttl_s:
                    b.expires = now + ttl_s * 1000.0

    async def budget_states(self, keys: list[str]) -> list[tuple[int, int]]:
        now = self._clock() * 1000.0
        out = []
        for key in keys:
            b = self._budgets.get(key)
            if b is None:
                out.append((0, 0))
            else:
                b.purge(now)
                out.append((b.spent, b.reserved))
        return out

    def _sweep(self, now: float) -> None:
        """Forget what no longer matters: refilled rate state, ended windows, empty slot sets."""
        self._last_sweep = now
        for k in [k for k, t in self._tat.items() if t <= now]:
            del self._tat[k]
        for k in [k for k, b in self._budgets.items() if b.expires <= now and not b.leases]:
            del self._budgets[k]
        for k, held in list(self._slots.items()):
            self._purge_slot(held, now)
            if not held:
                del self._slots[k]
        for trace in [t for t, until in self._unsettled.items() if until <= now]:
            del self._unsettled[trace]
