"""Session affinity: a session (`x-tollway-session`, else the body's `prompt_cache_key`, else
its `user`) sticks to the deployment that served its previous call while that one is healthy,
so the provider's prompt cache keeps hitting. A bounded LRU per instance, keyed by the model
asked for and the session."""

from __future__ import annotations

from collections import OrderedDict


class Affinity:
    __slots__ = ("_size", "_map")

    def __init__(self, size: int) -> None:
        self._size = size
        self._map: OrderedDict[tuple[str, str], str] = OrderedDict()

    def get(self, model: str, session: str) -> str | None:
        key = (model, session)
        found = self._map.get(key)
        if found is not None:
            self._map.move_to_end(key)
        return found

    def put(self, model: str, session: str, deployment: str) -> None:
        if self._size <= 0:
            return
        key = (model, session)
        if self._map.get(key) == deployment:
            self._map.move_to_end(key)
            return
        self._map[key] = deployment
        self._map.move_to_end(key)
        while len(self._map) > self._size:
            self._map.popitem(last=False)

    def __len__(self) -> int:
        return len(self._map)
