"""The one place that talks HTTP to providers: a shared aiohttp session.

`send()` returns as soon as the upstream status and headers arrive, so the caller can
relay a stream chunk by chunk, and fall back on an error before anything reached the
client. Network failures become `ProxyError`s (502 unreachable, 504 timed out).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp

from tollway.errors import ProxyError
from tollway.providers.base import UpstreamRequest


class UpstreamResponse(Protocol):
    status: int
    raw_headers: tuple[tuple[bytes, bytes], ...]

    async def read(self) -> bytes: ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None: ...


class Transport(Protocol):
    async def send(self, req: UpstreamRequest) -> UpstreamResponse: ...


class HttpResponse:
    """aiohttp's response behind the UpstreamResponse interface."""

    __slots__ = ("_resp", "status", "raw_headers")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.raw_headers = resp.raw_headers

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except asyncio.TimeoutError:
            raise ProxyError("upstream_timeout", "The provider did not finish its response in time.") from None
        except aiohttp.ClientError as e:
            raise ProxyError("upstream_error", f"The provider's response broke off ({type(e).__name__}).") from None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except asyncio.TimeoutError:
            raise ProxyError("upstream_timeout", "The provider stopped sending within the read timeout.") from None
        except aiohttp.ClientError as e:
            raise ProxyError("upstream_error", f"The provider's stream broke off ({type(e).__name__}).") from None

    def release(self) -> None:
        self._resp.close()


class HttpTransport:
    """One keep-alive connection pool for every provider."""

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=True,
            skip_auto_headers=("User-Agent",), cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, req: UpstreamRequest) -> HttpResponse:
        assert self._session is not None, "transport not started"
        try:
            resp = await self._session.request(req.method, req.url, headers=req.headers, data=req.body,
                                               allow_redirects=False)
        except asyncio.TimeoutError:
            raise ProxyError("upstream_timeout", "The provider did not answer in time.") from None
        except (aiohttp.ClientConnectionError, OSError) as e:
            raise ProxyError("upstream_unreachable", f"The provider could not be reached ({type(e).__name__}).") from None
        except aiohttp.ClientError as e:
            raise ProxyError("upstream_error", f"The provider's answer was not valid HTTP ({type(e).__name__}).") from None
        return HttpResponse(resp)
