"""What a failed attempt is, for the attempt loop (`pipeline.attempts`) and the record.

`Failed` is raised by one attempt (`Forwarder.attempt`, the translated call) that failed before
anything reached the client; which failures may be retried or failed over; `retry-after` as
seconds; and how the record names a request a failure touched (customer-impacting or mitigated).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime

import orjson

from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504, 529})
CREDENTIAL_STATUS = frozenset({401, 403})
# ProxyErrors of a provider call that may be retried or failed over (nothing was sent yet)
RETRYABLE_KINDS = frozenset({"upstream_timeout", "upstream_unreachable", "upstream_error"})


class Failed(Exception):
    """One attempt failed before anything reached the client; the loop decides what next.

    `reply` is what the client would have got from this attempt alone (status, headers, body):
    relayed when it was the only attempt."""

    def __init__(self, status: int | None, error_type: str, reason: str, *, retry_after: float | None = None,
                 reply: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.retry_after = retry_after
        self.reply = reply
        self.error: ProxyError | None = None  # Tollway's own error for it (connect errors, timeouts)
        self.deployment = ""

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUS

    def describe(self) -> str:
        what = str(self.status) if self.status else (self.error.kind if self.error is not None else self.error_type)
        return f"{self.deployment}: {what} {self.reason}".strip()


def fails_over(status: int) -> bool:
    """A provider status after which another attempt may serve the request."""
    return status in RETRYABLE_STATUS or status in CREDENTIAL_STATUS


def retry_after(raw_headers: Sequence[tuple[bytes, bytes]]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), if given."""
    secs = None
    for k, v in raw_headers:
        lk = k.lower()
        if lk == b"retry-after-ms":
            try:
                return max(0.0, float(v) / 1000.0)
            except ValueError:
                continue
        if lk == b"retry-after":
            try:
                secs = max(0.0, float(v))
            except ValueError:
                try:
                    secs = max(0.0, parsedate_to_datetime(v.decode("latin-1")).timestamp() - time.time())
                except (TypeError, ValueError, IndexError):
                    pass
    return secs


def stream_failure(error: ProxyError | None, error_type: str | None, detail: str = "") -> Failed:
    """A stream that broke (or carried an error event) before its first token."""
    if error is not None:
        return failed_by(error)
    return Failed(None, error_type or "provider_error",
                  ("the stream carried an error before its first token " + detail).strip())


def failed_by(error: ProxyError) -> Failed:
    f = Failed(None if error.kind in RETRYABLE_KINDS else error.status, error.error_type, error.message)
    f.error = error
    return f



def failure_kind(ctx: RequestContext) -> str | None:
    """For the record: "mitigated" (served after a failed attempt), "customer" (the client got a
    provider failure: an error status, or a stream cut after its first token), or None."""
    if ctx.cancelled and ctx.error_type == "client_disconnected":
        return "mitigated" if ctx.mitigated else None
    if ctx.status >= 500 or ctx.status == 429 or (ctx.incomplete and ctx.status < 400):
        return "customer"
    if ctx.mitigated:
        return "mitigated"
    return None


_MAX_ERRORS_CHARS = 4000


def attempt_errors_json(errors: list[str]) -> str:
    """The failed attempts as the record keeps them: a JSON list, at most ~4 KB."""
    out: list[str] = []
    size = 0
    for e in errors:
        e = e[:500]
        size += len(e)
        if size > _MAX_ERRORS_CHARS:
            out.append(f"... {len(errors) - len(out)} more")
            break
        out.append(e)
    return orjson.dumps(out).decode()


