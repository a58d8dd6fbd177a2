"""Raw ASGI helpers for the hot path: reading bodies, sending responses, watching disconnects.

Proxy routes are plain ASGI callables (no framework request objects): a request costs
only what it must.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Awaitable, Callable

import orjson

from tollway.errors import ProxyError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

JSON_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"application/json"),)

# Never relayed from upstream: hop-by-hop headers and what the server recomputes.
_DROP_RESPONSE = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"content-length", b"content-encoding", b"date", b"server",
    b"set-cookie",
})


def header_map(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def relay_headers(raw: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """Upstream response headers to relay: hop-by-hop ones dropped, and any `x-tollway-*` (an
    upstream that is itself a Tollway): this Tollway adds its own trace id and cost."""
    out: RawHeaders = []
    for k, v in raw:
        low = k.lower()
        if low not in _DROP_RESPONSE and not low.startswith(b"x-tollway-"):
            out.append((k, v))
    return out


def with_own_headers(relayed: list[tuple[bytes, bytes]], own: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The provider's headers plus Tollway's; where both set one (x-ratelimit-*), Tollway's wins."""
    if len(own) > 1:  # more than the trace id: drop the provider's of the same names
        names = dict(own)  # (a dict made in C: only its keys, the names, are looked up)
        relayed = [(k, v) for k, v in relayed if k.lower() not in names]
    relayed.extend(own)
    return relayed


async def _discard_rest(receive: Receive, msg: dict[str, Any]) -> None:
    """Read and drop the rest of a body, so the client gets to read our 413 instead of a reset."""
    while msg.get("more_body"):
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return


def _gone() -> ProxyError:
    # The client hung up, or the server's body timeout did (server/protocol.py): nobody reads
    # the answer, but the record says what happened.
    return ProxyError("client_disconnected", "The client went away before the request body was complete.")


async def read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        await _discard_rest(receive, {"more_body": True})
        raise ProxyError("request_too_large", f"Request body is larger than the limit of {limit} bytes.")
    msg = await receive()
    if msg["type"] == "http.disconnect":
        raise _gone()
    body = msg.get("body", b"")
    if not msg.get("more_body"):
        if len(body) > limit:
            raise ProxyError("request_too_large", f"Request body is larger than the limit of {limit} bytes.")
        return body
    parts = [body]
    size = len(body)
    while msg.get("more_body"):
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise _gone()
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            await _discard_rest(receive, msg)
            raise ProxyError("request_too_large", f"Request body is larger than the limit of {limit} bytes.")
        parts.append(chunk)
    return b"".join(parts)


async def send_bytes(send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]]) -> None:
    hdrs = list(headers)
    hdrs.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(send: Send, status: int, obj: Any, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send_bytes(send, status, orjson.dumps(obj), [*JSON_HEADERS, *extra])


class DisconnectWatch:
    """Cancels the current task when the client goes away mid-response.

    Only started once the request body has been read completely, and stopped before the
    final body message (after which uvicorn reports every receive() as a disconnect).
    """

    __slots__ = ("_receive", "_task", "_watch", "fired")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task = asyncio.current_task()
        self._watch: asyncio.Task[None] | None = None
        self.fired = False

    def start(self) -> "DisconnectWatch":
        self._watch = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            msg = await self._receive()
            if msg["type"] == "http.disconnect":
                self.fired = True
                if self._task is not None:
                    self._task.cancel()
                return

    def absorb(self) -> bool:
        """Call in `except CancelledError`: True when the cancellation was this watch's (the
        client went away), and the task is un-cancelled so the request can still be recorded;
        False for any other cancellation, which the caller must re-raise."""
        if not self.fired:
            return False
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True

    def stop(self) -> None:
        if self._watch is not None and not self._watch.done():
            self._watch.cancel()
        self._watch = None
