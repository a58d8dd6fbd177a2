"""A fake billing webhook receiver: aiohttp on 127.0.0.1 in a background thread.

It checks each batch's HMAC signature, remembers every event it was sent (duplicates too)
and counts each event id once, as a real receiver must. `mode` scripts its behaviour:
"ok" (200), "fail" (500), "hang" (never answers until the mode changes or it stops),
"slow" (answers 200 after `slow_secs`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from collections import Counter
from typing import Any

import orjson
from aiohttp import web


class WebhookReceiver:
    def __init__(self, secret: str, path: str = "/billing") -> None:
        self.secret = secret.encode()
        self.path = path
        self.mode = "ok"
        self.slow_secs = 1.0
        self.events: list[dict[str, Any]] = []  # every event delivered with a 2xx, duplicates included
        self.seen: Counter[str] = Counter()  # id -> times received (any answer)
        self.bad_signatures = 0
        self.posts = 0
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._mode_changed: asyncio.Event | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if self._loop is not None and self._mode_changed is not None:
            self._loop.call_soon_threadsafe(self._mode_changed.set)

    @property
    def unique_ids(self) -> set[str]:
        with self._lock:
            return {e.get("id") or e.get("identifier") for e in self.events}

    def delivered(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def wait_for(self, n: int, timeout: float = 30.0) -> set[str]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            ids = self.unique_ids
            if len(ids) >= n:
                return ids
            time.sleep(0.05)
        raise AssertionError(f"receiver has {len(self.unique_ids)} unique events, expected {n}")

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        sig = request.headers.get("x-tollway-signature", "")
        parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
        expected = hmac.new(self.secret, parts.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        events = orjson.loads(body)["events"]
        with self._lock:
            self.posts += 1
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
            for e in events:
                self.seen[e.get("id") or e.get("identifier")] += 1
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            with self._lock:
                self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        mode = self.mode
        if mode == "fail":
            return web.Response(status=500, text="receiver down")
        if mode == "hang":
            assert self._mode_changed is not None
            self._mode_changed.clear()
            while self.mode == "hang":
                await self._mode_changed.wait()
                self._mode_changed.clear()
            return web.Response(status=503, text="was hanging")
        if mode == "slow":
            await asyncio.sleep(self.slow_secs)
        with self._lock:
            self.events.extend(events)
        return web.json_response({"received": len(events)})

    async def _astart(self) -> None:
        self._mode_changed = asyncio.Event()
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> "WebhookReceiver":
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._astart())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-webhook", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self.set_mode("ok")
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> "WebhookReceiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
