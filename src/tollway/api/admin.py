"""Operator endpoints: GET /v1/records, /v1/stats, /v1/projects (viewer role when keys are set).

Every query parameter is checked here before it reaches SQL: a malformed one is a 400 in the
OpenAI error shape, never a 500 (Postgres refuses NUL in text and integers beyond 32 bits,
and `str.isdigit()` is true for "²").
"""

from __future__ import annotations

import logging
import math
import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sqlalchemy.exc import SQLAlchemyError

from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, send_bytes, send_json
from tollway.api.authz import authorize, caller
from tollway.errors import ProxyError, render
from tollway.storage import queries

if TYPE_CHECKING:
    from tollway.state import AppState

log = logging.getLogger("tollway")

MAX_FILTER_CHARS = 1024
_TEXT_FILTERS = frozenset({"project", "source", "customer", "model", "key_id", "team", "provider", "cursor", "group_by",
                           "deployment"})
RECORD_FILTERS = ("project", "source", "customer", "model", "status", "since", "until", "key_id", "team",
                  "provider", "limit", "cursor", "after_seq")
ERROR_FILTERS = ("kind", "model", "provider", "deployment", "project", "since", "until", "limit", "cursor")
STATS_FILTERS = ("project", "source", "customer", "model", "status", "since", "until", "key_id", "provider",
                 "team", "group_by", "percentiles")
_RELATIVE = re.compile(r"^(\d{1,9}(?:\.\d{1,6})?)\s*(s|m|min|h|d|w)$")
_UNIT_SECS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _bad(param: str, message: str) -> ProxyError:
    return ProxyError("invalid_request", message, param=param)


def _digits(value: str, max_len: int) -> int | None:
    """A non-negative integer written in ASCII digits (no sign, no "²"), or None. Beyond
    18 digits the value is only known to be huge: 10**18 (capped later, or refused)."""
    if not value or len(value) > max_len or not value.isascii() or not value.isdigit():
        return None
    return int(value) if len(value) <= 18 else 10**18


def parse_since(value: str, param: str = "since", now: float | None = None) -> float:
    """Unix seconds, an ISO 8601 time (a date alone means midnight UTC), `now`, or a time
    relative to now: `30m`, `24h`, `7d`, `2w` (that long ago)."""
    v = value.strip()
    try:
        ts = float(v)
    except ValueError:
        pass
    else:
        if not math.isfinite(ts) or abs(ts) > 1e11:  # beyond year 5000: a mistake
            raise _bad(param, f"{param}: {value!r} is not a usable unix time")
        return ts
    m = _RELATIVE.match(v.lower())
    if m is not None or v.lower() == "now":
        ago = float(m.group(1)) * _UNIT_SECS[m.group(2)] if m else 0.0
        return (time.time() if now is None else now) - ago
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    except (ValueError, OverflowError):
        raise _bad(param, f"{param}: expected unix seconds, ISO 8601 or a time ago such as 7d, 24h or 30m; "
                          f"got {value[:100]!r}") from None


