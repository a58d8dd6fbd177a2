"""POST /v1/ask: question → SQL (by the configured model, through Tollway itself) → rows → chart.

The model is called in-process through the `/v1/chat/completions` route, so the call is routed,
metered and recorded like any other, with source `tollway-ask` and the asking key's id. The
asker only needs the viewer role: the internal call carries its own identity (see
`RequestContext`/`AuthStage`: `scope["tollway.caller"]`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import TYPE_CHECKING, Any

import orjson

from tollway.api.asgi import Scope
from tollway.ask.guard import RefusedSql, check
from tollway.ask.readonly import QueryFailed, QueryTimeout, run_readonly
from tollway.ask.schema import system_prompt
from tollway.errors import ProxyError
from tollway.pipeline.auth import KeyInfo

if TYPE_CHECKING:
    from tollway.api.unified import UnifiedRoute
    from tollway.state import AppState

SOURCE = "tollway-ask"
MAX_QUESTION = 2000
_FENCE = re.compile(r"```(?:sql)?\s*(.*?)```", re.S | re.I)
_TIMEISH = ("time", "hour", "day", "date", "week", "month", "ts")


def extract_sql(reply: str) -> str:
    m = _FENCE.search(reply)
    sql = (m.group(1) if m else reply).strip()
    return sql[:-1].rstrip() if sql.endswith(";") else sql


def suggest_chart(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """line (time on x), bar (a label on x), number (one value) or table."""
    if not rows or not columns:
        return {"type": "table"}

    def numeric(i: int) -> bool:
        vals = [r[i] for r in rows if r[i] is not None]
        return bool(vals) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                  or isinstance(v, str) and _is_number(v) for v in vals)

    nums = [columns[i] for i in range(len(columns)) if numeric(i)]
    if len(rows) == 1 and len(columns) == 1 and nums:
        return {"type": "number", "y": nums}
    if len(columns) >= 2 and not numeric(0) or columns[0].lower() in _TIMEISH:
        ys = [c for c in nums if c != columns[0]]
        if ys:
            timeish = any(w in columns[0].lower() for w in _TIMEISH)
            return {"type": "line" if timeish else "bar", "x": columns[0], "y": ys[:3]}
    return {"type": "table"}


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


class AskService:
    def __init__(self, state: "AppState", chat: "UnifiedRoute") -> None:
        self._state = state
        self._chat = chat

    async def ask(self, question: str, asker: KeyInfo | None) -> dict[str, Any]:
        settings = self._state.settings.ask
        if settings.model is None:
            raise ProxyError("invalid_request", "Ask has no model: set [ask] model = \"<a model Tollway routes>\" "
                                                "in the config file (e.g. gpt-4o-mini) and restart.")
        question = question.strip()
        if not question or len(question) > MAX_QUESTION:
            raise ProxyError("invalid_request", f"question must be 1 to {MAX_QUESTION} characters.", param="question")
        dialect = "sqlite" if self._state.engine.dialect.name == "sqlite" else "postgres"
        reply, trace_id = await self._model(settings.model, system_prompt(dialect, settings.max_rows), question,
                                            asker)
        sql = extract_sql(reply)
        base = {"question": question, "sql": sql, "trace_id": trace_id}
        try:
            safe = check(sql, dialect, settings.max_rows)
        except RefusedSql as e:
            return {**base, "refused": str(e), "columns": [], "rows": [], "chart": None}
        await self._state.ledger.flush()  # the question is about everything recorded so far
        try:
            columns, rows = await run_readonly(self._state.engine, safe, limit_secs=settings.timeout_secs,
                                               max_rows=settings.max_rows)
        except QueryTimeout:
            return {**base, "executed_sql": safe, "refused": f"The query ran longer than {settings.timeout_secs:g} s "
                                                              "and was stopped.", "columns": [], "rows": [],
                    "chart": None}
        except QueryFailed as e:
            return {**base, "executed_sql": safe, "refused": f"The database refused the query: {e}", "columns": [],
                    "rows": [], "chart": None}
        return {**base, "executed_sql": safe, "refused": None, "columns": columns, "rows": rows,
                "chart": suggest_chart(columns, rows)}

    async def _model(self, model: str, system: str, question: str, asker: KeyInfo | None) -> tuple[str, str | None]:
        body = orjson.dumps({"model": model, "temperature": 0, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": question}]})
        scope: Scope = {
            "type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"x-tollway-source", SOURCE.encode())],
            # the internal call's identity: the asker (its limits and budgets apply), allowed to call the model
            "tollway.caller": (dataclasses.replace(asker, roles=frozenset({"user"})) if asker is not None
                               else KeyInfo(SOURCE, roles=frozenset({"user"}))),
        }
        done = asyncio.Event()
        sent = [False]

        async def receive() -> dict[str, Any]:
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        status = 0
        headers: dict[bytes, bytes] = {}
        chunks: list[bytes] = []

        async def send(msg: dict[str, Any]) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
                headers.update((k.lower(), v) for k, v in msg.get("headers", []))
            elif msg["type"] == "http.response.body":
                chunks.append(msg.get("body", b""))

        try:
            await self._chat(scope, receive, send)
        finally:
            done.set()
        trace = headers.get(b"x-tollway-trace-id")
        trace_id = trace.decode() if trace else None
        try:
            obj = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            obj = None
        if status != 200 or not isinstance(obj, dict):
            detail = obj.get("error", {}).get("message") if isinstance(obj, dict) and isinstance(
                obj.get("error"), dict) else None
            raise ProxyError("upstream_error", f"The Ask model '{model}' failed (HTTP {status}): "
                                               f"{detail or 'no answer'} (trace id {trace_id}).")
        try:
            return str(obj["choices"][0]["message"]["content"] or ""), trace_id
        except (KeyError, IndexError, TypeError):
            raise ProxyError("upstream_error", f"The Ask model '{model}' sent no message (trace id {trace_id}).") \
                from None
