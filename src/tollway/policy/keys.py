"""Virtual keys: `tw-<public id>-<secret>`.

The public id names the key everywhere (records, logs, metrics, the API); the `tw-` prefix
lets secret scanners recognise a leaked key. The store keeps only the SHA-256 of the whole
key. A fast hash is right here, where a slow one (bcrypt, argon2) would not add anything:
those exist to make guessing *low-entropy* passwords expensive, and the secret is 256 random
bits, so no amount of guessing finds it. It also keeps authentication a dict lookup of a
digest on every request instead of milliseconds of hashing.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

PREFIX = "tw-"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def new_public_id() -> str:
    """"k" + 11 lower-case base32 characters (55 random bits: ids need to be unique, not secret)."""
    return "k" + base64.b32encode(secrets.token_bytes(7)).decode().lower().rstrip("=")[:11]


def new_key(public_id: str) -> str:
    return f"{PREFIX}{public_id}-{secrets.token_urlsafe(32)}"


def key_hash(key: str) -> str:
    """What the store keeps: hex SHA-256 of the whole key (the KeyRing looks up its digest)."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(public_id: str) -> str:
    """How a listing shows a key it cannot show: `tw-k7q2m9x4ht3a-…`."""
    return f"{PREFIX}{public_id}-…"


def parse_duration(text: str) -> float:
    """ "30d", "24h", "15m", "90s", "2w" -> seconds. ValueError says what is accepted."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"a duration is a number and a unit (s, m, h, d, w), e.g. 24h or 30d; got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]
