"""The uvicorn configuration Tollway serves with, and the file-descriptor budget it needs."""

from __future__ import annotations

import functools
import logging
import resource
from typing import Any

import uvicorn

from tollway.config import Settings
from tollway.server.limits import ConnectionTracker, EdgeLimits
from tollway.server.protocol import GuardedHttpProtocol

log = logging.getLogger("tollway")

# Besides client connections: upstream connections (about one per request in flight), the
# store, the listening socket, log and spool files.
_FD_RESERVE = 256


def raise_fd_limit(max_connections: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard one (as Go and nginx do); warn when even
    that cannot hold `max_connections` clients and an upstream connection for each."""
    needed = 2 * max_connections + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning("open-file limit is %d: server.max_connections = %d needs about %d (a client and an upstream "
                    "connection each); lower max_connections or raise the limit (ulimit -n)",
                    soft, max_connections, needed)
    return soft


def uvicorn_config(app: Any, settings: Settings, tracker: ConnectionTracker) -> uvicorn.Config:
    s = settings.server
    return uvicorn.Config(
        app, host=s.host, port=s.port, loop="uvloop",
        http=functools.partial(GuardedHttpProtocol, tracker=tracker),  # type: ignore[arg-type]
        lifespan="on", access_log=False, log_config=None, server_header=False, proxy_headers=False,
        timeout_keep_alive=s.keepalive_timeout_secs,  # type: ignore[arg-type]  # a float works: call_later
        # a float, as given: 0 cuts in-flight requests at once (uvicorn reads None as "wait forever")
        timeout_graceful_shutdown=s.shutdown_grace_secs, backlog=4096,  # type: ignore[arg-type]
    )


def edge_tracker(settings: Settings) -> ConnectionTracker:
    return ConnectionTracker(EdgeLimits.from_settings(settings.server))
