"""Conversions of a `UsageRecord`: to a table row, to and from a spool line, and of a table
row to the JSON-friendly dict the HTTP API returns."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from tollway.storage.money import decimal_from_nanousd, format_usd, nanousd_from_decimal
from tollway.usage import Usage, UsageRecord

log = logging.getLogger(__name__)

_RECORD_FIELDS = frozenset(f.name for f in fields(UsageRecord))
_USAGE_FIELDS = frozenset(f.name for f in fields(Usage))
_TEXT_COLUMNS = ("trace_id", "route", "method", "path", "provider", "model_requested", "model_served", "cost_note",
                 "error_type", "key_id", "project", "source", "customer", "deployment", "attempt_errors")


def storable_text(value: str) -> str:
    """`value` as every store can keep it: Postgres refuses NUL in text, and any string that
    is not valid UTF-8 (a lone surrogate), so such characters become U+FFFD. Done to every row,
    on every engine, so one request's odd slug or path never costs a record, nor makes the
    writer retry its batch row by row."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            # a lone surrogate survives the round trip through UTF-16 only as U+FFFD
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _nanousd(v: Decimal | None) -> int | None:
    try:
        return nanousd_from_decimal(v)
    except (ValueError, TypeError, ArithmeticError):
        return None


def row_from_record(r: UsageRecord) -> dict[str, Any]:
    """The `usage_records` row for a record. Never raises on a bad cost: the row keeps a
    NULL cost and says why in `cost_note`, because losing the call is worse. Text is made
    storable (`storable_text`)."""
    u = r.usage
    cost_note = r.cost_note
    try:
        cost = nanousd_from_decimal(r.cost_usd)
    except (ValueError, TypeError, ArithmeticError):
        log.warning("ledger: unstorable cost %r on trace %s", r.cost_usd, r.trace_id)
        cost, cost_note = None, f"invalid cost {r.cost_usd!r}"
    row = {
        "trace_id": r.trace_id,
        "ts": r.ts,
        "route": r.route,
        "method": r.method,
        "path": r.path,
        "provider": r.provider,
        "model_requested": r.model_requested,
        "model_served": r.model_served,
        "stream": r.stream,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cached_tokens": u.cached_tokens,
        "cache_creation_tokens": u.cache_creation_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "total_tokens": u.total_tokens,
        "tokens_estimated": u.estimated,
        "cost_nanousd": cost,
        "cost_note": cost_note,
        "latency_ms": r.latency_ms,
        "ttft_ms": r.ttft_ms,
        "status": r.status,
        "error_type": r.error_type,
        "cancelled": r.cancelled,
        "key_id": r.key_id,
        "project": r.project,
        "source": r.source,
        "customer": r.customer,
        "team": r.team,
        "guard_findings": r.guard_findings,
        "cache": r.cache,
        "cost_saved_nanousd": _nanousd(r.cost_saved_usd),
        "deployment": r.deployment,
        "attempts": r.attempts,
        "failure": r.failure,
        "attempt_errors": r.attempt_errors,
    }
    for name in _TEXT_COLUMNS:
        value = row[name]
        if isinstance(value, str) and (not value.isascii() or "\x00" in value):
            row[name] = storable_text(value)
    return row


ROW_COLUMNS: tuple[str, ...] = tuple(row_from_record(UsageRecord("", 0.0, "")))  # what a written row sets



def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def record_to_json(r: UsageRecord) -> bytes:
    """One spool line (without the newline). Decimals become strings, so money is exact."""
    try:
        return orjson.dumps(r, default=_json_default)
    except TypeError:
        # orjson refuses integers beyond 64 bits; such a record is bound for the dead-letter
        # file, where it should still read exactly as it was.
        return json.dumps(asdict(r), default=str, separators=(",", ":")).encode()


def record_from_json(line: bytes | str) -> UsageRecord:
    """Inverse of `record_to_json`. Unknown keys are ignored and missing ones take their
    defaults, so a spool written by an older or newer Tollway still replays."""
    data = orjson.loads(line)
    usage = Usage(**{k: v for k, v in (data.get("usage") or {}).items() if k in _USAGE_FIELDS})
    kwargs = {k: v for k, v in data.items() if k in _RECORD_FIELDS and k != "usage"}
    for name in ("cost_usd", "cost_saved_usd"):
        cost = kwargs.get(name)
        kwargs[name] = None if cost is None else Decimal(str(cost))
    return UsageRecord(usage=usage, **kwargs)


def iso_utc(ts: float) -> str:
    """Unix seconds → '2024-11-22T14:37:01.123Z'."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


API_FIELDS = (
    "trace_id", "time", "ts", "route", "method", "path", "provider", "model_requested",
    "model_served", "stream", "input_tokens", "output_tokens", "cached_tokens",
    "cache_creation_tokens", "reasoning_tokens", "total_tokens", "tokens_estimated",
    "cost_usd", "cost_note", "latency_ms", "ttft_ms", "status", "error_type", "cancelled",
    "key_id", "project", "source", "customer", "team", "seq", "guard_findings", "cache", "cost_saved_usd",
    "deployment", "attempts", "failure", "attempt_errors",
)  # fmt: skip


def api_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `usage_records` row → the dict `GET /v1/records` returns (cost as a decimal string)."""
    derived = {
        "time": iso_utc(row["ts"]),
        "cost_usd": format_usd(decimal_from_nanousd(row["cost_nanousd"])),
        "guard_findings": orjson.loads(row["guard_findings"]) if row.get("guard_findings") else None,
        "cost_saved_usd": format_usd(decimal_from_nanousd(row["cost_saved_nanousd"])),
        "attempt_errors": orjson.loads(row["attempt_errors"]) if row.get("attempt_errors") else [],
    }
    return {k: derived[k] if k in derived else row[k] for k in API_FIELDS}
