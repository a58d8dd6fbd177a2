"""Session affinity: a session (`x-tollway-session`, else the body's `prompt_cache_key`, else
its `user`) sticks to the deployment that served its previous call while that one is healthy,
so the provider's prompt cache keeps hitting. A bounded LRU per instance, keyed by the model
asked for and the session.

With `[redis] url` set, sessions are shared between instances without a round trip on the
request path: a change is queued (`outbox`) and a session this instance has not seen is queued
for a look (`wanted`); the health sync (`routing.health_sync`) sends both in its next pipelined
round trip and fills this map with what it finds, so the session's next call here sticks too."""

from __future__ import annotations

from collections import OrderedDict


class Affinity:
    __slots__ = ("_size", "_map", "shared", "outbox", "wanted", "poke")

    def __init__(self, size: int) -> None:
        self._size = size
        self._map: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.shared = False  # set by the Redis sync
        self.outbox: dict[tuple[str, str], str] = {}
        self.wanted: set[tuple[str, str]] = set()
        self.poke: "object | None" = None

    def get(self, model: str, session: str) -> str | None:
        key = (model, session)
        found = self._map.get(key)
        if found is not None:
            self._map.move_to_end(key)
        elif self.shared and len(self.wanted) < 10_000:
            self.wanted.add(key)
            if self.poke is not None:
                self.poke()  # type: ignore[operator]
        return found

    def learn(self, model: str, session: str, deployment: str) -> None:
        """What another instance recorded (never queued back)."""
        key = (model, session)
        if key not in self._map and self._size > 0:
            self._map[key] = deployment
            while len(self._map) > self._size:
                self._map.popitem(last=False)

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
        if self.shared and len(self.outbox) < 10_000:
            self.outbox[key] = deployment
            if self.poke is not None:
                self.poke()  # type: ignore[operator]

    def __len__(self) -> int:
        return len(self._map)
