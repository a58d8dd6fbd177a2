"""What a request asks the fake provider to do: directives, the last turn, tool results, counts.

Directives are read from the text of the request's final input turn, whatever the wire format
(OpenAI chat, legacy completions, embeddings, Responses, Anthropic Messages, Gemini), so a test
can put them in a prompt and they survive Tollway translating the request.

The final turn is the trailing tool results (OpenAI role "tool", Responses function_call_output,
Anthropic tool_result, Gemini functionResponse) or, failing that, the last user message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from dataclasses import dataclass, field, replace
from typing import Any

REPLY_TEXT = "Hello from the fake provider!"
BASE_INPUT_TOKENS = 10  # input tokens = BASE_INPUT_TOKENS + number of messages / input items
OUTPUT_TOKENS = 7
CACHE_READ_TOKENS = 5  # with [[cache]]
CACHE_WRITE_TOKENS = 3  # with [[cache]]
REASONING_TOKENS = 3  # with [[thinking]] (part of the output tokens, like the providers count it)
THINKING_TEXT = "The user wants a short greeting. I will answer briefly."
TOOL_ARGUMENTS: list[dict[str, Any]] = [{"city": "Paris"}, {"city": "Tokyo"}, {"city": "Berlin"}, {"city": "Rome"}]
PARALLEL_TOOL_NAMES = ["get_weather", "get_time", "get_news", "get_traffic"]
DATED_SUFFIX = {"openai": "-2024-07-18", "anthropic": "-20241022", "gemini": "-001"}
EMBEDDING_DIMENSIONS = 16

# [[leak]]: the answer leaks a FAKE AWS access key (AWS's format, never issued), streamed split mid-key
LEAKED_KEY = "AKIA" + "QYLPMN5HHHFPZAM2"
LEAK_PIECES = ["Your key is AKIAQY", "LPMN5HHH", "FPZAM2 keep", " it safe."]
# [[leak_thinking]]: the model's reasoning (thinking on) leaks the same key, split mid-key the same way
THINKING_LEAK_PIECES = ["I could quote AKIAQY", "LPMN5HHH", "FPZAM2 but", " I will not."]

_DIRECTIVE = re.compile(r"\[\[([a-z_]+)(?::([^\]@]*))?(?:@([^\]]*))?\]\]")
_SCOPABLE = frozenset({"hang", "delay", "reset_after", "chunk_delay", "stream_error"})


@dataclass
class Directives:
    fault: int | None = None
    fault_scope: str | None = None  # [[fault:500@anthropic]]: only requests in that scope fail
    delay: float = 0.0
    chunk_delay: float = 0.0
    reset_after: int | None = None
    malformed: bool = False
    hang: bool = False
    no_usage: bool = False
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    max_tokens: bool = False
    thinking: bool = False
    echo: bool = False
    cache: bool = False
    dated: bool = False
    stream_error: bool = False
    gzip: bool = False
    reported_input: Any = None  # [[reported_input:JSON]]: the input count the usage reports ("21", -5, 2.5 ...)
    leak: bool = False
    leak_thinking: bool = False
    # [[hang@MODEL]], [[delay:S@MODEL]], [[reset_after:N@MODEL]], [[chunk_delay:S@MODEL]],
    # [[stream_error@MODEL]]: only requests in that scope (family, model, Azure deployment)
    scoped: dict[str, str] = field(default_factory=dict)

    def in_scopes(self, scopes: set[str]) -> "Directives":
        """These directives as a request in `scopes` sees them (scoped ones elsewhere dropped)."""
        if not self.scoped:
            return self
        drop = {name: Directives.__dataclass_fields__[name].default
                for name, scope in self.scoped.items() if scope not in scopes}
        return replace(self, **drop) if drop else self


def parse_directives(text: str) -> Directives:
    d = Directives()
    for name, arg, scope in _DIRECTIVE.findall(text or ""):
        arg, scope = arg.strip(), scope.strip()
        if name in _SCOPABLE and scope:
            d.scoped[name] = scope
        try:
            if name == "fault":
                d.fault = int(arg)
                d.fault_scope = scope or None
            elif name == "delay":
                d.delay = float(arg)
            elif name == "chunk_delay":
                d.chunk_delay = float(arg)
            elif name == "reset_after":
                d.reset_after = int(arg or 0)
            elif name == "tool":
                d.tools = [(arg or "get_weather", dict(TOOL_ARGUMENTS[0]))]
            elif name == "tools":
                n = max(1, min(int(arg or 2), len(PARALLEL_TOOL_NAMES)))
                d.tools = [(PARALLEL_TOOL_NAMES[i], dict(TOOL_ARGUMENTS[i])) for i in range(n)]
            elif name == "reported_input":
                d.reported_input = json.loads(arg)
            elif name in ("malformed", "hang", "no_usage", "max_tokens", "thinking", "echo", "cache", "dated",
                          "stream_error", "gzip", "leak", "leak_thinking"):
                setattr(d, name, True)
                d.thinking = d.thinking or name == "leak_thinking"
        except ValueError:  # json.JSONDecodeError included
            continue
    return d


@dataclass
class Turn:
    role: str  # "user", "tool", or anything else (assistant, system ...)
    texts: list[str] = field(default_factory=list)
    tool_results: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    directives: Directives
    turn_text: str
    tool_results: list[str]
    n_items: int
    body_text: str
    model: str = ""
    scripted: str | None = None  # the reply text a test scripted with FakeProvider.reply_next()

    @property
    def input_tokens(self) -> int:
        return BASE_INPUT_TOKENS + self.n_items

    @property
    def reported_input_tokens(self) -> Any:
        """The input count as the usage reports it: `input_tokens`, or [[reported_input:JSON]]."""
        return self.input_tokens if self.directives.reported_input is None else self.directives.reported_input

    @property
    def output_tokens(self) -> int:
        return OUTPUT_TOKENS

    @property
    def cache_read(self) -> int:
        return CACHE_READ_TOKENS if self.directives.cache else 0

    @property
    def cache_write(self) -> int:
        return CACHE_WRITE_TOKENS if self.directives.cache else 0

    @property
    def reasoning_tokens(self) -> int:
        return REASONING_TOKENS if self.directives.thinking else 0

    @property
    def tool_calls(self) -> list[tuple[str, dict[str, Any]]]:
        return self.directives.tools

    @property
    def full_text(self) -> str:
        if self.scripted is not None:
            return self.scripted
        if self.directives.leak:
            return "".join(LEAK_PIECES)
        if self.directives.echo:
            return self.body_text
        if self.tool_results and not self.directives.tools:
            return "Tool said: " + " | ".join(self.tool_results)
        return REPLY_TEXT

    @property
    def pieces(self) -> list[str]:
        """The reply split into stream deltas (word by word); truncated with [[max_tokens]]."""
        pieces = list(LEAK_PIECES) if self.directives.leak else split_words(self.full_text)
        if self.directives.max_tokens:
            pieces = pieces[: math.ceil(len(pieces) / 2)]
        return pieces

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def thinking_pieces(self) -> list[str]:
        """The reasoning split into stream deltas ([[thinking]]; [[leak_thinking]] leaks a key)."""
        return list(THINKING_LEAK_PIECES) if self.directives.leak_thinking else split_words(THINKING_TEXT)

    @property
    def thinking_text(self) -> str:
        return "".join(self.thinking_pieces)

    def response_model(self, family: str) -> str:
        if self.directives.dated and self.model:
            return self.model + DATED_SUFFIX.get(family, DATED_SUFFIX["openai"])
        return self.model


def split_words(text: str) -> list[str]:
    pieces = re.findall(r"\s*\S+", text)
    rest = text[len("".join(pieces)):]
    if rest:
        pieces.append(rest)
    return pieces or [""]


def split_json_tokens(s: str) -> list[str]:
    """'{"city":"Paris"}' -> ['{"', 'city', '":"', 'Paris', '"}'] (how OpenAI streams arguments)."""
    return re.findall(r"\w+|[^\w]+", s) or [""]


# ---------------------------------------------------------------- text extraction helpers


def _flatten(content: Any) -> str:
    """Text of a tool result, whatever its container."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_flatten(p) for p in content)
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return content["text"]
        if content.get("type") in ("image", "image_url", "input_image", "input_file", "document"):
            return ""
        if len(content) == 1:
            (value,) = content.values()
            if isinstance(value, str):
                return value
        return json.dumps(content, separators=(",", ":"))
    return str(content)


