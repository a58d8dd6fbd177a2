"""Anthropic's other endpoints, as the Anthropic SDK reaches them through a pass-through:
Message Batches, the legacy Text Completions API and the (beta) Files API.

Shapes follow `../shared/specs/anthropic-openapi.json` (MessageBatch, MessageBatchIndividualResponse,
CompletionResponse, BetaFileMetadataSchema). A batch ends at once; its results are JSONL lines,
each a succeeded message carrying its usage (a download that must not be metered again).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from .anthropic_wire import message
from .openai_wire import rand
from .scenario import REPLY_TEXT, from_anthropic


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_batch(requests: list[dict], base_url: str) -> dict:
    bid = "msgbatch_" + rand(24)
    now = time.time()
    return {
        "id": bid, "type": "message_batch", "processing_status": "ended",
        "request_counts": {"processing": 0, "succeeded": len(requests), "errored": 0, "canceled": 0, "expired": 0},
        "created_at": _iso(now), "ended_at": _iso(now), "expires_at": _iso(now + 86400),
        "archived_at": None, "cancel_initiated_at": None,
        "results_url": f"{base_url}/v1/messages/batches/{bid}/results",
    }


def batch_results(requests: list[dict]) -> bytes:
    lines = []
    for r in requests:
        params = r.get("params") if isinstance(r.get("params"), dict) else {}
        sc = from_anthropic(params, json.dumps(params), str(params.get("model") or ""))
        lines.append(json.dumps({"custom_id": r.get("custom_id"), "result": {"type": "succeeded", "message": message(sc)}}))
    return ("\n".join(lines) + "\n").encode()


def batch_list(batches: list[dict]) -> dict:
    return {"data": batches, "has_more": False, "first_id": batches[0]["id"] if batches else None,
            "last_id": batches[-1]["id"] if batches else None}


def completion(body: dict[str, Any]) -> dict:
    return {"type": "completion", "id": "compl_" + rand(24), "completion": " " + REPLY_TEXT,
            "stop_reason": "stop_sequence", "model": body.get("model") or ""}


def file_object(file_id: str, filename: str, size: int, mime_type: str, created_at: float) -> dict:
    return {"id": file_id, "type": "file", "filename": filename, "mime_type": mime_type, "size_bytes": size,
            "created_at": _iso(created_at), "downloadable": True}


def file_list(files: list[dict]) -> dict:
    return {"data": files, "has_more": False, "first_id": files[0]["id"] if files else None,
            "last_id": files[-1]["id"] if files else None}


def new_file_id() -> str:
    return "file_011C" + rand(20)
