"""Writes to a client are coalesced per event-loop iteration (server/coalesce.py), never held
longer: what one iteration writes leaves in one send, a stream whose events come apart still
reaches the client event by event, close() sends what is held and abort() drops it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, standard_config
from tollway.server.coalesce import DIRECT_BYTES, CoalescingTransport


class _Socket(asyncio.Transport):
    """The socket end of a transport: what reached it, one entry per write()."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name, default=None):  # type: ignore[no-untyped-def]
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_of_one_iteration_leave_as_one_and_later_ones_apart() -> None:
    async def run() -> list[bytes]:
        sock = _Socket()
        t = CoalescingTransport(sock, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(memoryview(b"data: 1\n\n"))
        t.write(b"")
        assert sock.sent == [] and t.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\ndata: 1\n\n")
        await asyncio.sleep(0)  # the end of the iteration
        t.write(b"data: 2\n\n")
        await asyncio.sleep(0)
        t.write(b"data: [DONE]\n\n")
        t.write(b"0\r\n\r\n")
        await asyncio.sleep(0)
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else is the socket's
        return sock.sent

    assert asyncio.run(run()) == [b"HTTP/1.1 200 OK\r\n\r\ndata: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n0\r\n\r\n"]


def test_close_sends_what_is_held_and_abort_drops_it() -> None:
    async def run() -> tuple[_Socket, _Socket]:
        loop = asyncio.get_running_loop()
        closed, aborted = _Socket(), _Socket()
        a, b = CoalescingTransport(closed, loop), CoalescingTransport(aborted, loop)
        a.write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        a.close()
        b.write(b"HTTP/1.1 200 OK\r\n\r\n")
        b.abort()
        a.write(b"late")  # after close: goes nowhere
        await asyncio.sleep(0)
        return closed, aborted

    closed, aborted = asyncio.run(run())
    assert closed.sent == [b"HTTP/1.1 408 Request Timeout\r\n\r\n"] and closed.closed
    assert aborted.sent == [] and aborted.aborted


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    t = Tollway(tmp_path_factory.mktemp("coalesce"), standard_config(fake.url))
    yield t
    t.stop()


def test_a_slow_stream_reaches_the_client_event_by_event(tw: Tollway) -> None:
    """The provider sends an event every 0.4 s: each one is relayed as it comes, not with the next."""
    client = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    t0 = time.monotonic()
    arrivals = []
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "Hello [[chunk_delay:0.4]]"}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - t0)
    assert len(arrivals) >= 3
    total = time.monotonic() - t0
    assert arrivals[0] < total - 0.7  # the first words were on screen long before the last



def test_a_large_write_goes_out_uncopied_after_what_is_held() -> None:
    async def run() -> list[bytes]:
        sock = _Socket()
        t = CoalescingTransport(sock, asyncio.get_running_loop())
        big = b"x" * DIRECT_BYTES
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(big)
        assert sock.sent[1] is big  # the body itself, not a joined copy
        t.write(b"tail")
        await asyncio.sleep(0)
        return sock.sent

    assert asyncio.run(run()) == [b"HTTP/1.1 200 OK\r\n\r\n", b"x" * DIRECT_BYTES, b"tail"]
