"""`x-tollway-dropped-params`: the request parameters a translated call could not honour.

The names come from the client's body, so the header is bounded: each name at most
`MAX_NAME_CHARS`, the whole value at most `MAX_HEADER_CHARS` (then `+N more`). Unbounded, a
body with thousands of unknown keys made a header line no client reads (Python's stop at
64 KiB, h11's at 16 KiB): the call was made, and paid for, but its answer never arrived.
A name no header can carry (a space, control or non-ASCII character) is a 400 instead.
"""

from __future__ import annotations

from tollway.errors import ProxyError
from tollway.formats._util import unsafe_param_name

HEADER = b"x-tollway-dropped-params"
MAX_NAME_CHARS = 64
MAX_HEADER_CHARS = 1024


def dropped_params_header(names: list[str]) -> tuple[bytes, bytes]:
    bad = unsafe_param_name(names)
    if bad is not None:
        raise ProxyError("invalid_request", f"Unsupported parameter {bad[:MAX_NAME_CHARS]!r}.",
                         param=bad[:MAX_NAME_CHARS])
    shown: list[str] = []
    size = 0
    for i, name in enumerate(names):
        if len(name) > MAX_NAME_CHARS:
            name = name[:MAX_NAME_CHARS - 3] + "..."
        if size + len(name) + 1 > MAX_HEADER_CHARS - 16:  # room for ",+NNNNNN more"
            shown.append(f"+{len(names) - i} more")
            break
        shown.append(name)
        size += len(name) + 1
    return HEADER, ",".join(shown).encode()
