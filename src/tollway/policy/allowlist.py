"""Model allow-lists: a key may call only models matching its globs (`gpt-4o*`, `claude-*`).

`permits(key, model)` is the one question other stages ask (the router uses it to leave
disallowed deployments out of a plan). Answers are cached per list, so the globs are matched
once per model name, not once per request.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.pipeline.auth import KeyInfo

_CACHE_MAX = 1024


class AllowList:
    __slots__ = ("patterns", "_seen")

    def __init__(self, patterns: list[str] | tuple[str, ...]) -> None:
        self.patterns = tuple(p.strip() for p in patterns if p.strip())
        self._seen: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"AllowList({', '.join(self.patterns)})"

    def permits(self, model: str) -> bool:
        ok = self._seen.get(model)
        if ok is None:
            ok = any(fnmatchcase(model, p) for p in self.patterns)
            if len(self._seen) >= _CACHE_MAX:
                self._seen.clear()
            self._seen[model] = ok
        return ok


def permits(key: "KeyInfo | None", model: str) -> bool:
    """May this key call this model? Always true for no key, the master key, or no allow-list."""
    if key is None or key.policy is None or key.policy.models is None:
        return True
    return key.policy.models.permits(model)