class AdminRoutes:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    def _authorize(self, scope: Scope) -> None:
        authorize(self._state, scope, "viewer")

    @staticmethod
    def _filters(scope: Scope, allowed: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if k not in allowed:
                raise _bad(k[:100], f"Unknown query parameter {k[:100]!r}; allowed: {', '.join(allowed)}.")
            if len(v) > MAX_FILTER_CHARS:
                raise _bad(k, f"{k} is longer than {MAX_FILTER_CHARS} characters.")
            if k in _TEXT_FILTERS:
                if "\x00" in v:
                    raise _bad(k, f"{k} must not contain a NUL character.")
                out[k] = v
            elif k in ("since", "until"):
                out[k] = parse_since(v, k)
            elif k == "limit":
                n = _digits(v, MAX_FILTER_CHARS)  # any number of digits: more than the cap is the cap
                if not n:
                    raise _bad(k, f"limit must be an integer from 1 to {queries.MAX_LIMIT} (more is capped).")
                out[k] = min(n, queries.MAX_LIMIT)
            elif k == "status":
                code = _digits(v, 3)
                if code is not None:
                    out[k] = code
                elif v.strip().lower() in ("ok", "error"):
                    out[k] = v.strip().lower()
                else:
                    raise _bad(k, "status must be an HTTP status code (up to 3 digits), 'ok' or 'error'.")
            elif k == "kind":
                if v not in ("customer", "mitigated"):
                    raise _bad(k, "kind must be 'customer' (the client got an error) or 'mitigated' "
                                  "(a fallback or retry served it).")
                out[k] = v
            elif k == "percentiles":
                if v.strip().lower() not in ("true", "false", "1", "0"):
                    raise _bad(k, "percentiles must be true or false.")
                out[k] = v.strip().lower() in ("true", "1")
            elif k == "after_seq":
                seq = _digits(v, 18)
                if seq is None or seq >= 2**63:
                    raise _bad(k, "after_seq must be a non-negative integer (the seq of the last record seen).")
                out[k] = seq
        if "after_seq" in out and "cursor" in out:
            raise _bad("cursor", "Use either cursor (newest first) or after_seq (insertion order), not both.")
        return out

    async def _answer(self, scope: Scope, send: Send, produce) -> None:
        try:
            self._authorize(scope)
            result = await produce()
        except (ProxyError, queries.InvalidQuery) as e:
            err = e if isinstance(e, ProxyError) else ProxyError("invalid_request", str(e))
            status, body = render(err, "openai")
            await send_bytes(send, status, body, JSON_HEADERS)
            return
        except (SQLAlchemyError, OSError) as e:
            log.warning("records/stats: store unavailable: %s", type(e).__name__)
            status, body = render(ProxyError("store_unavailable", "The store cannot be read right now."), "openai")
            await send_bytes(send, status, body, JSON_HEADERS)
            return
        await send_json(send, 200, result)

    async def me(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Who the presented key is: its id and roles (the portal shows or hides controls by them)."""
        async def produce() -> dict[str, Any]:
            info = caller(self._state, scope)
            if info is None:
                return {"open": True, "key_id": None, "roles": ["admin", "user", "viewer"]}
            return {"open": False, "key_id": info.id, "roles": sorted(info.roles), "name": info.name,
                    "team": info.team, "project": info.project, "customer": info.customer, "source": info.source}
        try:
            result = await produce()
        except ProxyError as e:
            status, body = render(e, "openai")
            await send_bytes(send, status, body, JSON_HEADERS)
            return
        await send_json(send, 200, result)

    async def records(self, scope: Scope, receive: Receive, send: Send, project: str | None = None) -> None:
        """GET /v1/records, and GET /v1/projects/{slug}/records (the slug is the project filter)."""
        async def produce() -> dict[str, Any]:
            f = self._filters(scope, tuple(k for k in RECORD_FILTERS if project is None or k != "project"))
            if project is not None:
                f["project"] = project
            await self._state.ledger.flush()
            return await queries.list_records(self._state.engine, **f)
        await self._answer(scope, send, produce)

    async def errors(self, scope: Scope, receive: Receive, send: Send) -> None:
        """GET /v1/errors: requests a provider failure touched, newest first: those whose client got
        an error (kind=customer) and those a retry or fallback saved (kind=mitigated)."""
        async def produce() -> dict[str, Any]:
            f = self._filters(scope, ERROR_FILTERS)
            kind = f.pop("kind", None) or "any"
            await self._state.ledger.flush()
            page = await queries.list_records(self._state.engine, failure=kind, **f)
            data = [{"trace_id": r["trace_id"], "time": r["time"], "kind": r["failure"], "route": r["route"],
                     "model_requested": r["model_requested"], "provider": r["provider"],
                     "deployment": r["deployment"], "attempts": r["attempts"], "status": r["status"],
                     "error_type": r["error_type"], "attempt_errors": r["attempt_errors"],
                     "project": r["project"], "key_id": r["key_id"]} for r in page["data"]]
            return {"object": "list", "data": data, "next_cursor": page["next_cursor"]}
        await self._answer(scope, send, produce)

    async def record(self, scope: Scope, receive: Receive, send: Send, trace_id: str) -> None:
        async def produce() -> dict[str, Any]:
            if len(trace_id) > 64 or "\x00" in trace_id:  # no trace id looks like that
                raise ProxyError("not_found", f"No record with trace id {trace_id[:64]!r}.")
            await self._state.ledger.flush()
            found = await queries.get_record(self._state.engine, trace_id)
            if found is None:
                raise ProxyError("not_found", f"No record with trace id {trace_id!r}.")
            if self._state.bodies is not None:  # [store] log_bodies: the call's bodies, redacted
                bodies = await self._state.bodies.get(trace_id)
                if bodies is not None:
                    found["bodies"] = bodies
            return found
        await self._answer(scope, send, produce)

    def _raw_from(self) -> float | None:
        retention = self._state.retention
        return retention.horizon() if retention is not None else None

    async def stats(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def produce() -> dict[str, Any]:
            f = self._filters(scope, STATS_FILTERS)
            await self._state.ledger.flush()
            return await queries.stats(self._state.engine, raw_from=self._raw_from(), **f)
        await self._answer(scope, send, produce)

    async def projects(self, scope: Scope, receive: Receive, send: Send) -> None:
        """GET /v1/projects?active_since_mins=N: every project with a request in the last N
        minutes (all projects ever seen without N), with its usage over that window (all time
        without N): the numbers of /v1/stats?group_by=project&since=Nm, plus when it was last active."""
        async def produce() -> dict[str, Any]:
            q = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            unknown = sorted(set(q) - {"active_since_mins"})
            if unknown:
                raise _bad(unknown[0][:100], f"Unknown query parameter {unknown[0][:100]!r}; allowed: "
                                             "active_since_mins.")
            mins = q.get("active_since_mins")
            since = None
            if mins is not None:
                try:
                    n = float(mins)
                except ValueError:
                    n = math.nan
                if not 0 < n <= 10 * 365 * 24 * 60:  # NaN fails too
                    raise _bad("active_since_mins", "active_since_mins must be a number of minutes above 0.")
                since = time.time() - n * 60
            await self._state.ledger.flush()
            result = await queries.stats(self._state.engine, since=since, group_by="project",
                                         raw_from=self._raw_from())
            data = [{"slug": g.pop("project"), **g} for g in result["groups"]]
            return {"object": "list", "since": since, "active_since_mins": float(mins) if mins else None,
                    "data": data, "totals": result["totals"]}
        await self._answer(scope, send, produce)

