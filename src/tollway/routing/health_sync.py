"""Breakers and credential cool-downs shared between instances through Redis (`[redis] url`).

Off the request path: the board (`routing.health.MemoryHealth`) records transitions in its
`changed` / `cool_changed` tables and pokes this task; the task sends them, and reads the shared
tables back, in one pipelined round trip, at once after a change and every `interval` seconds
otherwise. Requests only ever read the local copy, so a routing decision costs no Redis round
trip. Two hashes under `[redis] prefix`: `health:breakers` (key -> until, wall clock) and
`health:cooling` (provider|credential -> until). Entries long past are removed by whoever sees
them. Session affinity (`routing.affinity`) rides the same round trip: changed sessions are
written (`affinity:<model>\x00<session>`, an hour's expiry) and sessions asked for here but
unknown are read. Redis unreachable: the board keeps judging locally; the error is logged once per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from tollway.redis_client import describe
from tollway.tasks import cancel_and_wait

if TYPE_CHECKING:
    from tollway.routing.health import MemoryHealth

log = logging.getLogger("tollway")

_STALE_S = 3600.0  # an open breaker this long past its cool-down is forgotten
_AFFINITY_TTL_S = 3600


class RedisHealthSync:
    def __init__(self, board: "MemoryHealth", redis: Any, prefix: str, interval: float = 0.5,
                 affinity: Any = None) -> None:
        self.board = board
        self.affinity = affinity
        self._affinity_prefix = f"{prefix}affinity:"
        if affinity is not None:
            affinity.shared = True
            affinity.poke = self.poke
        self._redis = redis
        self._breakers = f"{prefix}health:breakers"
        self._cooling = f"{prefix}health:cooling"
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.down = False
        self.rounds = 0
        board.sync = self

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tollway-health-sync")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        with contextlib.suppress(Exception):
            await self.sync_once()  # what changed last

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.sync_once()
                if self.down:
                    log.warning("health: Redis answers again; breakers are shared again")
                    self.down = False
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not self.down:
                    log.error("health: cannot share breaker state through Redis (%s); judging locally", describe(e))
                    self.down = True
                await asyncio.sleep(self.interval)

    async def sync_once(self) -> None:
        board = self.board
        changed, board.changed = board.changed, {}
        cooled, board.cool_changed = board.cool_changed, {}
        aff = self.affinity
        sessions: dict[tuple[str, str], str] = {}
        wanted: list[tuple[str, str]] = []
        if aff is not None:
            sessions, aff.outbox = aff.outbox, {}
            wanted, aff.wanted = list(aff.wanted), set()
        try:
            pipe = self._redis.pipeline(transaction=False)
            opened = {k: repr(v) for k, v in changed.items() if v > 0}
            closed = [k for k, v in changed.items() if v <= 0]
            if opened:
                pipe.hset(self._breakers, mapping=opened)
            if closed:
                pipe.hdel(self._breakers, *closed)
            if cooled:
                pipe.hset(self._cooling, mapping={k: repr(v) for k, v in cooled.items()})
            for (model, session), dep in sessions.items():
                pipe.set(f"{self._affinity_prefix}{model}\x00{session}", dep, ex=_AFFINITY_TTL_S)
            if wanted:
                pipe.mget([f"{self._affinity_prefix}{m}\x00{s}" for m, s in wanted])
            pipe.hgetall(self._breakers)
            pipe.hgetall(self._cooling)
            results = await pipe.execute()
        except BaseException:
            # put back what was not sent (newer local changes win)
            board.changed = {**changed, **board.changed}
            board.cool_changed = {**cooled, **board.cool_changed}
            raise
        if wanted and aff is not None:
            for (model, session), dep in zip(wanted, results[-3], strict=True):
                if dep:
                    aff.learn(model, session, dep.decode())
        now = time.time()
        breakers = _floats(results[-2])
        cooling = _floats(results[-1])
        stale = [k for k, v in breakers.items() if v < now - _STALE_S]
        gone = [k for k, v in cooling.items() if v < now]
        for k in stale:
            del breakers[k]
        if stale or gone:
            pipe = self._redis.pipeline(transaction=False)
            if stale:
                pipe.hdel(self._breakers, *stale)
            if gone:
                pipe.hdel(self._cooling, *gone)
            await pipe.execute()
        board.apply_remote(breakers, cooling, now)
        self.rounds += 1


def _floats(raw: dict[bytes, bytes]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (raw or {}).items():
        try:
            out[k.decode()] = float(v)
        except (ValueError, UnicodeDecodeError):
            continue
    return out
