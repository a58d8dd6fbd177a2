"""Latency histograms: fixed log-scale bins that add up across rows, so p50/p95 survive rollups.

Percentiles cannot be summed, counts per bin can. Every latency (and time to first token) is
counted in one of `NBINS` bins whose edges grow by 2^(1/3) (three bins per doubling) from
0.5 ms to 2^18 ms (~262 s): bin 0 is <= 0.5 ms, bin i holds EDGES[i-1] < x <= EDGES[i], the
last bin everything above. A percentile is found by nearest rank over the bin counts and
reported as the bin's geometric middle, clamped to the exact min and max of the group, so it is
within 2^(1/6) - 1 (about 12 %) of the exact nearest-rank value, and exact for one value.
Written by hand: the bins must be plain SQL columns that both engines can SUM, which no
sketch library's opaque binary format allows.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

LOW_K = -3  # first edge 2^(-3/3) = 0.5 ms
HIGH_K = 54  # last edge 2^(54/3) = 262,144 ms
EDGES: tuple[float, ...] = tuple(2.0 ** (k / 3) for k in range(LOW_K, HIGH_K + 1))
NBINS = len(EDGES) + 1  # 59
RELATIVE_ERROR = 2 ** (1 / 6) - 1


def bin_of(x: float) -> int:
    return bisect_left(EDGES, x)


def columns(prefix: str) -> list[str]:
    """`lat_h00` .. `lat_h58`: the column names of one histogram."""
    return [f"{prefix}_h{i:02d}" for i in range(NBINS)]


def percentile(counts: Sequence[int], p: float, lo: float | None, hi: float | None) -> float | None:
    """Nearest-rank percentile `p` (0-100) estimated from bin counts; None without values."""
    n = sum(counts)
    if n <= 0:
        return None
    rank = max(1, math.ceil(p * n / 100))
    seen = 0
    i = 0
    for i, c in enumerate(counts):  # noqa: B007 (i is the bin the loop stops at)
        seen += c
        if seen >= rank:
            break
    if i == 0:
        est = EDGES[0]
    elif i >= len(EDGES):
        est = EDGES[-1]
    else:
        est = math.sqrt(EDGES[i - 1] * EDGES[i])
    if lo is not None:
        est = max(est, lo)
    if hi is not None:
        est = min(est, hi)
    return round(est, 3)
