"""Trace ids: UUIDv7 (RFC 9562), time-ordered so the ledger sorts naturally.

Trace ids identify, they do not authenticate, so the random bits come from a PRNG owned
by the caller (no syscall per request, unlike os.urandom).
"""

from __future__ import annotations

import random
import time

_SYSTEM_RANDOM = random.Random()


def uuid7(rng: random.Random = _SYSTEM_RANDOM) -> str:
    ms = time.time_ns() // 1_000_000
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64 | 0x2 << 62 | rng.getrandbits(62)
    h = "%032x" % value
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
