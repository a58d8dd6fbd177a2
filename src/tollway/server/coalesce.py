"""A client connection's writes, coalesced per event-loop iteration.

uvicorn writes a response's status line and headers as soon as the app sends
`http.response.start`, then each body message as it comes, each with its own `send()` system
call and, on a TCP_NODELAY socket, its own packet. A whole answer is the head plus one body
(two writes), a stream that arrived in one read is head, events and the chunked terminator
(three); on loopback each write costs about as much CPU as the whole rest of uvicorn's work
for the request. `CoalescingTransport` holds the writes made during one iteration of the event
loop and hands them to the socket as one at the end of it (`loop.call_soon`), so what the app
sends without waiting in between leaves in one packet, and nothing is delayed past the
iteration that wrote it: a stream whose next event has not arrived yet has its head (and every
event so far) on the wire before the loop waits for it.

No HTTP library offers this for uvicorn's protocols (uvloop has no cork), hence this wrapper,
which the server's protocol puts around the socket's transport (server/protocol.py). What it
holds is bounded by what the app writes between two waits, and the socket transport's own
flow control (pause_writing at its high-water mark) sees every byte one iteration later at
most. A large write (`DIRECT_BYTES` or more: a big answer's body) is not copied into a joined
buffer: what is held goes first, then it, each as it is. close() sends what is held first;
abort() drops it, as the socket's abort() does.
"""

from __future__ import annotations

import asyncio
from typing import Any

DIRECT_BYTES = 64 * 1024  # writes this large go to the socket at once (after what is held), uncopied


class CoalescingTransport:
    """A socket transport whose writes of one loop iteration go out as one."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    @property
    def transport(self) -> asyncio.Transport:
        """The socket's own transport (handed on as is when the connection is upgraded)."""
        return self._transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if len(data) >= DIRECT_BYTES:
            self.flush()
            if not self._transport.is_closing():
                self._transport.write(data)
            return
        held = self._held
        if held is None:
            self._held = [bytes(data) if not isinstance(data, bytes) else data]
            self._loop.call_soon(self.flush)
        else:
            held.append(bytes(data) if not isinstance(data, bytes) else data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Hand what is held to the socket now (the end-of-iteration callback, and close())."""
        held = self._held
        if held is None:
            return
        self._held = None
        if not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (sum(map(len, held)) if held else 0)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # get_extra_info, pause_reading, set_protocol, ...
        return getattr(self._transport, name)
