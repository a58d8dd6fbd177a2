"""Redaction of bodies about to be stored (`[store] log_bodies`): whatever was found never
reaches the ledger, however the bytes spell it.

Scanning the raw bytes is not enough: JSON may spell a key with escapes (`\\u0041KIA...`), and
a streamed answer splits it across events (`"AKIAQY"` in one `data:` line, `"LPMN5HHH"` in the
next). So a JSON body is decoded and every string in it scanned; an SSE body is decoded event
by event, and the text its events carry (`content`, `text`, `delta`, `arguments`, ...) is
scanned joined in stream order, a finding that spans events being redacted in each piece of it
(the placeholder in the first). The raw bytes are scanned last, for anything else.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.guard.scanner import Scanner, placeholder
from tollway.guard.walk import _leaves
from tollway.sse import SSEDecoder, encode_event

# keys whose strings are pieces of a streamed answer (all formats' deltas)
_STREAM_TEXT = frozenset({"content", "text", "delta", "partial_json", "arguments", "thinking", "refusal",
                          "output_text", "transcript"})


def _redact_leaves(scanner: Scanner, obj: Any) -> bool:
    slots: list[tuple[Any, Any]] = []
    _leaves(obj, slots)
    changed = False
    for container, key in slots:
        text = container[key]
        found = scanner.scan(text)
        if found:
            container[key] = Scanner.redact(text, found)
            changed = True
    return changed


def _joined(scanner: Scanner, pieces: list[tuple[Any, Any]]) -> bool:
    """Scan the stream's text pieces joined; redact findings that span pieces, in each piece."""
    encoded = [p[0][p[1]].encode("utf-8", "surrogatepass") for p in pieces]
    joined = b"".join(encoded)
    found = scanner.scan_bytes(joined)
    if not found:
        return False
    edits: dict[int, list[tuple[int, int, bytes]]] = {}
    starts, pos = [], 0
    for e in encoded:
        starts.append(pos)
        pos += len(e)
    for f in found:
        first = True
        for i, (s0, e) in enumerate(zip(starts, encoded, strict=True)):
            lo, hi = max(f.start, s0), min(f.end, s0 + len(e))
            if lo >= hi:
                continue
            edits.setdefault(i, []).append((lo - s0, hi - s0, placeholder(f.type).encode() if first else b""))
            first = False
    for i, spans in edits.items():
        b = encoded[i]
        for lo, hi, rep in sorted(spans, reverse=True):
            b = b[:lo] + rep + b[hi:]
        container, key = pieces[i]
        container[key] = b.decode("utf-8", "surrogatepass")
    return True


def _stream_pieces(obj: Any, out: list[tuple[Any, Any]], depth: int = 0) -> None:
    if depth > 16:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, str):
                if k in _STREAM_TEXT and v:
                    out.append((obj, k))
            elif isinstance(v, (dict, list)):
                _stream_pieces(v, out, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)):
                _stream_pieces(v, out, depth + 1)


def redact_stored(scanner: Scanner, data: bytes) -> bytes:
    if not data:
        return data
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = None
        if obj is not None:
            changed = _redact_leaves(scanner, obj)
            if isinstance(obj, list):  # Gemini's JSON-array stream: chunks in order
                pieces: list[tuple[Any, Any]] = []
                _stream_pieces(obj, pieces)
                changed = _joined(scanner, pieces) or changed
            if changed:
                data = orjson.dumps(obj)
    elif b"data:" in data[:4096]:
        data = _redact_sse(scanner, data)
    found = scanner.scan_bytes(data)
    return Scanner.redact_bytes(data, found) if found else data


def _redact_sse(scanner: Scanner, data: bytes) -> bytes:
    dec = SSEDecoder(max_event_bytes=len(data) + 1, keep_empty=True)
    events = dec.feed(data) + dec.flush()
    parsed: list[Any] = []
    pieces: list[tuple[Any, Any]] = []
    changed = False
    for ev in events:
        obj = None
        if ev.data[:1] in (b"{", b"["):
            try:
                obj = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                obj = None
        parsed.append(obj)
        if obj is not None:
            changed |= _redact_leaves(scanner, obj)
            _stream_pieces(obj, pieces)
    if pieces:
        changed |= _joined(scanner, pieces)
    if not changed:
        return data
    return b"".join(ev.raw if obj is None else encode_event(orjson.dumps(obj), ev.event)
                    for ev, obj in zip(events, parsed, strict=True))
