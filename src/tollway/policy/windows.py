"""Budget windows: calendar day, ISO week (from Monday) and month in UTC, or all time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

WINDOWS: tuple[str, ...] = ("day", "week", "month", "total")
_KEEP_AFTER_END = 2 * 86_400  # a window's counter outlives its end by this much (late settlements, listings)


@dataclass(frozen=True, slots=True)
class Window:
    kind: str
    start: float  # unix seconds, inclusive
    end: float  # exclusive; inf for "total"
    label: str  # part of the counter's name: d20261122, w20261116, m202611, total
    reset: str | None = None  # RFC 3339 UTC time the window ends; None for "total"
    ttl: int = 0  # seconds a counter of this window is kept from its start (0: forever)

    def ttl_s(self, now: float) -> int:
        """How long the window's counter must be kept from `now` (0: forever)."""
        if self.end == math.inf:
            return 0
        return max(1, int(self.end - now) + _KEEP_AFTER_END)

    def resets_at(self) -> str | None:
        return self.reset


def window_at(kind: str, t: float) -> Window:
    if kind == "total":
        return Window("total", 0.0, math.inf, "total")
    now = datetime.fromtimestamp(t, UTC)
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if kind == "day":
        start, end, label = day, day + timedelta(days=1), day.strftime("d%Y%m%d")
    elif kind == "week":
        start = day - timedelta(days=day.weekday())
        end, label = start + timedelta(days=7), start.strftime("w%Y%m%d")
    elif kind == "month":
        start = day.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        label = start.strftime("m%Y%m")
    else:
        raise ValueError(f"unknown budget window {kind!r}")
    return Window(kind, start.timestamp(), end.timestamp(), label, end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  int((end - start).total_seconds()) + _KEEP_AFTER_END)
