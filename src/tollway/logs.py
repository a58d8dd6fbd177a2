"""Logging: one line per request, human-readable or JSON; never bodies, never keys."""

from __future__ import annotations

import logging
import sys
import time

import orjson

from tollway.usage import UsageRecord


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{t}.{int(record.msecs):03d}Z {record.levelname:<7} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, object] = {"time": f"{t}.{int(record.msecs):03d}Z", "level": record.levelname.lower(),
                                  "logger": record.name}
        rec: UsageRecord | None = getattr(record, "record", None)
        if rec is not None:
            u = rec.usage
            out.update(trace_id=rec.trace_id, method=rec.method, route=rec.route, path=rec.path,
                       model=rec.model_served or rec.model_requested, provider=rec.provider, status=rec.status,
                       latency_ms=rec.latency_ms, ttft_ms=rec.ttft_ms, stream=rec.stream,
                       input_tokens=u.input_tokens, output_tokens=u.output_tokens, estimated=u.estimated,
                       cost_usd=None if rec.cost_usd is None else format(rec.cost_usd, "f"),
                       error_type=rec.error_type, cancelled=rec.cancelled, key_id=rec.key_id,
                       project=rec.project, source=rec.source, customer=rec.customer)
        else:
            out["msg"] = record.getMessage()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in ("tollway", "uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level.upper())
        lg.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
