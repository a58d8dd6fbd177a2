"""Types shared by the counter stores, and the rules both implement.

One `Admission` carries everything a request must pass: GCRA rate limits (requests or tokens
per period), budget holds (a reservation in nano-USD against a window's spend) and at most one
concurrency slot. `acquire()` checks all of them and charges all of them, or charges nothing
(atomically: a Lua script in Redis, a plain function on the event loop in memory). `settle()`
turns the holds into real spend once the request is over:

- rates: GCRA (the generic cell rate algorithm, as in redis-cell and go-redis/redis_rate): a
  limit of N per period allows bursts of N and refills one unit every period/N. Token limits
  are charged the request's estimate up front and corrected by the real count at settlement.
- budgets: refused when spent + reserved + this request's worst case > limit. A reservation
  carries a lease (`lease_ms`): past it the reservation is dropped, so a hung request or a dead
  instance cannot hold budget for longer than a request may last. Settlement adds the real cost
  (even after the lease ran out: the money was spent) and releases the reservation once.
- slots: at most `limit` requests of a key in flight; a slot is released at settlement or when
  its lease runs out.
- settlement is idempotent per admission (keyed by trace id): settling twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class CountersUnavailable(Exception):
    """The shared counter store cannot be reached (its message never holds a secret)."""


@dataclass(slots=True)
class RateCharge:
    key: str  # counter name, without the store's prefix
    limit: int  # units per period
    period_ms: int
    cost: int  # units charged now
    tokens: bool  # a token limit (corrected at settlement) rather than a request limit
    label: str  # for messages: "key k8f3 requests per minute"
    limit_b: bytes = b""  # str(limit).encode(), when made once for many requests (headers)


@dataclass(slots=True)
class BudgetHold:
    key: str  # the budget's counter for one window
    limit: int  # nano-USD
    amount: int  # nano-USD reserved (the worst case)
    ttl_s: int  # how long the window's counter is kept (0: forever)
    rule: Any  # the policy's Budget, for messages and headers


@dataclass(slots=True)
class SlotHold:
    key: str
    limit: int


class Admission:
    """What one request asks of the counters; after acquire(), also what they answered
    (`rate_remaining`, `rate_reset_ms`, `budget_spent`, `budget_reserved`, index by index).
    A plain slotted class: one is made per limited request."""

    __slots__ = ("trace_id", "lease_ms", "rates", "budgets", "slot", "rate_remaining", "rate_reset_ms",
                 "budget_spent", "budget_reserved", "acquired", "settled")

    def __init__(self, trace_id: str, lease_ms: int, rates: list[RateCharge] | None = None,
                 budgets: list[BudgetHold] | None = None, slot: SlotHold | None = None) -> None:
        self.trace_id = trace_id
        self.lease_ms = lease_ms
        self.rates: list[RateCharge] = [] if rates is None else rates
        self.budgets: list[BudgetHold] = [] if budgets is None else budgets
        self.slot = slot
        self.rate_remaining: list[int] = _NONE
        self.rate_reset_ms: list[int] = _NONE
        self.budget_spent: list[int] = _NONE
        self.budget_reserved: list[int] = _NONE
        self.acquired = False
        self.settled = False

    @property
    def needs_settlement(self) -> bool:
        return bool(self.budgets) or self.slot is not None or any(r.tokens for r in self.rates)


_NONE: list[int] = []  # shared, never appended to: acquire() assigns fresh lists


@dataclass(slots=True)
class Refusal:
    kind: str  # "rate" | "budget" | "slot" | "too_large" (a token charge over the whole limit)
    index: int  # which rate or budget
    retry_after_ms: int


@dataclass(slots=True)
class Settlement:
    admission: Admission
    cost: int  # real cost, nano-USD (0 when unknown)
    tokens: int | None  # real tokens (input + output); None: keep the estimate


class CounterStore(Protocol):
    name: str  # "memory" | "redis"
    generation: int  # changes when the store may have lost data (Redis back after an outage)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def healthy(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...

    async def acquire(self, adm: Admission) -> Refusal | None:
        """Check and charge everything, or nothing. Raises CountersUnavailable."""
        ...

    def settle(self, s: Settlement) -> None:
        """Never raises and never waits: the shared store batches settlements in the background."""
        ...

    async def flush(self) -> None:
        """Wait until settlements made so far are applied (tests, shutdown)."""
        ...

    async def seed(self, items: list[tuple[str, int, int]]) -> None:
        """(budget counter, spent nano-USD, ttl_s): set the spend of counters that have none yet."""
        ...

    async def budget_states(self, keys: list[str]) -> list[tuple[int, int]]:
        """(spent, reserved) nano-USD of each budget counter, expired reservations dropped."""
        ...