def _texts(content: Any) -> list[str]:
    """User-visible text parts of a message's content (string, or a list of typed parts)."""
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str) and part.get("type") in (
                None, "text", "input_text", "output_text"
            ):
                out.append(part["text"])
    return out


def _last_turn(turns: list[Turn]) -> list[Turn]:
    picked: list[Turn] = []
    for t in reversed(turns):
        if t.role == "tool":
            picked.append(t)
            continue
        if t.role == "user":
            picked.append(t)
        break
    if not picked:
        for t in reversed(turns):
            if t.role == "user":
                return [t]
    return picked


def _scenario(turns: list[Turn], n_items: int, body_text: str, model: str) -> Scenario:
    last = _last_turn(turns)
    texts = [x for t in reversed(last) for x in t.texts]
    results = [x for t in reversed(last) for x in t.tool_results]
    turn_text = "\n".join(texts + results)
    return Scenario(parse_directives(turn_text), turn_text, results, n_items, body_text, model)


# ---------------------------------------------------------------- per wire format


def from_openai_chat(body: dict, body_text: str, model: str) -> Scenario:
    msgs = body.get("messages") or []
    turns = []
    for m in msgs:
        if not isinstance(m, dict):
            continue
        role = m.get("role", "")
        if role in ("tool", "function"):
            turns.append(Turn("tool", tool_results=[_flatten(m.get("content"))]))
        else:
            turns.append(Turn(role, texts=_texts(m.get("content"))))
    return _scenario(turns, len(msgs), body_text, model)


