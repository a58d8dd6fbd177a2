"""Server-sent events as the providers frame them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Sse:
    data: str
    event: str | None = None

    def encode(self, line_end: str = "\n") -> bytes:
        head = f"event: {self.event}{line_end}" if self.event else ""
        return f"{head}data: {self.data}{line_end}{line_end}".encode()


def compact(obj: Any, *, sort_keys: bool = False) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
