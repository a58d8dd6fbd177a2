"""The conformance matrix, declared once: provider kinds, client formats, modes and cases.

A case is written in a neutral form (turns, tools, system prompt, max tokens) and what it
expects; `clients.py` renders it in each client SDK's own shape and `upstream.py` reads back
what the provider received in its own wire format.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.fakes.scenario import PARALLEL_TOOL_NAMES, REPLY_TEXT, TOOL_ARGUMENTS, split_words

# ---------------------------------------------------------------- provider kinds


@dataclass(frozen=True)
class ProviderSpec:
    kind: str  # Tollway provider kind, also the provider id in the test config
    model: str  # the model name clients ask for; only this provider serves it
    genai_provider: str | None  # genai-prices provider id; None: priced by a [[prices]] override
    override_price: tuple[str, str] | None = None  # (input, output) USD per million tokens

    def config(self, fake_url: str) -> dict[str, Any]:
        base = {"id": self.kind, "kind": self.kind}
        if self.kind == "openai":
            return {**base, "base_url": fake_url + "/v1", "api_key": "sk-fake-openai", "models": [self.model]}
        if self.kind == "anthropic":
            return {**base, "base_url": fake_url, "api_key": "sk-ant-fake", "models": [self.model]}
        if self.kind == "azure_openai":
            # a deployment named differently from its model, as Azure resources usually are
            return {**base, "base_url": fake_url, "api_key": "fake-azure-key",
                    "deployments": {self.model: AZURE_DEPLOYMENT}}
        if self.kind == "gemini":
            return {**base, "base_url": fake_url, "api_key": "fake-gemini-key", "models": [self.model]}
        if self.kind == "openai_compatible":
            # no `models`: the model is discovered from the fake's GET /local/v1/models
            return {**base, "base_url": fake_url + "/local/v1"}
        raise ValueError(self.kind)

    def expected_cost(self, prompt: int, cache_read: int, cache_write: int, output: int) -> Decimal:
        """USD for a call: `prompt` is the whole prompt, the cache counts are parts of it."""
        if self.override_price is not None:  # no cache rates configured: cached tokens cost the input rate
            inp, out = (Decimal(x) for x in self.override_price)
            return (inp * prompt + out * output) / Decimal(1_000_000)
        import genai_prices

        usage = genai_prices.Usage(input_tokens=prompt, cache_read_tokens=cache_read or None,
                                   cache_write_tokens=cache_write or None, output_tokens=output)
        return Decimal(genai_prices.calc_price(usage, self.model, provider_id=self.genai_provider).total_price)


AZURE_DEPLOYMENT = "conformance-gpt41-mini"
LOCAL_PRICE = ("0.50", "1.50")

PROVIDERS: dict[str, ProviderSpec] = {p.kind: p for p in (
    ProviderSpec("openai", "gpt-4o-mini", "openai"),
    ProviderSpec("anthropic", "claude-haiku-4-5", "anthropic"),
    ProviderSpec("azure_openai", "gpt-4.1-mini", "azure"),
    ProviderSpec("gemini", "gemini-2.0-flash", "google"),
    # listed by the fake's local /v1/models (tests/fixtures/openai/local_model_list.json)
    ProviderSpec("openai_compatible", "llama3.2:1b", None, override_price=LOCAL_PRICE),
)}

CLIENTS = ("openai-chat", "openai-responses", "anthropic-sdk", "gemini-sdk")
MODES = ("nonstream", "stream")

# ---------------------------------------------------------------- neutral conversation parts


@dataclass(frozen=True)
class Image:
    url: str | None = None
    media_type: str | None = None
    data: str | None = None  # base64

    @property
    def data_url(self) -> str:
        return self.url or f"data:{self.media_type};base64,{self.data}"

    def normalized(self) -> tuple[str, ...]:
        return ("url", self.url) if self.url else ("base64", self.media_type or "", self.data or "")


@dataclass(frozen=True)
class User:
    text: str
    image: Image | None = None


@dataclass(frozen=True)
class Assistant:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    id: str
    name: str
    content: str


Turn = User | Assistant | ToolCall | ToolResult

TOOL_SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
               "required": ["city"]}
TOOLS: dict[str, str] = {"get_weather": "Current weather in a city", "get_time": "Local time in a city"}

IMAGE_URL = Image(url="https://example.com/images/cat.png")
IMAGE_BASE64 = Image(media_type="image/png", data=(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="))
SYSTEM_PROMPT = "You are a terse assistant. Always answer in French."
MAX_TOKENS = 16  # the Responses API's minimum max_output_tokens; the fake stops early on [[max_tokens]]


@dataclass(frozen=True)
class Case:
    """One conversation and what the SDK user must see.

    `outcome`: "text" (a normal answer), "tools" (tool calls), "length" (max-tokens stop),
    or an HTTP status the provider fails with (500, 429). `echo`: the reply is the request body
    as the provider received it, so the test can check the translated content.
    """

    name: str
    turns: tuple[Turn, ...]
    outcome: str | int = "text"
    system: str | None = None
    tools: tuple[str, ...] = ()
    max_tokens: int | None = None
    text: str | None = REPLY_TEXT  # expected reply text (None: the echoed request body)
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()

    @property
    def echo(self) -> bool:
        return self.text is None


def _user(text: str, image: Image | None = None) -> tuple[Turn, ...]:
    return (User(text + " {nonce}", image),)


CASES: dict[str, Case] = {c.name: c for c in (
    Case("plain_text", _user("Say hello.")),
    Case("system_prompt", _user("Say hello. [[echo]]"), system=SYSTEM_PROMPT, text=None),
    Case("multi_turn", (User("My name is Ada. {nonce}"), Assistant("Nice to meet you, Ada."),
                        User("What is my name? [[echo]]")), text=None),
    Case("image_url", _user("What is in this picture? [[echo]]", IMAGE_URL), text=None),
    Case("image_base64", _user("What is in this picture? [[echo]]", IMAGE_BASE64), text=None),
    Case("tool_call", _user("What's the weather in Paris? [[tool:get_weather]]"), outcome="tools",
         tools=("get_weather",), text="", tool_calls=(("get_weather", TOOL_ARGUMENTS[0]),)),
    Case("parallel_tools", _user("Weather and time, please. [[tools:2]]"), outcome="tools",
         tools=("get_weather", "get_time"), text="",
         tool_calls=tuple(zip(PARALLEL_TOOL_NAMES[:2], TOOL_ARGUMENTS[:2], strict=True))),
    Case("tool_result", (User("What's the weather in Paris? {nonce}"),
                         ToolCall("call_conf_1", "get_weather", {"city": "Paris"}),
                         ToolResult("call_conf_1", "get_weather", "Sunny, 21C")),
         tools=("get_weather",), text="Tool said: Sunny, 21C"),
    Case("cached_tokens", _user("Say hello again. [[cache]]")),
    Case("max_tokens", _user("Tell me a long story. [[max_tokens]]"), outcome="length", max_tokens=MAX_TOKENS,
         text="".join(split_words(REPLY_TEXT)[:3])),
    Case("provider_error", _user("Hi [[fault:500]]"), outcome=500),
    Case("provider_429", _user("Hi [[fault:429]]"), outcome=429),
)}


# How each client spells the three ways an answer ends.
STOP_REASONS: dict[str, dict[str, str]] = {
    "openai-chat": {"text": "stop", "tools": "tool_calls", "length": "length"},
    "anthropic-sdk": {"text": "end_turn", "tools": "tool_use", "length": "max_tokens"},
    # Responses: status, plus incomplete_details.reason when incomplete
    "openai-responses": {"text": "completed", "tools": "completed", "length": "incomplete:max_output_tokens"},
    # Gemini ends a turn of function calls with STOP too
    "gemini-sdk": {"text": "STOP", "tools": "STOP", "length": "MAX_TOKENS"},
}

# ---------------------------------------------------------------- cells and known Tollway bugs

# fnmatch pattern over the cell id -> the precise bug. Each marks xfail(strict=True): when the
# bug is fixed the cell passes, the xfail fails, and the entry must go.
KNOWN_BUGS: dict[str, str] = {}


@dataclass(frozen=True)
class Cell:
    client: str
    provider: str
    mode: str
    case: str

    @property
    def id(self) -> str:
        return f"{self.client}-{self.provider}-{self.mode}-{self.case}"

    @property
    def stream(self) -> bool:
        return self.mode == "stream"


def cells() -> list[Cell]:
    return [Cell(c, p, m, k) for c in CLIENTS for p in PROVIDERS for m in MODES for k in CASES]


def known_bug(cell_id: str) -> str | None:
    reasons = [r for pat, r in KNOWN_BUGS.items() if fnmatch.fnmatchcase(cell_id, pat)]
    return "; ".join(reasons) or None

