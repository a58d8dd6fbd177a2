"""Quality scores per deployment from feedback signals (`POST /v1/signals`), read from the store
in the background every `[routing] quality_refresh_secs`: the `quality` policy, profiles and the
catalog read this cached copy, never the store on a request."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tollway.tasks import cancel_and_wait

if TYPE_CHECKING:
    from tollway.routing.catalog import Deployment
    from tollway.state import AppState

log = logging.getLogger("tollway")


class QualityScores:
    def __init__(self, state: "AppState") -> None:
        self._state = state
        # (provider id, served model) -> (mean score, count)
        self.by_model: dict[tuple[str, str], tuple[float, int]] = {}
        self._by_dep: dict[str, float | None] = {}
        self._task: asyncio.Task[None] | None = None

    def score(self, dep: "Deployment") -> float | None:
        name = dep.name
        try:
            return self._by_dep[name]
        except KeyError:
            pass
        found = self.by_model.get((dep.provider.id, dep.model))
        if found is None:  # a served name is often the deployment's model with a version suffix
            matches = [v for (p, m), v in self.by_model.items() if p == dep.provider.id and m.startswith(dep.model)]
            if matches:
                n = sum(c for _, c in matches)
                found = (sum(s * c for s, c in matches) / n, n)
        score = None if found is None else round(found[0], 4)
        if len(self._by_dep) < 10_000:
            self._by_dep[name] = score
        return score

    def count(self, dep: "Deployment") -> int:
        found = self.by_model.get((dep.provider.id, dep.model))
        return found[1] if found else 0

    async def refresh(self) -> None:
        from tollway.storage.signals import quality_by_model

        rows = await quality_by_model(self._state.engine)
        self.by_model = {(r["provider"], r["model"]): (r["score"], r["count"]) for r in rows if r["provider"]}
        self._by_dep = {}

    def start(self, interval: float) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(interval), name="tollway-quality")

    async def _run(self, interval: float) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("routing: could not read quality scores: %r", e)
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def summary(self) -> list[dict[str, Any]]:
        return [{"provider": p, "model": m, "score": round(s, 4), "count": c}
                for (p, m), (s, c) in sorted(self.by_model.items())]
