"""Waiting for a concurrency slot, first come first served (`queue_timeout_ms`).

Per key, waiters form a FIFO; only the head asks the counters again, when a slot of that key
is released here or, with shared counters, every `poll` seconds (another instance may have
released one). A new request never overtakes a queued one. The wait is bounded by the key's
queue timeout; then it is a 429.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class SlotQueues:
    def __init__(self, poll: float | None) -> None:
        self._poll = poll  # None: every release is local (in-process counters)
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}

    def released(self, key: str) -> None:
        q = self._queues.get(key)
        if q:
            head = q[0]
            if not head.done():
                head.set_result(None)

    def busy(self, key: str) -> bool:
        return bool(self._queues.get(key))

    async def wait_turn(self, key: str, timeout_s: float, attempt: Callable[[], Awaitable[T]],
                        still_waiting: Callable[[T], bool]) -> T:
        """Queue behind earlier waiters, then call `attempt` until it no longer needs to wait
        or the time is up; returns the last result."""
        deadline = time.monotonic() + timeout_s
        q = self._queues.setdefault(key, deque())
        loop = asyncio.get_running_loop()
        me: asyncio.Future[None] = loop.create_future()
        q.append(me)
        try:
            while q[0] is not me:  # wait to be the head
                left = deadline - time.monotonic()
                if left <= 0:
                    return await attempt()
                try:
                    await asyncio.wait_for(asyncio.shield(me), left)
                except TimeoutError:
                    return await attempt()
                if q[0] is not me:
                    me = self._renew(q, me, loop)
            while True:
                result = await attempt()
                left = deadline - time.monotonic()
                if not still_waiting(result) or left <= 0:
                    return result
                if me.done():
                    me = self._renew(q, me, loop)
                wait = left if self._poll is None else min(left, self._poll)
                try:
                    await asyncio.wait_for(asyncio.shield(me), wait)
                except TimeoutError:
                    pass
        finally:
            try:
                q.remove(me)
            except ValueError:
                pass
            if q:
                if not q[0].done():
                    q[0].set_result(None)  # the next in line may try now
            else:
                self._queues.pop(key, None)

    @staticmethod
    def _renew(q: deque[asyncio.Future[None]], old: asyncio.Future[None],
               loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        new: asyncio.Future[None] = loop.create_future()
        q[q.index(old)] = new
        return new
