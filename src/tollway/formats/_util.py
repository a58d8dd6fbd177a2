"""Small helpers shared by the translators: JSON, ids, data URLs, checked field access."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import orjson

from tollway.formats.errors import TranslationError


def dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # integers beyond 64 bits, non-str keys: the stdlib copes
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def dumps_str(obj: Any) -> str:
    return dumps(obj).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def arguments_object(args: str) -> dict:
    """Tool-call arguments (a JSON text) as the object Anthropic `input` / Gemini `args` need;
    `{}` when the text is empty, invalid, or not an object (a provider may stream bad JSON)."""
    try:
        v = loads(args) if args else {}
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def new_id(prefix: str, nbytes: int = 12) -> str:
    return prefix + os.urandom(nbytes).hex()


def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:<mime>[;params];base64,<data>` → (mime, base64 data); None for any other URL."""
    if not url.startswith("data:"):
        return None
    comma = url.find(",")
    if comma < 0:
        raise TranslationError("malformed data URL")
    params = url[5:comma].split(";")
    if "base64" not in params[1:]:
        raise TranslationError("only base64 data URLs are supported")
    return (params[0] or "application/octet-stream"), url[comma + 1:]


def data_url(media_type: str | None, data: str) -> str:
    return f"data:{media_type or 'application/octet-stream'};base64,{data}"


_EXT_MIME = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "webp": "image/webp", "heic": "image/heic", "heif": "image/heif", "pdf": "application/pdf",
    "txt": "text/plain", "md": "text/markdown", "csv": "text/csv", "html": "text/html",
}


def guess_mime(url: str, default: str) -> str:
    path = url.split("?", 1)[0].split("#", 1)[0]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _EXT_MIME.get(ext, default)


def as_list(v: Any) -> list:
    return v if isinstance(v, list) else []


def as_dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def req_dict(body: Any, param: str | None = None) -> dict:
    if not isinstance(body, dict):
        raise TranslationError(f"{param or 'body'} must be an object", param)
    return body


def req_list(value: Any, param: str) -> list:
    if not isinstance(value, list):
        raise TranslationError(f"{param} must be an array", param)
    return value


def req_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise TranslationError(f"{param} must be a string", param)
    return value


def opt_str(value: Any, param: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TranslationError(f"{param} must be a string", param)
    return value


_INT64 = (-(2**63), 2**63 - 1)


def opt_int(value: Any, param: str) -> int | None:
    """An integer parameter: an int, or a float with no fraction (`8.0`), within 64 bits (what
    every provider and orjson take: `1e300` would become a 300-digit integer)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TranslationError(f"{param} must be an integer", param)
    if isinstance(value, float) and not value.is_integer():
        raise TranslationError(f"{param} must be an integer", param)
    if not _INT64[0] <= value <= _INT64[1]:
        raise TranslationError(f"{param} is out of range (a 64-bit integer)", param)
    return int(value)


def opt_num(value: Any, param: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TranslationError(f"{param} must be a number", param)
    return value


def opt_bool(value: Any, param: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise TranslationError(f"{param} must be a boolean", param)
    return value


def stop_list(value: Any, param: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise TranslationError(f"{param} must be a string or an array of strings", param)


def parse_args(arguments_json: str, param: str) -> dict:
    """Tool-call arguments JSON text → object (targets that want objects: Anthropic, Gemini)."""
    if not arguments_json or not arguments_json.strip():
        return {}
    try:
        value = orjson.loads(arguments_json)
    except orjson.JSONDecodeError:
        raise TranslationError(f"{param} is not valid JSON", param) from None
    if not isinstance(value, dict):
        raise TranslationError(f"{param} must be a JSON object", param)
    return value


def json_or_none(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


# Defaults of params that mean "not used": a param at its default is never reported dropped.
NEUTRAL = {
    "n": (1, None),
    "logprobs": (False, None),
    "presence_penalty": (0, 0.0, None),
    "frequency_penalty": (0, 0.0, None),
    "logit_bias": (None,),
    "seed": (None,),
    "top_logprobs": (None, 0),
    "store": (False, None),
    "service_tier": (None, "auto"),
    "background": (False, None),
    "truncation": (None, "disabled"),
    "include": (None,),
    "modalities": (None,),
    "parallel_tool_calls": (None, True),
}


# Hints with no effect on the answer (caching, abuse tracking): never reported as dropped.
SILENT_EXTRAS = frozenset((
    "cache_control", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "safety_identifier",
))


_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def unsafe_param_name(names: list[str]) -> str | None:
    """The first name a response header cannot carry (dropped parameters are named in
    `x-tollway-dropped-params`): empty, or with a space, control or non-ASCII character."""
    for name in names:
        if not _HEADER_SAFE.fullmatch(name):
            return name
    return None


def is_neutral(name: str, value: Any) -> bool:
    if value is None or name in SILENT_EXTRAS:
        return True
    if name == "modalities" and value == ["text"]:
        return True
    neutral = NEUTRAL.get(name)
    if neutral is None:
        return False
    if isinstance(value, (list, dict)) and not value:
        return True
    return any(value == v and type(value) is not bool or value is v for v in neutral if v is not None)
