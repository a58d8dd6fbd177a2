"""The telemetry stage: first in, last out, so it sees every request whole.

`before` opens the request's trace span (only when OpenTelemetry is on); `after` runs when
accounting is done (cost known) and feeds the metrics and closes the span.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tollway.pipeline.context import RequestContext

if TYPE_CHECKING:
    from tollway.telemetry.metrics import Metrics
    from tollway.telemetry.tracing import Tracing


class TelemetryStage:
    __slots__ = ("_metrics", "_tracing")

    def __init__(self, metrics: "Metrics | None", tracing: "Tracing | None") -> None:
        self._metrics = metrics
        self._tracing = tracing

    async def before(self, ctx: RequestContext) -> None:
        if self._tracing is not None:
            ctx.trace = self._tracing.start(ctx)

    async def after(self, ctx: RequestContext) -> None:
        elapsed = time.perf_counter() - ctx.t0
        if self._metrics is not None:
            self._metrics.observe(ctx, elapsed)
        if ctx.trace is not None:
            ctx.trace.end(ctx)
