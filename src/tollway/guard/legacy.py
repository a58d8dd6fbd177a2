"""The output check on legacy completions (`/v1/completions`), which has no canonical form.

Chat-like answers reach the output check as canonical deltas (the guard stage forces the
translated path); a completions answer is relayed as the provider's bytes, so the check reads
and rewrites them here: `choices[].text` of a whole body, and of each stream event. A stream
choice is checked like a text block (one `OutputCheck` per choice index: what a match could
still extend is held back and released in a later event, at the latest in the choice's
finishing event). The counts go to the call's own check, which the record reads.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from tollway.formats.stream import BlockStop, TextDelta
from tollway.guard.output import OutputCheck
from tollway.sse import SSEDecoder, SSEEvent, encode_event


def _texts(deltas: list[Any]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextDelta))


def check_whole(check: OutputCheck, body: dict[str, Any]) -> bool:
    """Check (and in redact mode rewrite) every choice's text; True when the body changed.
    Raises ContentBlocked in block mode."""
    changed = False
    for choice in body.get("choices") or ():
        if isinstance(choice, dict) and isinstance(choice.get("text"), str) and choice["text"]:
            text = check.check_text(choice["text"])
            if text != choice["text"]:
                choice["text"] = text
                changed = True
    return changed


class CompletionStreamCheck:
    """Rewrites a completions SSE stream (complete events in, events out); raises
    ContentBlocked in block mode before any part of the finding is sent."""

    def __init__(self, check: OutputCheck) -> None:
        self._main = check
        self._choices: dict[int, OutputCheck] = {}
        self._dec = SSEDecoder(keep_empty=True)

    def _choice(self, index: int) -> OutputCheck:
        found = self._choices.get(index)
        if found is None:
            found = self._choices[index] = self._main.sibling()
        return found

    def _feed(self, index: int, deltas: list[Any]) -> str:
        sub = self._choice(index)
        before = Counter(sub.found)
        try:
            return _texts(sub.feed(deltas))
        finally:
            self._main.found.update(sub.found - before)

    def _event(self, ev: SSEEvent) -> bytes:
        if not ev.data.startswith(b"{"):
            return ev.raw
        try:
            obj = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            return ev.raw
        choices = obj.get("choices") if isinstance(obj, dict) else None
        if not isinstance(choices, list):
            return ev.raw
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index") if isinstance(choice.get("index"), int) else 0
            deltas: list[Any] = []
            if isinstance(choice.get("text"), str) and choice["text"]:
                deltas.append(TextDelta(0, choice["text"]))
            if choice.get("finish_reason") is not None:
                deltas.append(BlockStop(0))
            if deltas:
                choice["text"] = self._feed(index, deltas)
        return encode_event(orjson.dumps(obj), ev.event)

    def rewrite(self, data: bytes) -> bytes:
        return b"".join(self._event(ev) for ev in self._dec.feed(data))

    def close(self) -> bytes:
        """The upstream ended: what is left in the decoder, then anything still held back
        (a stream cut before its finishing event) as one last event per choice."""
        out = b"".join(self._event(ev) for ev in self._dec.flush())
        for index in list(self._choices):
            rest = self._feed(index, [BlockStop(0)])
            if rest:
                out += encode_event(orjson.dumps({"object": "text_completion", "choices": [
                    {"text": rest, "index": index, "logprobs": None, "finish_reason": None}]}))
        return out
