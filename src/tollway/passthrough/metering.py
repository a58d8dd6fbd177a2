"""Which pass-through answers are metered, decided by provider family, method and path alone.

Only the endpoints below report usage Tollway understands; every other answer is relayed
without being looked at, whatever its body holds: a file whose content is `{"usage": …}`,
downloaded through `/v1/files/{id}/content`, is a file and costs nothing. Reading a stored
object back (`GET /v1/responses/{id}`, a batch's results) is no new call and is not metered
either. Counts go through the same checks as every other usage (`usage.CountReader`).

Streams of metered endpoints are decoded event by event (`sse.SSEDecoder`, bounded per event)
and the usage is taken from the events that carry it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from tollway.formats.anthropic import usage_to_canonical as anthropic_usage
from tollway.formats.openai_chat import usage_to_canonical as openai_usage
from tollway.providers.base import Endpoint
from tollway.sse import SSEDecoder
from tollway.usage import Usage


@dataclass(frozen=True, slots=True)
class Metered:
    """A pass-through endpoint that reports usage. `endpoint`: how its prompt is counted when the
    answer reports none; `text_field`: the answer's text, counted locally (legacy Complete)."""

    endpoint: Endpoint | None = None
    text_field: str | None = None


_OPENAI: dict[str, Metered] = {
    "/chat/completions": Metered(Endpoint.CHAT),
    "/completions": Metered(Endpoint.COMPLETIONS),
    "/embeddings": Metered(Endpoint.EMBEDDINGS),
    "/responses": Metered(Endpoint.RESPONSES),
    "/responses/compact": Metered(),
    "/images/generations": Metered(),
    "/images/edits": Metered(),
    "/audio/transcriptions": Metered(),
    "/audio/speech": Metered(),  # its SSE stream reports usage; the audio bytes do not
}
_ANTHROPIC: dict[str, Metered] = {
    "/messages": Metered(Endpoint.MESSAGES),
    "/complete": Metered(Endpoint.COMPLETIONS, text_field="completion"),  # reports no usage
}
_BY_FAMILY = {"openai": _OPENAI, "anthropic": _ANTHROPIC}
_BATCHES = ("/batches", "/messages/batches")


def metered(wire_format: str, method: str, subpath: str) -> Metered | None:
    """The rule for `method subpath` (subpath after /v1, normalised) of a provider speaking
    `wire_format`; None when its answer is not metered."""
    if method != "POST":
        return None
    return _BY_FAMILY.get(wire_format, {}).get(subpath.rstrip("/") or "/")


def unmetered_note(method: str, subpath: str) -> str:
    if method == "POST" and subpath.rstrip("/") in _BATCHES:
        return "batch created: its usage is reported with its results"
    return "pass-through endpoint that reports no usage"


def usage_from_body(wire_format: str, obj: dict[str, Any]) -> Usage | None:
    u = obj.get("usage")
    if not isinstance(u, dict):
        return None
    return anthropic_usage(u) if wire_format == "anthropic" else openai_usage(u)


class StreamUsage:
    """Watches a metered pass-through stream for its usage, event by event."""

    __slots__ = ("_wire", "_decoder", "usage", "error")

    def __init__(self, wire_format: str) -> None:
        self._wire = wire_format
        self._decoder = SSEDecoder(max_event_bytes=4 * 1024 * 1024)
        self.usage: Usage | None = None
        self.error = False

    def feed(self, chunk: bytes) -> None:
        try:
            events = self._decoder.feed(chunk)
        except ValueError:  # an event too large to be a usage event: stop looking
            self._decoder = SSEDecoder(max_event_bytes=4 * 1024 * 1024)
            return
        for ev in events:
            self._event(ev.event, ev.data)

    def close(self) -> None:
        for ev in self._decoder.flush():
            self._event(ev.event, ev.data)

    def _event(self, name: str | None, data: bytes) -> None:
        if not data or data == b"[DONE]":
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict):
            return
        if name == "error" or obj.get("type") == "error" or (
                isinstance(obj.get("error"), dict) and "choices" not in obj):
            self.error = True
            return
        u = obj.get("usage")
        if not isinstance(u, dict):
            inner = obj.get("response") if isinstance(obj.get("response"), dict) else obj.get("message")
            u = inner.get("usage") if isinstance(inner, dict) else None
        if not isinstance(u, dict):
            return
        if self._wire == "anthropic":
            self.usage = anthropic_usage(u, self.usage)
        else:
            self.usage = openai_usage(u)


def multipart_field(body: bytes, content_type: bytes, name: str, limit: int = 256) -> str | None:
    """A short text field of a multipart/form-data body (the `model` of an audio transcription or
    an image edit), found without parsing the file parts; None when absent or longer than `limit`."""
    _, sep, rest = content_type.partition(b"boundary=")
    boundary = rest.split(b";", 1)[0].strip().strip(b'"')
    if not sep or not boundary:
        return None
    delimiter = b"--" + boundary
    header = b'name="' + name.encode() + b'"'
    pos = body.find(delimiter)
    while pos >= 0:
        start = pos + len(delimiter)
        head_end = body.find(b"\r\n\r\n", start, start + 1024)
        nxt = body.find(delimiter, start)
        if head_end >= 0 and header in body[start:head_end].lower():
            end = nxt if nxt >= 0 else len(body)
            value = body[head_end + 4 : end].removesuffix(b"\r\n")
            return value.decode("utf-8", "replace") if len(value) <= limit else None
        pos = nxt
    return None


_DISPOSITION_NAME = re.compile(rb'(?<![\w*-])name\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)


def multipart_values(body: bytes, content_type: bytes, name: str, limit: int = 256) -> list[str] | None:
    """Every value of the form field `name` in a multipart/form-data body, read strictly: a part
    is named only by its Content-Disposition `name` (never a `filename` that merely contains it).
    None when the form cannot be read unambiguously (no or two boundaries, an RFC 5987 `name*=`,
    a value over `limit` bytes): a caller checking a rule then refuses rather than guesses."""
    low = content_type.lower()
    if low.count(b"boundary=") != 1:
        return None
    at = low.index(b"boundary=") + 9
    boundary = content_type[at:].split(b";", 1)[0].strip().strip(b'"')
    if not boundary:
        return None
    delimiter = b"--" + boundary
    want = name.encode()
    out: list[str] = []
    parts = body.split(delimiter)
    for part in parts[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, sep, value = part.partition(b"\r\n\r\n")
        if not sep:
            return None
        for line in head.split(b"\r\n"):
            low = line.lower()
            if not low.startswith(b"content-disposition:"):
                continue
            if b"name*" in low:
                return None
            found = _DISPOSITION_NAME.search(line)
            if found is None:
                return None
            field_name = found.group(1) if found.group(1) is not None else found.group(2)
            if field_name.lower() == want:
                value = value.removesuffix(b"\r\n")
                if len(value) > limit:
                    return None
                out.append(value.decode("utf-8", "replace"))
    return out
