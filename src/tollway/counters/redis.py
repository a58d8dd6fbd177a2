"""Counters in Redis (`[redis] url`): several Tollway processes enforce one set of limits.

A request waits for one round trip at most. Admissions and settlements queue here, and one
background task sends everything that queued while its previous call was in flight as one
call of the BATCH script (see `scripts`): settlements first, then admissions, each all or
nothing, in arrival order. Settlements are never awaited by requests. Under load, one round
trip serves many requests, which is what keeps redis-py's own cost per call (~80 µs of CPU
here) from being paid per request. While Redis is unreachable the store is "down": `acquire` raises at
once (the policy applies `[redis] on_error`), settlements wait in the queue (bounded), and a
probe reconnects every half second; when Redis answers again the queue is applied and limits
are enforced again. Every transition is logged at ERROR / WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tollway.counters import scripts
from tollway.counters.base import Admission, CountersUnavailable, Refusal, Settlement

log = logging.getLogger("tollway")

_KINDS = {1: "rate", 2: "budget", 3: "slot", 4: "too_large"}
_MAX_PENDING = 100_000
_BATCH = 200
_TIMEOUTS_BEFORE_DOWN = 3
_MARKER_EXTRA_MS = 86_400_000  # a settlement may arrive this long after its lease ended


def _describe(e: BaseException) -> str:
    """An error message without the URL (it may hold a password)."""
    return f"{type(e).__name__}: {str(e).split(' url=')[0][:200]}"


class RedisCounters:
    name = "redis"

    def __init__(self, url: str, prefix: str, timeout_ms: int) -> None:
        t = timeout_ms / 1000.0
        self._client = aioredis.Redis.from_url(url, socket_timeout=t, socket_connect_timeout=t,
                                               max_connections=256, decode_responses=False)
        self._prefix = prefix
        self._batch_s = self._client.register_script(scripts.BATCH)
        self._seed_s = self._client.register_script(scripts.SEED)
        self._peek_s = self._client.register_script(scripts.PEEK)
        self._pending: deque[Settlement] = deque()
        self._admissions: deque[tuple[Admission, asyncio.Future[Refusal | None]]] = deque()
        self._wake = asyncio.Event()
        self._up = asyncio.Event()
        self._up.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self.down_since: float | None = None
        self.last_error: str | None = None
        self.dropped = 0
        self._timeouts = 0  # in a row
        # +1 at every recovery: Redis may have lost its data meanwhile, so budgets are seeded again
        self.generation = 0
        self.on_released: Callable[[str], None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._client.ping()
        except RedisError as e:
            self._mark_down(e)
        self._tasks = [asyncio.create_task(self._sender(), name="tollway-counters-send"),
                       asyncio.create_task(self._prober(), name="tollway-counters-probe")]

    async def close(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.flush(), 5.0)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._pending:
            log.error("counters: %d settlements could not reach Redis before shutdown", len(self._pending))
        await self._client.aclose()

    @property
    def healthy(self) -> bool:
        return self.down_since is None

    def status(self) -> dict[str, Any]:
        return {"backend": "redis", "ok": self.healthy, "down_since": self.down_since, "last_error": self.last_error,
                "pending_settlements": len(self._pending), "dropped_settlements": self.dropped}

    def _failed(self, e: BaseException) -> None:
        """A call failed: a refused connection means down at once; a slow answer (a busy server,
        a long pause) only after several in a row, so one hiccup does not stop every call."""
        if isinstance(e, RedisTimeoutError) and not isinstance(e, RedisConnectionError):
            self._timeouts += 1
            self.last_error = _describe(e)
            if self._timeouts < _TIMEOUTS_BEFORE_DOWN:
                log.warning("counters: Redis answered too slowly (%s)", self.last_error)
                return
        self._mark_down(e)

    def _mark_down(self, e: BaseException) -> None:
        self.last_error = _describe(e)
        if self.down_since is None:
            self.down_since = time.time()
            self._up.clear()
            log.error("counters: Redis is unreachable (%s); limits and budgets follow [redis] on_error until it "
                      "returns", self.last_error)

    def _mark_up(self) -> None:
        if self.down_since is not None:
            log.warning("counters: Redis is reachable again after %.1f s; %d settlements queued meanwhile are being "
                        "applied", time.time() - self.down_since, len(self._pending))
            self.down_since = None
            self._timeouts = 0
            self.generation += 1
            self._up.set()
            self._wake.set()

    async def _prober(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self.down_since is None:
                continue
            try:
                await self._client.ping()
            except RedisError as e:
                self.last_error = _describe(e)
                continue
            self._mark_up()

    async def _run(self, script, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except NoScriptError:  # Redis restarted and lost its script cache: redis-py reloads on retry
            return await script(keys=keys, args=args)

    # -- requests -------------------------------------------------------------------------------
    async def acquire(self, adm: Admission) -> Refusal | None:
        if self.down_since is not None:
            raise CountersUnavailable(self.last_error or "Redis is unreachable")
        fut: asyncio.Future[Refusal | None] = asyncio.get_running_loop().create_future()
        self._admissions.append((adm, fut))
        self._wake.set()
        return await fut

    def settle(self, s: Settlement) -> None:
        adm = s.admission
        if adm.settled or not adm.acquired or not adm.needs_settlement:
            return
        adm.settled = True
        if len(self._pending) >= _MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("counters: %d settlements dropped (Redis down and the queue full): budgets undercount",
                          self.dropped)
        self._pending.append(s)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        while self._pending or not self._idle.is_set():
            await self._idle.wait()
            if self._pending:
                await asyncio.sleep(0.005)

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending or self._admissions:
                if self.down_since is not None:
                    self._fail_admissions()
                    if self._pending:
                        self._idle.clear()
                        await self._up.wait()
                    continue
                self._idle.clear()
                settles = [self._pending.popleft() for _ in range(min(_BATCH, len(self._pending)))]
                admissions = [self._admissions.popleft() for _ in range(min(_BATCH, len(self._admissions)))]
                try:
                    released, results = await self._send(settles, [a for a, _ in admissions])
                except RedisError as e:
                    self._pending.extendleft(reversed(settles))
                    self._failed(e)
                    err = CountersUnavailable(self.last_error or "Redis error")
                    for _, fut in admissions:
                        if not fut.done():
                            fut.set_exception(err)
                    continue
                except Exception as e:
                    log.exception("counters: a batch failed; %d settlements dropped", len(settles))
                    for _, fut in admissions:
                        if not fut.done():
                            fut.set_exception(CountersUnavailable(f"internal error: {type(e).__name__}"))
                    continue
                self._timeouts = 0
                for (adm, fut), result in zip(admissions, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
                    elif result is None:  # its request went away while waiting: give back what it got
                        self.settle(Settlement(adm, 0, 0))
                if self.on_released is not None:
                    for key in released:
                        self.on_released(key)
            self._idle.set()

    def _fail_admissions(self) -> None:
        err = CountersUnavailable(self.last_error or "Redis is unreachable")
        while self._admissions:
            _, fut = self._admissions.popleft()
            if not fut.done():
                fut.set_exception(err)

    async def _send(self, settles: list[Settlement], admissions: list[Admission]
                    ) -> tuple[list[str], list[Refusal | None]]:
        p = self._prefix
        keys: list[str] = []
        args: list[Any] = [len(settles), len(admissions)]
        for s in settles:
            adm = s.admission
            token_rates = [r for r in adm.rates if r.tokens]
            args += (len(adm.budgets), len(token_rates), 1 if adm.slot else 0, adm.trace_id, s.cost)
            keys.append(p + "m:" + adm.trace_id)
            for h in adm.budgets:
                keys += (p + h.key, p + h.key + ":l")
                args += (h.amount, h.ttl_s)
            for r in token_rates:
                keys.append(p + r.key)
                args += (repr(r.period_ms / r.limit), 0 if s.tokens is None else s.tokens - r.cost)
            if adm.slot is not None:
                keys.append(p + adm.slot.key)
        for adm in admissions:
            args += (adm.trace_id, adm.lease_ms, len(adm.rates), len(adm.budgets), 1 if adm.slot else 0,
                     adm.lease_ms + _MARKER_EXTRA_MS if adm.needs_settlement else 0)
            for r in adm.rates:
                keys.append(p + r.key)
                args += (r.limit, r.period_ms, r.cost)
            for h in adm.budgets:
                keys += (p + h.key, p + h.key + ":l")
                args += (h.limit, h.amount, h.ttl_s)
            if adm.slot is not None:
                keys.append(p + adm.slot.key)
                args.append(adm.slot.limit)
            keys.append(p + "m:" + adm.trace_id)
        res = await self._run(self._batch_s, keys, args)
        n = int(res[0])
        cut = len(p.encode())
        released = [(k[cut:].decode() if isinstance(k, bytes) else k[len(p):]) for k in res[1:1 + n]]
        i = 1 + n
        results: list[Refusal | None] = []
        for adm in admissions:
            kind, index, retry = int(res[i]), int(res[i + 1]), int(res[i + 2])
            i += 3
            nr, nb = len(adm.rates), len(adm.budgets)
            adm.rate_remaining = [int(res[i + 2 * x]) for x in range(nr)]
            adm.rate_reset_ms = [int(res[i + 1 + 2 * x]) for x in range(nr)]
            i += 2 * nr
            adm.budget_spent = [int(res[i + 2 * x]) for x in range(nb)]
            adm.budget_reserved = [int(res[i + 1 + 2 * x]) for x in range(nb)]
            i += 2 * nb
            if kind:
                results.append(Refusal(_KINDS[kind], index, retry))
            else:
                adm.acquired = True
                results.append(None)
        return released, results

    # -- budgets --------------------------------------------------------------------------------
    async def seed(self, items: list[tuple[str, int, int]]) -> None:
        if not items:
            return
        try:
            await self._run(self._seed_s, [self._prefix + k for k, _, _ in items],
                            [x for _, spent, ttl in items for x in (spent, ttl)])
        except RedisError as e:
            self._failed(e)
            raise CountersUnavailable(self.last_error or "Redis error") from None

    async def budget_states(self, keys: list[str]) -> list[tuple[int, int]]:
        if not keys:
            return []
        flat = [x for k in keys for x in (self._prefix + k, self._prefix + k + ":l")]
        try:
            res = await self._run(self._peek_s, flat, [])
        except RedisError as e:
            self._failed(e)
            raise CountersUnavailable(self.last_error or "Redis error") from None
        return [(int(res[2 * i]), int(res[2 * i + 1])) for i in range(len(keys))]
