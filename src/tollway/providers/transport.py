"""The one place that talks HTTP to providers.

`send()` returns as soon as the upstream status and headers arrive, so the caller can relay
a stream chunk by chunk, and fall back on an error before anything reached the client.
Network failures become `ProxyError`s (502 unreachable, 504 timed out); see
`providers.http_client` for why this is not aiohttp's client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from tollway.providers.base import UpstreamRequest
from tollway.providers.http_client import HttpClient


class UpstreamResponse(Protocol):
    status: int
    raw_headers: Sequence[tuple[bytes, bytes]]

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; past `limit` bytes, ProxyError("upstream_too_large")."""
        ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None: ...


class Transport(Protocol):
    async def send(self, req: UpstreamRequest) -> UpstreamResponse: ...


class HttpTransport:
    """Keep-alive connection pools shared by every HTTP provider."""

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._client: HttpClient | None = None

    async def start(self) -> None:
        self._client = HttpClient(self._connect_timeout, self._read_timeout)
        self._client.bind_loop()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send(self, req: UpstreamRequest) -> UpstreamResponse:
        assert self._client is not None, "transport not started"
        return await self._client.request(req.method, req.url, req.headers, req.body, req.connect_timeout,
                                          req.head_timeout)
