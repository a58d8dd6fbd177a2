"""Logging: one line per request, human-readable or JSON; never bodies, never keys.

No client can forge a line or a field: in text lines every field a client or provider
controls has its control characters (C0, DEL, C1, U+2028/U+2029), spaces and backslashes
written as escapes (`\x0a`, `\u2028`, `\\`), so a line is one line and `key=value` pairs split
on spaces; other log messages have control characters escaped and are cut at
`MAX_MESSAGE_CHARS`, and traceback lines are indented. In JSON lines orjson escapes C0
characters; DEL, C1 and U+2028/U+2029, which JSON allows raw but line splitters (Python's
`splitlines()`, some log shippers) break lines at, are escaped here too. Field lengths are
bounded where the record is built (usage.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from typing import TextIO

import orjson

from tollway.tasks import cancel_and_wait
from tollway.usage import UsageRecord

MAX_MESSAGE_CHARS = 8192
_FIELD_UNSAFE = re.compile("[\x00-\x20\x7f-\x9f\u2028\u2029\\\\]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


_JSON_RAW = re.compile(b"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")


def json_line(obj: object) -> str:
    """`obj` as one line of JSON that every line splitter keeps whole."""
    out = orjson.dumps(obj)
    if b"\x7f" in out or b"\xc2" in out or b"\xe2\x80" in out:
        out = _JSON_RAW.sub(lambda m: b"\\u%04x" % ord(m.group().decode()), out)
    return out.decode()


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    if c == "\\":
        return "\\\\"
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def field(value: str) -> str:
    """A value for a `key=value` text log field: one token, on one line, unambiguous."""
    if value.isprintable() and " " not in value and "\\" not in value:
        return value
    return _FIELD_UNSAFE.sub(_escape_char, value)


def message(value: str) -> str:
    """A log message on one line, of bounded length."""
    if len(value) > MAX_MESSAGE_CHARS:
        value = value[: MAX_MESSAGE_CHARS - 1] + "…"
    return value if value.isprintable() else _CONTROL.sub(_escape_char, value)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{t}.{int(record.msecs):03d}Z {record.levelname:<7} {message(record.getMessage())}"
        if record.exc_info:
            # indented: no traceback line can pass for a log line of its own
            line += "".join("\n    " + message(ln) for ln in self.formatException(record.exc_info).splitlines())
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, object] = {"time": f"{t}.{int(record.msecs):03d}Z", "level": record.levelname.lower(),
                                  "logger": record.name}
        msg = record.getMessage()
        out["msg"] = msg if len(msg) <= MAX_MESSAGE_CHARS else msg[: MAX_MESSAGE_CHARS - 1] + "…"
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json_line(out)


class AccessLog:
    """One line per request, buffered and written in batches off the request path.

    Going through `logging` for every request costs more than the rest of the accounting
    together; lines are formatted here and flushed every `interval` seconds (and at shutdown).
    """

    def __init__(self, fmt: str = "text", enabled: bool = True, stream: TextIO | None = None,
                 interval: float = 0.2) -> None:
        self._json = fmt == "json"
        self.enabled = enabled
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._buf: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._sec = -1
        self._prefix = ""

    def write(self, rec: UsageRecord) -> None:
        if not self.enabled:
            return
        self._buf.append(self._json_line(rec) if self._json else self._text_line(rec))

    def _stamp(self, ts: float) -> str:
        """`2026-11-22T14:45:50.531Z`; the part up to the second is formatted once per second."""
        sec = int(ts)
        if sec != self._sec:
            self._sec = sec
            t = time.gmtime(sec)
            self._prefix = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
                            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.")
        return f"{self._prefix}{int((ts - sec) * 1000):03d}Z"

    def _text_line(self, rec: UsageRecord) -> str:
        u = rec.usage
        cost = "-" if rec.cost_usd is None else format(rec.cost_usd, "f")
        tokens_in = "-" if u.input_tokens is None else u.input_tokens
        tokens_out = "-" if u.output_tokens is None else u.output_tokens
        model = rec.model_served or rec.model_requested
        line = (f"{self._stamp(rec.ts)} INFO    {rec.trace_id} {field(rec.route)} {field(rec.method)} "
                f"{field(rec.path)} model={field(model) if model else '-'} "
                f"provider={field(rec.provider) if rec.provider else '-'} "
                f"status={rec.status} latency_ms={rec.latency_ms} tokens={tokens_in}/{tokens_out}"
                f"{'~' if u.estimated else ''} cost={cost}")
        if rec.error_type:
            line += " error=" + field(rec.error_type)
        if rec.project:
            line += " project=" + field(rec.project)
        if rec.source:
            line += " source=" + field(rec.source)
        return line + "\n"

    def _json_line(self, rec: UsageRecord) -> str:
        u = rec.usage
        return json_line({
            "time": self._stamp(rec.ts), "level": "info", "logger": "tollway.access", "trace_id": rec.trace_id, "method": rec.method, "route": rec.route, "path": rec.path,
            "model": rec.model_served or rec.model_requested, "provider": rec.provider, "status": rec.status,
            "latency_ms": rec.latency_ms, "ttft_ms": rec.ttft_ms, "stream": rec.stream,
            "input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "estimated": u.estimated,
            "cost_usd": None if rec.cost_usd is None else format(rec.cost_usd, "f"), "error_type": rec.error_type,
            "cancelled": rec.cancelled, "key_id": rec.key_id, "project": rec.project, "source": rec.source,
            "customer": rec.customer,
        }) + "\n"

    def flush(self) -> None:
        if self._buf:
            lines, self._buf = self._buf, []
            try:
                self._stream.write("".join(lines))
                self._stream.flush()
            except (OSError, ValueError):
                pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.flush()

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self.flush()


class WebSocketLineFilter(logging.Filter):
    """uvicorn logs each WebSocket handshake (`"WebSocket /v1/realtime?…" [accepted]`) with its
    query string, where a client may have put a key (`?api-key=`): the query is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith('%s - "WebSocket %s"') and \
                isinstance(record.args, tuple) and len(record.args) >= 2 and isinstance(record.args[1], str):
            record.args = (record.args[0], record.args[1].split("?", 1)[0], *record.args[2:])
        return True


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(WebSocketLineFilter())
    for name in ("tollway", "uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level.upper())
        lg.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
