"""Translation errors, provider error bodies → (status, type, message), and error rendering
in every client format (whole bodies and mid-stream events).

Canonical error types are Anthropic's set (they cover every case cleanly):
invalid_request_error, authentication_error, billing_error, permission_error,
not_found_error, request_too_large, rate_limit_error, timeout_error, api_error,
overloaded_error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tollway.sse import encode_event


class TranslationError(ValueError):
    """The input cannot be translated (malformed, or uses something the target lacks).
    The caller renders it as a 400 invalid_request_error."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def __repr__(self) -> str:
        return f"TranslationError({self.message!r}, param={self.param!r})"


ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def type_for_status(status: int) -> str:
    if status == 400 or status == 422:
        return "invalid_request_error"
    if status == 401:
        return "authentication_error"
    if status == 402:
        return "billing_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 408 or status == 504:
        return "timeout_error"
    if status == 413:
        return "request_too_large"
    if status == 429:
        return "rate_limit_error"
    if status == 503 or status == 529:
        return "overloaded_error"
    if 400 <= status < 500:
        return "invalid_request_error"
    return "api_error"


@dataclass(slots=True)
class ProviderError:
    status: int
    type: str  # canonical error type
    message: str
    param: str | None = None
    code: str | None = None  # the provider's own code / type / status string, when given


_GEMINI_STATUS_TYPE = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "UNAVAILABLE": "overloaded_error",
    "DEADLINE_EXCEEDED": "timeout_error",
    "INTERNAL": "api_error",
    "UNKNOWN": "api_error",
    "CANCELLED": "api_error",
}

_ANTHROPIC_TYPES = frozenset(ERROR_STATUS)


def _load(body: bytes | str | dict | list | None) -> Any:
    if isinstance(body, (dict, list)) or body is None:
        return body
    try:
        return orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        return None


def parse_provider_error(fmt: str, status: int, body: bytes | str | dict | None) -> ProviderError:
    """A provider's error response → ProviderError. Never raises: anything unparseable becomes
    a generic error for the HTTP status. `fmt`: openai_chat | responses | anthropic | gemini."""
    data = _load(body)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Gemini sometimes wraps the error in a one-element array
    ctype = type_for_status(status)
    message = ""
    param = code = None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        message = _str(err.get("message"))
        if fmt == "anthropic":
            etype = err.get("type")
            if isinstance(etype, str) and etype in _ANTHROPIC_TYPES:
                ctype = etype
            code = etype if isinstance(etype, str) else None
        elif fmt == "gemini":
            gstatus = err.get("status")
            if isinstance(gstatus, str):
                code = gstatus
                ctype = _GEMINI_STATUS_TYPE.get(gstatus, ctype)
        else:
            p = err.get("param")
            param = p if isinstance(p, str) else None
            c = err.get("code")
            t = err.get("type")
            code = c if isinstance(c, str) else (t if isinstance(t, str) else None)
            if code in ("context_length_exceeded", "string_above_max_length"):
                ctype = "invalid_request_error"
            elif status == 429 and code == "insufficient_quota":
                ctype = "billing_error"
    elif isinstance(err, str):
        message = err
    elif isinstance(data, dict) and isinstance(data.get("message"), str):
        message = data["message"]
    if not message:
        if isinstance(body, (bytes, str)) and data is None and body:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            message = text.strip()[:500]
        else:
            message = f"upstream error (HTTP {status})"
    return ProviderError(status=status, type=ctype, message=message, param=param, code=code)


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


# --- rendering in client formats --------------------------------------------------------------

_OPENAI_TYPE = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "permission_error": ("invalid_request_error", "permission_denied"),
    "not_found_error": ("invalid_request_error", "model_not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "timeout_error": ("server_error", "timeout"),
    "api_error": ("server_error", None),
    "overloaded_error": ("server_error", "overloaded"),
}

_GEMINI_STATUS = {
    "invalid_request_error": "INVALID_ARGUMENT",
    "authentication_error": "UNAUTHENTICATED",
    "billing_error": "PERMISSION_DENIED",
    "permission_error": "PERMISSION_DENIED",
    "not_found_error": "NOT_FOUND",
    "request_too_large": "INVALID_ARGUMENT",
    "rate_limit_error": "RESOURCE_EXHAUSTED",
    "timeout_error": "DEADLINE_EXCEEDED",
    "api_error": "INTERNAL",
    "overloaded_error": "UNAVAILABLE",
}

_RESPONSES_CODE = {
    "rate_limit_error": "rate_limit_exceeded",
    "invalid_request_error": "invalid_prompt",
    "api_error": "server_error",
    "overloaded_error": "server_error",
    "timeout_error": "server_error",
}


def responses_error_code(etype: str) -> str:
    """The `code` of a Responses `error` event (server_error, rate_limit_exceeded, ...)."""
    return _RESPONSES_CODE.get(etype, etype)


def status_for(etype: str, fmt: str = "openai_chat") -> int:
    status = ERROR_STATUS.get(etype, 500)
    if status == 529 and fmt != "anthropic":
        return 503
    return status


def openai_error_body(etype: str, message: str, param: str | None = None, code: str | None = None) -> dict:
    otype, ocode = _OPENAI_TYPE.get(etype, ("server_error", None))
    return {"error": {"message": message, "type": otype, "param": param, "code": code or ocode}}


def anthropic_error_body(etype: str, message: str) -> dict:
    if etype not in _ANTHROPIC_TYPES:
        etype = "api_error"
    return {"type": "error", "error": {"type": etype, "message": message}}


def gemini_error_body(etype: str, message: str) -> dict:
    return {"error": {"code": status_for(etype, "gemini"), "message": message,
                      "status": _GEMINI_STATUS.get(etype, "INTERNAL")}}


def render_error(fmt: str, etype: str, message: str, param: str | None = None,
                 code: str | None = None) -> tuple[int, dict]:
    """A whole (non-stream) error response in client format `fmt` → (HTTP status, body)."""
    status = status_for(etype, fmt)
    if fmt == "anthropic":
        return status, anthropic_error_body(etype, message)
    if fmt == "gemini":
        return status, gemini_error_body(etype, message)
    return status, openai_error_body(etype, message, param, code)  # openai_chat and responses


def render_translation_error(fmt: str, exc: TranslationError) -> tuple[int, dict]:
    return render_error(fmt, "invalid_request_error", exc.message, exc.param)


def stream_error_event(fmt: str, etype: str, message: str, sequence_number: int = 0) -> bytes:
    """One mid-stream error event in client format `fmt`, for writers that keep no state.
    (responses.StreamWriter adds `response.failed` after it, with the partial output.)"""
    if fmt == "anthropic":
        return encode_event(orjson.dumps(anthropic_error_body(etype, message)), "error")
    if fmt == "gemini":
        return encode_event(orjson.dumps(gemini_error_body(etype, message)))
    if fmt == "responses":
        body = {"type": "error", "code": responses_error_code(etype), "message": message, "param": None,
                "sequence_number": sequence_number}
        return encode_event(orjson.dumps(body), "error")
    return encode_event(orjson.dumps(openai_error_body(etype, message)))


def responses_error_object(etype: str, message: str) -> dict:
    """The `error` field of a failed Response (its code is a closed enum in the SDK)."""
    return {"code": _RESPONSES_CODE.get(etype, "server_error"), "message": message}
