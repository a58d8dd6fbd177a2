"""Canonical request and response: the one shape every wire format translates to and from.

Plain slotted dataclasses, no validation beyond what the translators do while building them.
Content parts are small classes with a `kind` class attribute so code can branch on
`part.kind` (a str compare) instead of isinstance chains on the hot path.

Signatures of thinking blocks are kept in the form clients see: Anthropic signatures raw,
Gemini thought signatures behind the `gemini:` prefix (see `GEMINI_SIGNATURE_PREFIX`), so a
provider module can tell which signatures it can verify and drop the others cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

from tollway.usage import Usage

GEMINI_SIGNATURE_PREFIX = "gemini:"

Role = Literal["user", "assistant", "tool"]
StopReason = Literal["end_turn", "max_tokens", "tool_use", "stop_sequence", "content_filter", "error"]
STOP_REASONS: frozenset[str] = frozenset(
    ("end_turn", "max_tokens", "tool_use", "stop_sequence", "content_filter", "error")
)


@dataclass(slots=True)
class Text:
    kind: ClassVar[str] = "text"
    text: str


@dataclass(slots=True)
class Image:
    """An image by URL (http(s), gs://, a provider file URI) or inline base64 data."""

    kind: ClassVar[str] = "image"
    url: str | None = None
    data: str | None = None  # base64, no data: prefix
    media_type: str | None = None
    detail: str | None = None  # OpenAI's low|high|auto, kept for OpenAI targets


@dataclass(slots=True)
class Document:
    """A non-image file (PDF, plain text...) by URL, provider file id or inline base64 data."""

    kind: ClassVar[str] = "document"
    data: str | None = None  # base64
    media_type: str | None = None
    url: str | None = None
    file_id: str | None = None
    filename: str | None = None


@dataclass(slots=True)
class ToolCall:
    kind: ClassVar[str] = "tool_call"
    id: str
    name: str
    arguments_json: str  # the arguments exactly as a JSON text ("{}" when none)
    signature: str | None = None  # Gemini thoughtSignature of the functionCall part, raw


@dataclass(slots=True)
class ToolResult:
    kind: ClassVar[str] = "tool_result"
    tool_call_id: str
    content: list[Text | Image | Document] = field(default_factory=list)
    name: str | None = None
    is_error: bool = False

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if p.kind == "text")


@dataclass(slots=True)
class Thinking:
    """Model reasoning. `redacted`: `text` holds the opaque redacted data (Anthropic)."""

    kind: ClassVar[str] = "thinking"
    text: str
    signature: str | None = None
    redacted: bool = False


Part = Union[Text, Image, Document, ToolCall, ToolResult, Thinking]


@dataclass(slots=True)
class Message:
    role: Role
    content: list[Part] = field(default_factory=list)


@dataclass(slots=True)
class ToolDef:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


@dataclass(slots=True)
class NamedToolChoice:
    name: str


ToolChoice = Union[Literal["auto", "none", "required"], NamedToolChoice]


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(slots=True)
class Reasoning:
    """What the client asked for. `effort` uses OpenAI's scale (none|minimal|low|medium|high|
    xhigh|max); `budget_tokens` Anthropic's/Gemini's token budget; `enabled=False` means the
    client explicitly turned thinking off."""

    effort: str | None = None
    budget_tokens: int | None = None
    summary: str | None = None  # Responses' reasoning.summary (auto|concise|detailed)
    enabled: bool = True


@dataclass(slots=True)
class CanonicalRequest:
    model: str
    messages: list[Message] = field(default_factory=list)
    system: list[Text] = field(default_factory=list)
    tools: list[ToolDef] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    response_format: ResponseFormat | None = None
    stream: bool = False
    include_usage: bool = False  # the client asked for usage in the stream (OpenAI chat)
    reasoning: Reasoning | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    # Params the source format had that canonical does not model, by their source names.
    extra: dict[str, Any] = field(default_factory=dict)
    source_format: str = ""  # "openai_chat" | "anthropic" | "gemini" | "responses"


# Canonical field → the name the client used for it, per source format, so `dropped` speaks
# the client's language ("stop_sequences" to an Anthropic client, "stop" to an OpenAI one).
_SOURCE_NAMES: dict[str, dict[str, str]] = {
    "openai_chat": {"reasoning": "reasoning_effort"},
    "anthropic": {"stop": "stop_sequences", "reasoning": "thinking", "response_format": "output_config.format",
                  "parallel_tool_calls": "tool_choice.disable_parallel_tool_use", "user": "metadata.user_id"},
    "responses": {"response_format": "text.format", "max_tokens": "max_output_tokens"},
    "gemini": {"stop": "generationConfig.stopSequences", "top_k": "generationConfig.topK",
               "top_p": "generationConfig.topP", "temperature": "generationConfig.temperature",
               "reasoning": "generationConfig.thinkingConfig", "response_format": "generationConfig.responseMimeType",
               "tool_choice": "toolConfig"},
}


def source_param(req: CanonicalRequest, field: str) -> str:
    """The client-side name of canonical request field `field`."""
    return _SOURCE_NAMES.get(req.source_format, {}).get(field, field)


@dataclass(slots=True)
class CanonicalResponse:
    id: str
    model: str
    content: list[Text | ToolCall | Thinking] = field(default_factory=list)
    stop_reason: StopReason | None = "end_turn"
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    created: int | None = None  # unix seconds, when the provider reported it
    refusal: str | None = None  # OpenAI's message.refusal, when the provider refused

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if p.kind == "text")

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [p for p in self.content if p.kind == "tool_call"]
