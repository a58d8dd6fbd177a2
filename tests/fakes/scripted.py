"""A hostile upstream: every answer is written by the test, byte for byte.

`FakeProvider` speaks the providers' formats faithfully; this one speaks whatever a test
scripts, to attack Tollway the way a broken or malicious provider would: streams that never
end an event, gzip bombs, answers of hundreds of megabytes, answer text that looks like
protocol. One aiohttp server on 127.0.0.1 (random port, background thread).

    with ScriptedUpstream() as up:
        up.handler = sse_stream([b'data: {"choices":[]}\\n\\n', b"data: [DONE]\\n\\n"])
        ... point a provider at up.url + "/v1" (OpenAI) or up.url (Anthropic) ...
        up.calls, up.bodies, up.disconnects
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ScriptedUpstream:
    def __init__(self) -> None:
        self.url = ""
        self.handler: Handler = _not_scripted
        self.calls = 0
        self.bodies: list[bytes] = []
        self.disconnects = 0  # handlers whose client (Tollway) hung up before they finished
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def reset(self, handler: Handler) -> None:
        self.handler = handler
        self.calls = 0
        self.bodies = []
        self.disconnects = 0

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        self.bodies.append(await request.read())
        try:
            return await self.handler(request)
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise

    def __enter__(self) -> "ScriptedUpstream":
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="scripted-upstream", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._runner is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _not_scripted(request: web.Request) -> web.StreamResponse:
    return web.json_response({"error": {"message": "no script", "type": "server_error"}}, status=500)


# --- scripts ---------------------------------------------------------------------------------------

def sse_stream(chunks: Iterable[bytes | float] | Callable[[], Iterable[bytes | float]], delay: float = 0.0) -> Handler:
    """A text/event-stream of exactly these bytes, chunk by chunk (a callable makes them lazily);
    a number among the chunks is a pause of that many seconds."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in (chunks() if callable(chunks) else chunks):
            if isinstance(chunk, (int, float)):
                await asyncio.sleep(chunk)
                continue
            await resp.write(chunk)
            if delay:
                await asyncio.sleep(delay)
        await resp.write_eof()
        return resp

    return handler


def json_body(data: bytes | Callable[[], Iterable[bytes]], gzipped: bool = False) -> Handler:
    """An application/json answer of these bytes (streamed out in pieces when a callable)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"content-type": "application/json"}
        if gzipped:
            headers["content-encoding"] = "gzip"
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        for piece in ([data] if isinstance(data, bytes) else data()):
            await resp.write(piece)
        await resp.write_eof()
        return resp

    return handler


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip member that inflates to `inflated_bytes` of spaces (about 1,000 : 1)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1 << 20)
    out = [comp.compress(b'{"x":"')]
    for _ in range(inflated_bytes // len(block)):
        out.append(comp.compress(block))
    out.append(comp.flush())
    return b"".join(out)


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def chat_chunk(content: str | None = None, usage: dict | None = None, model: str = "gpt-4o-mini",
               choices: bool = True, **extra: Any) -> bytes:
    obj: dict[str, Any] = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": model,
                           "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
                           if choices else [], **extra}
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
