"""Project slugs: the one rule for `/projects/{slug}/`, the project headers and `[[keys]] project`.

1 to 64 characters: ASCII letters, digits, `.`, `_` and `-`, starting with a letter or a digit.
A slug is stored in every record and written in every log line, so it must be short and
plain; anything else is a 400 in the route's format (or a configuration error).
"""

from __future__ import annotations

import re

SLUG_MAX = 64
SLUG_RULE = (f"1 to {SLUG_MAX} characters: ASCII letters, digits, '.', '_' or '-', "
             "starting with a letter or a digit")
_SLUG = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{SLUG_MAX - 1}}}")
_SLUG_BYTES = re.compile(_SLUG.pattern.encode())


def is_slug(value: str | bytes) -> bool:
    if isinstance(value, bytes):
        return _SLUG_BYTES.fullmatch(value) is not None
    return _SLUG.fullmatch(value) is not None


def checked_project(value: str | None) -> str | None:
    """A settings validator's check: `value` unchanged, or ValueError naming the rule."""
    if value is not None and not is_slug(value):
        raise ValueError(f"a project slug is {SLUG_RULE}")
    return value
