"""Canonical stream deltas: what a provider StreamParser emits and a client StreamWriter takes.

Every content block of the response has a canonical `index`, unique within the stream and
assigned in order of appearance (text, thinking and tool-call blocks share one sequence).
A block opens implicitly with its first delta (`TextDelta`, `ThinkingDelta`) or with
`ToolCallStart`, and closes with `BlockStop`. Writers tolerate deltas for a block they have
already closed or never saw opened (they open it), so a sloppy upstream cannot crash them.

`UsageDelta` carries the best *cumulative* usage known so far (replace, don't add).
`Finish` carries the final stop reason; usage may still follow it (OpenAI sends usage in a
separate, later chunk), so writers that need both emit their closing events in `close()`.
`StreamError` ends the stream: the writer renders it in the client's error shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union

from tollway.usage import Usage


@dataclass(slots=True)
class MessageStart:
    kind: ClassVar[str] = "message_start"
    id: str
    model: str
    usage: Usage | None = None
    created: int | None = None


@dataclass(slots=True)
class TextDelta:
    kind: ClassVar[str] = "text"
    index: int
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    """Thinking text and/or its signature. `redacted`: `text` is opaque redacted data."""

    kind: ClassVar[str] = "thinking"
    text: str
    signature: str | None = None
    index: int = 0
    redacted: bool = False


@dataclass(slots=True)
class ToolCallStart:
    kind: ClassVar[str] = "tool_call_start"
    index: int
    id: str
    name: str
    signature: str | None = None  # Gemini thoughtSignature of the functionCall part


@dataclass(slots=True)
class ToolCallArgsDelta:
    kind: ClassVar[str] = "tool_call_args"
    index: int
    fragment: str


@dataclass(slots=True)
class BlockStop:
    kind: ClassVar[str] = "block_stop"
    index: int


@dataclass(slots=True)
class Finish:
    kind: ClassVar[str] = "finish"
    stop_reason: str
    stop_sequence: str | None = None


@dataclass(slots=True)
class UsageDelta:
    kind: ClassVar[str] = "usage"
    usage: Usage


@dataclass(slots=True)
class StreamError:
    """`type` is a canonical error type (see errors.ERROR_STATUS), e.g. overloaded_error."""

    kind: ClassVar[str] = "error"
    type: str
    message: str


StreamDelta = Union[
    MessageStart,
    TextDelta,
    ThinkingDelta,
    ToolCallStart,
    ToolCallArgsDelta,
    BlockStop,
    Finish,
    UsageDelta,
    StreamError,
]


class Accumulator:
    """Folds canonical deltas into a CanonicalResponse (for caching, storage, tests)."""

    __slots__ = ("id", "model", "created", "_parts", "_args", "stop_reason", "stop_sequence", "usage", "error")

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created: int | None = None
        self._parts: dict[int, object] = {}
        self._args: dict[int, list[str]] = {}
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.usage = Usage()
        self.error: StreamError | None = None

    def feed(self, ev: StreamDelta) -> None:
        from tollway.formats.canonical import Text, Thinking, ToolCall

        k = ev.kind
        if k == "message_start":
            self.id, self.model, self.created = ev.id, ev.model, ev.created
            if ev.usage is not None:
                self.usage = ev.usage
        elif k == "text":
            p = self._parts.setdefault(ev.index, Text(""))
            p.text += ev.text
        elif k == "thinking":
            p = self._parts.setdefault(ev.index, Thinking("", None, ev.redacted))
            p.text += ev.text
            if ev.signature:
                p.signature = ev.signature
        elif k == "tool_call_start":
            self._parts[ev.index] = ToolCall(ev.id, ev.name, "", ev.signature)
            self._args[ev.index] = []
        elif k == "tool_call_args":
            self._args.setdefault(ev.index, []).append(ev.fragment)
        elif k == "finish":
            self.stop_reason, self.stop_sequence = ev.stop_reason, ev.stop_sequence
        elif k == "usage":
            self.usage = ev.usage
        elif k == "error":
            self.error = ev

    def response(self):
        from tollway.formats.canonical import CanonicalResponse

        content = []
        for idx in sorted(self._parts):
            p = self._parts[idx]
            if p.kind == "tool_call":
                p.arguments_json = "".join(self._args.get(idx, ())) or "{}"
            content.append(p)
        return CanonicalResponse(id=self.id, model=self.model, content=content,
                                 stop_reason=self.stop_reason or "end_turn",
                                 stop_sequence=self.stop_sequence, usage=self.usage, created=self.created)
