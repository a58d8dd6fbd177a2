"""The upstream path and query of a pass-through call, built in one place.

The client's path is taken as sent (`raw_path`, still percent-encoded), split into segments,
each decoded once, and dot-segments resolved. A path that then leaves its prefix (`/v1/`, or
`/proxy/<kind>/v1/`), or holds an encoded `/` or `\\`, a space or a control character, is
refused before anything goes upstream: `..%2f..%2f` and `%2e%2e` never reach a provider with
Tollway's key, and no request line is ever broken. Segments are re-encoded for the upstream
URL, so what the provider sees is exactly what was checked. The query string keeps its
encoding; a `key` parameter (Gemini's credential) is removed.
"""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes

from tollway.errors import ProxyError

# pchar of RFC 3986 besides unreserved characters (which quote() never escapes)
_SEGMENT_SAFE = "!$&'()*+,;=:@"
_FORBIDDEN = frozenset(range(0x21)) | {0x7F, ord("/"), ord("\\")}


def _refuse(why: str) -> ProxyError:
    return ProxyError("invalid_request", f"Invalid pass-through path: {why}.")


def upstream_subpath(raw_path: bytes, prefix: str) -> str:
    """`raw_path` (as sent, percent-encoded) minus `prefix` (e.g. "/v1"), normalised and
    re-encoded: "/files/abc/content". Raises a 400 ProxyError for a path that cannot go upstream."""
    segments: list[str] = []
    parts = raw_path.split(b"/")
    if parts[0] != b"":
        raise _refuse("it must start with /")
    last = len(parts) - 1
    for i, raw in enumerate(parts[1:], 1):
        seg = unquote_to_bytes(raw)
        if seg in (b"", b"."):
            if i == last and segments:
                segments.append("")  # keep a trailing slash
            continue
        if seg == b"..":
            if not segments:
                raise _refuse("it climbs above the root")
            segments.pop()
            continue
        if any(b in _FORBIDDEN for b in seg):
            raise _refuse("a space, control character or encoded slash in a segment")
        segments.append(quote(seg, safe=_SEGMENT_SAFE))
    path = "/" + "/".join(segments)
    if not (path + "/").startswith(prefix + "/") or len(path) <= len(prefix) + 1:
        raise _refuse(f"it leaves {prefix}/")
    return path[len(prefix):]


def upstream_query(query: bytes) -> str:
    """The query string to send on: encoding kept, `key=` dropped, non-ASCII bytes escaped;
    a raw space or control character is a 400."""
    if not query:
        return ""
    if any(b <= 0x20 or b == 0x7F for b in query):
        raise ProxyError("invalid_request", "Invalid query string: a space or control character.")
    kept = [p for p in query.split(b"&") if p and unquote_to_bytes(p.partition(b"=")[0].replace(b"+", b" ")) != b"key"]
    return quote(b"&".join(kept), safe="&=%+!$'()*,;:@/?~-._")
