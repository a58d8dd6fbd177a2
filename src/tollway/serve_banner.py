"""What `tollway serve` says once the port is bound: where it listens and, with --demo, how to try it.

uvicorn runs the app's lifespan (store, migrations, providers) first and binds the port after;
the "listening" line is written only then, so a script or a person reading it can connect at once.
"""

from __future__ import annotations

import logging
import shlex
import socket
from typing import Sequence

import uvicorn
from sqlalchemy.engine import make_url

from tollway import __version__
from tollway.config import Settings

log = logging.getLogger("tollway")


def client_host(bind: str) -> str:
    """An address a client on this machine can use for a bind address."""
    if bind in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bind in ("::", "[::]"):
        return "[::1]"
    return f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind


def store_description(settings: Settings) -> str:
    url = make_url(settings.store_url)
    if url.get_backend_name() == "sqlite":
        where = settings.server.data_dir.resolve() / "tollway.db" if settings.store.url is None else url.database
        return f"SQLite {where}"
    return "Postgres " + url.set(drivername="postgresql").render_as_string(hide_password=True)


def demo_lines(settings: Settings, base: str) -> list[str]:
    native = "answers in your client's format"
    models = [f"{p.id} ({native if p.wire_format == 'native' else 'speaks ' + p.wire_format})"
              for p in sorted(settings.providers, key=lambda p: p.wire_format != "native") if p.kind == "demo"]
    auth = ' -H "Authorization: Bearer $TOLLWAY_MASTER_KEY"' if settings.server.master_key is not None else ""
    body = '{"model": "demo", "messages": [{"role": "user", "content": "Hi"}]}'
    return [
        "demo models: " + ", ".join(models) + "; any other demo-* name works too (chat, embeddings, streams)",
        f"records go to {store_description(settings)} (spool: {(settings.server.data_dir / 'spool').resolve()}); "
        f"see them at {base}/v1/records",
        f"try: curl -s {shlex.quote(base + '/v1/chat/completions')}{auth} -H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)}",
    ]


class BannerServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self._settings = settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # lifespan, then bind (exits the process if either fails)
        if not self.started:
            return
        s = self._settings
        bound = [sock for server in getattr(self, "servers", []) for sock in (server.sockets or [])]
        port = bound[0].getsockname()[1] if bound else s.server.port
        base = f"http://{client_host(s.server.host)}:{port}"
        log.info("tollway %s listening on http://%s:%d (providers: %s; store: %s)", __version__,
                 f"[{s.server.host}]" if ":" in s.server.host else s.server.host, port,
                 ", ".join(p.id for p in s.providers) or "none",
                 "sqlite" if s.store_url.startswith("sqlite") else "postgres")
        log.info("portal: %s/", base)
        if s.demo:
            for line in demo_lines(s, base):
                log.info("%s", line)

    def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
        """uvicorn's own "Uvicorn running on …" line: Tollway's, above, says it instead."""
