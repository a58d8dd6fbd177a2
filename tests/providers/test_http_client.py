"""The upstream HTTP/1.1 client against real sockets on 127.0.0.1 with scripted server behaviour."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable

import pytest

from tollway.errors import ProxyError
from tollway.providers.http_client import HttpClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head, body


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def client(read_timeout: float = 2.0) -> HttpClient:
    c = HttpClient(connect_timeout=1.0, read_timeout=read_timeout)
    c.bind_loop()
    return c


async def test_keep_alive_reuses_one_connection() -> None:
    connections = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head, body = await read_request(r)
            except asyncio.IncompleteReadError:
                return
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await w.drain()

    server, url = await serve(handler)
    c = client()
    for i in range(5):
        resp = await c.request("POST", url + "/x?q=1", {"content-type": "text/plain"}, b"ping %d" % i)
        assert resp.status == 200 and await resp.read() == b"ping %d" % i
        resp.release()
    assert connections == 1
    await c.close()
    server.close()


async def test_request_line_headers_and_host() -> None:
    seen: list[bytes] = []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head, body = await read_request(r)
        seen.append(head + body)
        w.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await w.drain()

    server, url = await serve(handler)
    c = client()
    resp = await c.request("POST", url + "/v1/chat?x=1", {"authorization": "Bearer k"}, b"{}")
    assert resp.status == 204 and await resp.read() == b""
    resp.release()
    head = seen[0]
    assert head.startswith(b"POST /v1/chat?x=1 HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:" in head and b"\r\nauthorization: Bearer k\r\n" in head
    assert b"\r\ncontent-length: 2\r\n" in head and head.endswith(b"\r\n\r\n{}")
    await c.close()
    server.close()


async def test_stale_keep_alive_connection_is_retried_once() -> None:
    requests = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal requests
        await read_request(r)
        requests += 1
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await w.drain()
        # keep-alive promised, but the server drops the idle connection after one request
        await asyncio.sleep(0.05)
        w.close()

    server, url = await serve(handler)
    c = client()
    first = await c.request("GET", url, {}, None)
    assert await first.read() == b"ok"
    first.release()
    await asyncio.sleep(0.01)  # the close may or may not have been noticed yet: both paths must work
    second = await c.request("GET", url, {}, None)
    assert await second.read() == b"ok"
    second.release()
    assert requests == 2
    await c.close()
    server.close()


async def test_chunked_stream_arrives_chunk_by_chunk() -> None:
    release = asyncio.Event()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        w.write(b"7\r\ndata: 1\r\n")
        await w.drain()
        await release.wait()
        w.write(b"7\r\ndata: 2\r\n0\r\n\r\n")
        await w.drain()

    server, url = await serve(handler)
    c = client()
    resp = await c.request("POST", url, {}, b"")
    it = resp.iter_chunks()
    assert await it.__anext__() == b"data: 1"  # delivered before the rest exists
    release.set()
    rest = [chunk async for chunk in it]
    assert b"".join(rest) == b"data: 2"
    resp.release()
    await c.close()
    server.close()


async def test_gzip_body_is_decoded() -> None:
    payload = b'{"hello": "world"}' * 100

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        z = gzip.compress(payload)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s" % (len(z), z))
        await w.drain()

    server, url = await serve(handler)
    c = client()
    resp = await c.request("GET", url, {}, None)
    assert await resp.read() == payload
    resp.release()
    await c.close()
    server.close()


async def test_body_delimited_by_close_ends_cleanly() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await w.drain()
        w.close()

    server, url = await serve(handler)
    c = client()
    resp = await c.request("GET", url, {}, None)
    assert await resp.read() == b"until the end"
    resp.release()
    await c.close()
    server.close()


async def test_reset_mid_body_is_an_upstream_error() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await w.drain()
        w.transport.abort()

    server, url = await serve(handler)
    c = client()
    resp = await c.request("GET", url, {}, None)
    with pytest.raises(ProxyError) as ei:
        await resp.read()
    assert ei.value.kind == "upstream_error"
    resp.release()
    await c.close()
    server.close()


async def test_silent_server_times_out_and_closed_port_is_unreachable() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        await asyncio.sleep(5)

    server, url = await serve(handler)
    c = client(read_timeout=0.3)
    with pytest.raises(ProxyError) as ei:
        await c.request("GET", url, {}, None)
    assert ei.value.kind == "upstream_timeout"
    server.close()
    await server.wait_closed()
    with pytest.raises(ProxyError) as ei:
        await c.request("GET", url, {}, None)
    assert ei.value.kind == "upstream_unreachable"
    await c.close()


async def test_head_response_has_no_body() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n")
        await w.drain()
        await asyncio.sleep(1)

    server, url = await serve(handler)
    c = client()
    resp = await c.request("HEAD", url, {}, None)
    assert resp.status == 200 and await resp.read() == b""
    resp.release()
    await c.close()
    server.close()


async def test_unread_large_body_pauses_the_socket_and_resumes() -> None:
    size = 8 * 1024 * 1024

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            w.write(b"x" * 65536)
            await w.drain()

    server, url = await serve(handler)
    c = client()
    resp = await c.request("GET", url, {}, None)
    await asyncio.sleep(0.3)
    assert resp.buffered <= 2 * 1024 * 1024  # reading paused near the high-water mark
    assert len(await resp.read()) == size
    resp.release()
    await c.close()
    server.close()


async def test_an_endless_response_header_is_refused_at_the_limit_without_reading_it_all() -> None:
    sent = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nx-endless: ")
        try:
            for _ in range(256):  # up to 256 MiB, one header that never ends
                w.write(b"a" * (1 << 20))
                await w.drain()
                sent += 1
        except (ConnectionError, OSError):
            return

    server, url = await serve(handler)
    c = client()
    with pytest.raises(ProxyError) as ei:
        await c.request("GET", url, {}, None)
    assert ei.value.kind == "upstream_unreachable" and "response headers over" in ei.value.message
    await asyncio.sleep(0.2)
    assert sent < 16  # the client hung up long before the end, holding at most the limit and a read
    await c.close()
    server.close()


@pytest.mark.parametrize("count,size,ok", [(300, 10, False), (100, 500, True), (200, 400, False)])
async def test_too_many_or_too_large_response_headers_are_refused(count: int, size: int, ok: bool) -> None:
    """At most MAX_HEADERS fields and MAX_HEAD_BYTES, even when the whole answer arrives in one
    read (a large body right behind the headers is no reason to refuse)."""
    head = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * size) for i in range(count))

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        body = b"b" * (1 << 20)
        w.write(b"HTTP/1.1 200 OK\r\n" + head + b"content-length: %d\r\n\r\n" % len(body) + body)
        await w.drain()

    server, url = await serve(handler)
    c = client()
    if ok:
        resp = await c.request("GET", url, {}, None)
        assert resp.status == 200 and len(resp.raw_headers) == count + 1 and len(await resp.read()) == 1 << 20
        resp.release()
    else:
        with pytest.raises(ProxyError) as ei:
            await c.request("GET", url, {}, None)
        assert "response headers over" in ei.value.message
    await c.close()
    server.close()
