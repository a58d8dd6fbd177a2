"""What one client connection may make the server hold, and the open connections of a server.

`EdgeLimits` is the `[server]` settings that `GuardedHttpProtocol` enforces per connection.
`ConnectionTracker` is shared by every connection of one server: it counts them, keeps the
ones with no request in progress in least-recently-active order, and at `max_connections`
makes room by closing the oldest of those (an idle keep-alive connection, or one that has
not finished sending its headers). Only when every connection is busy with a request is a
new one refused (503). So a flood of connections that never finish a request cannot lock
real clients out: their requests take a slot for milliseconds, the flood's slots are the
oldest idle ones and go first.

uvicorn's `limit_concurrency` is not used: at its limit it answers 503 to everyone, the
flood and real clients alike, and it does not stop idle connections from holding the slots.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tollway.config import ServerSettings


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 120.0
    keepalive_timeout: float = 5.0
    max_connections: int = 1000

    @classmethod
    def from_settings(cls, s: "ServerSettings") -> "EdgeLimits":
        return cls(s.max_header_bytes, s.header_timeout_secs, s.body_timeout_secs, s.keepalive_timeout_secs,
                   s.max_connections)


class ConnectionTracker:
    """Open connections of one server, and what the limits did to them (counters for /health).

    A connection is `idle` from connect until its first request's headers are complete, and
    again from the end of each response until the next request's headers are complete.
    """

    def __init__(self, limits: EdgeLimits) -> None:
        self.limits = limits
        self.open = 0
        # connections with no request in progress, least recently active first; the
        # protocol adds and removes itself (see GuardedHttpProtocol)
        self.idle_connections: OrderedDict[Any, None] = OrderedDict()
        self.header_too_large = 0  # 431
        self.header_timeouts = 0  # 408 or closed before a complete header section
        self.body_timeouts = 0  # 408 or closed before a complete body
        self.evicted = 0  # idle connections closed to make room for a new one
        self.refused = 0  # new connections refused (503): every slot busy with a request

    def opened(self, conn: Any) -> bool:
        """Count a new connection; False when it must be refused (every slot busy)."""
        self.open += 1
        if self.open > self.limits.max_connections:
            if not self.idle_connections:
                self.refused += 1
                return False
            victim, _ = self.idle_connections.popitem(last=False)
            self.evicted += 1
            victim.evict()
        self.idle_connections[conn] = None
        return True

    def closed(self, conn: Any) -> None:
        self.open -= 1
        self.idle_connections.pop(conn, None)

    def snapshot(self) -> dict[str, int]:
        return {"open": self.open, "max": self.limits.max_connections, "header_too_large": self.header_too_large,
                "header_timeouts": self.header_timeouts, "body_timeouts": self.body_timeouts,
                "evicted": self.evicted, "refused": self.refused}