def _prompt_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(x, int) for x in value):
            return [""]  # one prompt given as token ids
        return [x if isinstance(x, str) else "" for x in value]
    return []


def from_openai_completion(body: dict, body_text: str, model: str) -> Scenario:
    prompts = _prompt_list(body.get("prompt"))
    return _scenario([Turn("user", texts=prompts)], len(prompts), body_text, model)


def from_openai_embeddings(body: dict, body_text: str, model: str) -> Scenario:
    inputs = _prompt_list(body.get("input"))
    return _scenario([Turn("user", texts=inputs)], len(inputs), body_text, model)


def from_responses(body: dict, body_text: str, model: str) -> Scenario:
    inp = body.get("input")
    if isinstance(inp, str) or inp is None:
        return _scenario([Turn("user", texts=[inp or ""])], 1, body_text, model)
    turns = []
    for item in inp:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "function_call_output" or kind == "custom_tool_call_output":
            turns.append(Turn("tool", tool_results=[_flatten(item.get("output"))]))
        elif kind in (None, "message") and "role" in item:
            turns.append(Turn(item["role"], texts=_texts(item.get("content"))))
        else:
            turns.append(Turn("assistant"))
    return _scenario(turns, len(inp), body_text, model)


def from_anthropic(body: dict, body_text: str, model: str) -> Scenario:
    msgs = body.get("messages") or []
    turns = []
    for m in msgs:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        texts, results = _texts(content), []
        if isinstance(content, list):
            results = [_flatten(b.get("content")) for b in content
                       if isinstance(b, dict) and b.get("type") == "tool_result"]
        role = m.get("role", "")
        turns.append(Turn("tool" if role == "user" and results and not texts else role, texts, results))
    return _scenario(turns, len(msgs), body_text, model)


def _gemini_turn(content: dict) -> Turn:
    parts = content.get("parts") or []
    texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
             and not p.get("thought")]
    results = [_flatten((p["functionResponse"] or {}).get("response")) for p in parts
               if isinstance(p, dict) and "functionResponse" in p]
    role = content.get("role") or "user"
    if role == "model":
        return Turn("assistant", texts)
    return Turn("tool" if results and not texts else "user", texts, results)


def from_gemini(body: dict, body_text: str, model: str) -> Scenario:
    if "generateContentRequest" in body:  # countTokens may wrap a whole request
        body = body["generateContentRequest"] or {}
    contents = [c for c in (body.get("contents") or []) if isinstance(c, dict)]
    return _scenario([_gemini_turn(c) for c in contents], len(contents), body_text, model)


def from_gemini_embed(contents: list[dict], body_text: str, model: str) -> Scenario:
    texts = [t for c in contents for t in _gemini_turn(c).texts]
    return _scenario([Turn("user", texts=texts)], len(contents), body_text, model)


# ---------------------------------------------------------------- embeddings


def embedding_vector(text: str, dimensions: int | None = None) -> list[float]:
    """Deterministic unit vector for `text`, float32-exact so base64 and float forms agree."""
    n = dimensions or EMBEDDING_DIMENSIONS
    raw = b""
    counter = 0
    while len(raw) < 4 * n:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    ints = struct.unpack(f"<{n}I", raw[: 4 * n])
    vals = [(i / 0xFFFFFFFF) * 2.0 - 1.0 for i in ints]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    return list(struct.unpack(f"<{n}f", struct.pack(f"<{n}f", *(v / norm for v in vals))))


def embedding_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
