"""Operator endpoints: GET /v1/records, /v1/stats, /v1/projects (viewer role when keys are set)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, send_bytes, send_json
from tollway.api.authz import authorize, caller
from tollway.errors import ProxyError, render
from tollway.storage import queries

if TYPE_CHECKING:
    from tollway.state import AppState


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$")
_UNIT_SECS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(value: str, param: str = "since", now: float | None = None) -> float:
    """Unix seconds, an ISO 8601 time (a date alone means midnight UTC), `now`, or a time
    relative to now: `30m`, `24h`, `7d`, `2w` (that long ago)."""
    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    m = _RELATIVE.match(v.lower())
    if m is not None or v.lower() == "now":
        ago = float(m.group(1)) * _UNIT_SECS[m.group(2)] if m else 0.0
        return (time.time() if now is None else now) - ago
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ProxyError("invalid_request", f"{param}: expected unix seconds, ISO 8601 or a relative time "
                                            f"such as 7d, 24h or 30m; got {value!r}", param=param) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


RECORD_FILTERS = ("project", "source", "customer", "model", "status", "since", "until", "key_id", "provider",
                  "limit", "cursor")
STATS_FILTERS = ("project", "source", "customer", "model", "status", "since", "until", "key_id", "provider",
                 "group_by")


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
                raise ProxyError("invalid_request", f"Unknown query parameter {k!r}; allowed: {', '.join(allowed)}.",
                                 param=k)
            if k in ("since", "until"):
                out[k] = parse_since(v, k)
            elif k == "limit":
                if not v.isdigit():
                    raise ProxyError("invalid_request", "limit must be a positive integer.", param="limit")
                out[k] = int(v)
            elif k == "status":
                out[k] = int(v) if v.isdigit() else v
            else:
                out[k] = v
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
        await send_json(send, 200, result)

    async def me(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Who the presented key is: its id and roles (the portal shows or hides controls by them)."""
        async def produce() -> dict[str, Any]:
            info = caller(self._state, scope)
            if info is None:
                return {"open": True, "key_id": None, "roles": ["admin", "user", "viewer"]}
            return {"open": False, "key_id": info.id, "roles": sorted(info.roles)}
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

    async def record(self, scope: Scope, receive: Receive, send: Send, trace_id: str) -> None:
        async def produce() -> dict[str, Any]:
            await self._state.ledger.flush()
            found = await queries.get_record(self._state.engine, trace_id)
            if found is None:
                raise ProxyError("not_found", f"No record with trace id {trace_id!r}.")
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
            unknown = set(q) - {"active_since_mins"}
            if unknown:
                raise ProxyError("invalid_request", f"Unknown query parameter {sorted(unknown)[0]!r}; allowed: "
                                                    "active_since_mins.", param=sorted(unknown)[0])
            mins = q.get("active_since_mins")
            since = None
            if mins is not None:
                try:
                    since = time.time() - float(mins) * 60
                except ValueError:
                    since = None
                if since is None or not 0 < float(mins) <= 10 * 365 * 24 * 60:
                    raise ProxyError("invalid_request", "active_since_mins must be a number of minutes above 0.",
                                     param="active_since_mins")
            await self._state.ledger.flush()
            result = await queries.stats(self._state.engine, since=since, group_by="project",
                                         raw_from=self._raw_from())
            data = [{"slug": g.pop("project"), **g} for g in result["groups"]]
            return {"object": "list", "since": since, "active_since_mins": float(mins) if mins else None,
                    "data": data, "totals": result["totals"]}
        await self._answer(scope, send, produce)

