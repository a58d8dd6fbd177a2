"""Recorded-shape fixtures: the single source of every wire shape the fake provider sends.

Each file under tests/fixtures/<openai|anthropic|gemini>/ is a real-shaped example (copied
from the provider's spec examples or a recorded response). Builders deep-copy a fixture and
overwrite only the values a request determines (ids, model, text, usage ...), so a shape is
never typed twice.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"


@functools.lru_cache(maxsize=None)
def _load(provider: str, name: str) -> Any:
    with open(FIXTURES_DIR / provider / f"{name}.json", encoding="utf-8") as f:
        return json.load(f)


def fixture(provider: str, name: str, key: str | None = None) -> Any:
    """A fresh deep copy of fixture `provider/name.json` (or of one named entry in it)."""
    data = _load(provider, name)
    if key is not None:
        data = data[key]
    return copy.deepcopy(data)


def fixture_path(provider: str, name: str) -> Path:
    return FIXTURES_DIR / provider / f"{name}.json"
