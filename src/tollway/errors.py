"""Tollway's own errors, rendered in the wire format of the route that failed.

A `ProxyError` carries a provider-neutral `kind`; `render()` turns it into an OpenAI-shaped
`{"error": {...}}`, an Anthropic-shaped `{"type": "error", "error": {...}}` or a Gemini-shaped
`{"error": {"code", "message", "status"}}` body (Google's `google.rpc.Status` names).
Provider errors are *not* ProxyErrors: those are relayed to the client unchanged.
"""

from __future__ import annotations

from typing import Literal

import orjson

WireFormat = Literal["openai", "anthropic", "gemini"]

# kind -> (http status, OpenAI error type, OpenAI code, Anthropic error type, Gemini status)
_KINDS: dict[str, tuple[int, str, str | None, str, str]] = {
    "invalid_request": (400, "invalid_request_error", None, "invalid_request_error", "INVALID_ARGUMENT"),
    "authentication": (401, "invalid_request_error", "invalid_api_key", "authentication_error", "UNAUTHENTICATED"),
    "permission": (403, "permission_error", None, "permission_error", "PERMISSION_DENIED"),
    "not_found": (404, "invalid_request_error", "not_found", "not_found_error", "NOT_FOUND"),
    "model_not_found": (404, "invalid_request_error", "model_not_found", "not_found_error", "NOT_FOUND"),
    "request_too_large": (413, "invalid_request_error", "request_too_large", "request_too_large", "INVALID_ARGUMENT"),
    "conflict": (409, "invalid_request_error", "conflict", "invalid_request_error", "ABORTED"),
    # never seen by the client (it is gone); 499 as in nginx, for the record
    "client_disconnected": (499, "invalid_request_error", "client_disconnected", "invalid_request_error", "CANCELLED"),
    "request_timeout": (408, "invalid_request_error", "request_timeout", "timeout_error", "DEADLINE_EXCEEDED"),
    "header_too_large": (431, "invalid_request_error", "request_header_fields_too_large", "invalid_request_error",
                         "INVALID_ARGUMENT"),
    "unprocessable": (422, "invalid_request_error", "validation_error", "invalid_request_error", "INVALID_ARGUMENT"),
    "rate_limit": (429, "rate_limit_error", "rate_limit_exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED"),
    "internal": (500, "server_error", None, "api_error", "INTERNAL"),
    "unavailable": (503, "server_error", "service_unavailable", "api_error", "UNAVAILABLE"),
    "upstream_unreachable": (502, "server_error", "upstream_unreachable", "api_error", "UNAVAILABLE"),
    "upstream_error": (502, "server_error", "upstream_error", "api_error", "INTERNAL"),
    "upstream_timeout": (504, "server_error", "upstream_timeout", "timeout_error", "DEADLINE_EXCEEDED"),
    "upstream_too_large": (502, "server_error", "upstream_response_too_large", "api_error", "INTERNAL"),
    "server_shutdown": (503, "server_error", "server_shutting_down", "api_error", "UNAVAILABLE"),
    "overloaded": (503, "server_error", "overloaded", "overloaded_error", "UNAVAILABLE"),
    "store_unavailable": (503, "server_error", "store_unavailable", "api_error", "UNAVAILABLE"),
}


class ProxyError(Exception):
    """An error Tollway itself answers with (as opposed to one relayed from a provider)."""

    def __init__(self, kind: str, message: str, *, param: str | None = None, type_: str | None = None,
                 code: str | None = None) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param
        # a more specific `type` / `code` than the kind's (e.g. "budget_exceeded" for a 429)
        self.type_ = type_
        self.code = code

    @property
    def status(self) -> int:
        return _KINDS[self.kind][0]

    @property
    def error_type(self) -> str:
        """The value recorded in the ledger's error_type column."""
        return self.type_ or self.kind


def shutdown_error() -> ProxyError:
    """What a request cut by a shutdown gets (503, or an error event mid-stream)."""
    return ProxyError("server_shutdown", "Tollway is shutting down and cut this request before it finished; "
                                         "retry it.")


def render(err: ProxyError, fmt: WireFormat) -> tuple[int, bytes]:
    status, oa_type, oa_code, an_type, g_status = _KINDS[err.kind]
    if err.type_ is not None:
        oa_type = an_type = err.type_
    if err.code is not None:
        oa_code = err.code
    if fmt == "anthropic":
        body = {"type": "error", "error": {"type": an_type, "message": err.message}}
    elif fmt == "gemini":
        body = {"error": {"code": status, "message": err.message, "status": g_status}}
    else:
        body = {"error": {"message": err.message, "type": oa_type, "param": err.param, "code": oa_code}}
    return status, orjson.dumps(body)
