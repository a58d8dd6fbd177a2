"""Readiness: the checks `GET /health/ready` runs, one per shared service.

Features register a probe on `AppState.readiness` when they open a shared service (the store
does at start-up; Redis will when counters move there):

    state.readiness.add("redis", redis_ping)

A probe is an async callable that returns None (or a short note) when the service answers
and raises when it does not. Probes run concurrently, each bounded by its timeout.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

Probe = Callable[[], Awaitable[str | None]]


@dataclass(slots=True, frozen=True)
class ProbeResult:
    name: str
    ok: bool
    detail: str | None = None


class Readiness:
    def __init__(self) -> None:
        self._probes: dict[str, tuple[Probe, float]] = {}

    def add(self, name: str, probe: Probe, timeout: float = 2.0) -> None:
        self._probes[name] = (probe, timeout)

    def remove(self, name: str) -> None:
        self._probes.pop(name, None)

    @property
    def names(self) -> list[str]:
        return list(self._probes)

    async def _run(self, name: str, probe: Probe, limit_secs: float) -> ProbeResult:
        try:
            async with asyncio.timeout(limit_secs):
                note = await probe()
        except TimeoutError:
            return ProbeResult(name, False, f"no answer within {limit_secs:g}s")
        except Exception as e:  # a probe's failure is its answer
            return ProbeResult(name, False, f"{type(e).__name__}: {str(e)[:200]}")
        return ProbeResult(name, True, note)

    async def check(self) -> list[ProbeResult]:
        return list(await asyncio.gather(*(self._run(n, p, t) for n, (p, t) in self._probes.items())))


def _touch(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    check = directory / f".ready-{os.getpid()}"
    check.write_bytes(b"ok")
    check.unlink()


def store_probe(engine: "AsyncEngine", spool_dir: Path) -> Probe:
    """Ready while the store answers, or, when it does not, while the spool takes records."""

    async def probe() -> str | None:
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return None
        except Exception as e:
            reason = f"{type(e).__name__}"
            try:
                await asyncio.to_thread(_touch, spool_dir)
            except OSError as disk:
                raise RuntimeError(f"store unavailable ({reason}) and spool not writable ({disk})") from None
            return f"store unavailable ({reason}); records are spooled to disk"

    return probe
