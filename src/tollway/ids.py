"""Trace ids: UUIDv7 (RFC 9562), time-ordered so the ledger sorts naturally.

Trace ids identify, they do not authenticate, so the random bits come from the standard
library's PRNG (no syscall per request, unlike os.urandom).
"""

from __future__ import annotations

import random
import time


def uuid7() -> str:
    ms = time.time_ns() // 1_000_000
    bits = random.getrandbits(74)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (bits >> 62) << 64 | 0x2 << 62 | (bits & (1 << 62) - 1)
    h = "%032x" % value
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
