"""Keeps every instance's directory and KeyRing current: polls the store's change marker
(`policy_version`, one indexed single-row read) every `[key_store] refresh_secs` (0.25 s by
default) and rebuilds both when it moved, so a key revoked or rotated on any instance, or by
the CLI on the store directly, stops working everywhere within a second. Requests never wait
for this: they read whichever directory is current.

Before a new directory is published, budgets it has not seen get their window's spend from
the ledger (`seed`; in Redis only where the counter has none yet).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from tollway.counters.base import CountersUnavailable
from tollway.policy import directory as directory_mod
from tollway.policy.spend import ledger_spend
from tollway.tasks import cancel_and_wait

if TYPE_CHECKING:
    from tollway.state import AppState

log = logging.getLogger("tollway")


class PolicyRefresher:
    def __init__(self, state: "AppState") -> None:
        self._state = state
        self._seeded: set[str] = set()  # budget counters whose ledger spend was handed to the counters
        self._generation = 0  # of the counter store, when _seeded was filled
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.version = -1
        self.last_error: str | None = None

    async def load(self) -> None:
        """Read the store, rebuild, seed new budgets, publish. Raises on store errors."""
        async with self._lock:
            st = self._state
            snap = await st.policy_store.snapshot()
            d, entries = directory_mod.build(st.settings, snap, st.secret_box)
            await self._seed(d)
            st.keys.replace(entries)
            st.publish_directory(d)
            self.version = snap.version

    async def _seed(self, d: "directory_mod.Directory") -> None:
        if self._state.counters.generation != self._generation:  # Redis came back, maybe empty
            self._generation = self._state.counters.generation
            self._seeded.clear()  # seeding again sets only the counters that are missing
        now = time.time()
        fresh = []
        for b in d.budgets:
            win, key = b.current(now)
            if key not in self._seeded:
                fresh.append((b, win, key))
        if not fresh:
            return
        st = self._state
        await st.ledger.flush()
        spent = await ledger_spend(st.engine, [b for b, _, _ in fresh], now)
        try:
            await st.counters.seed([(key, spent[b.id], win.ttl_s(now)) for b, win, key in fresh])
        except CountersUnavailable as e:
            log.error("budgets: could not hand the ledger's spend to the counters (%s); retrying", e)
            return
        self._seeded.update(key for _, _, key in fresh)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tollway-policy-refresh")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, swallow_errors=True)

    async def report_budgets(self) -> None:
        """tollway_budget_remaining_usd for every budget's current window (telemetry's gauge)."""
        st = self._state
        budgets = st.directory.budgets
        if st.metrics is None or not budgets:
            return
        now = time.time()
        try:
            states = await st.counters.budget_states([b.current(now)[1] for b in budgets])
        except CountersUnavailable:
            return
        for b, (spent, reserved) in zip(budgets, states, strict=True):
            st.metrics.budget_left(b.scope, b.name, max(0, b.limit - spent - reserved) / 1e9)

    async def _run(self) -> None:
        interval = self._state.settings.key_store.refresh_secs
        last_report = 0.0
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - last_report >= 5.0:
                last_report = time.monotonic()
                try:
                    await self.report_budgets()
                except Exception:
                    log.exception("budgets: reporting the remaining budgets failed")
            try:
                if await self._state.policy_store.version() != self.version:
                    await self.load()
                elif self._state.directory.budgets:
                    await self._seed(self._state.directory)  # retries after a counter outage
                if self.last_error is not None:
                    log.warning("keys: the store is readable again; keys and budgets are current")
                    self.last_error = None
            except (SQLAlchemyError, OSError) as e:
                msg = str(getattr(e, "orig", None) or e).splitlines()[0][:200]
                if self.last_error is None:
                    log.error("keys: cannot read the store (%s); serving the keys and budgets loaded before", msg)
                self.last_error = msg
            except Exception:
                log.exception("keys: refresh failed")
