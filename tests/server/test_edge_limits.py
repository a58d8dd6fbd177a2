"""The server edge under attack, on raw sockets: oversized and endless headers, slow bodies,
connection floods. Each attack runs against a live Tollway while real clients keep being served.

Liveness bounds only (a real client is answered within a couple of seconds while under attack);
the cost of the limits is measured by the benchmark, not here.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, openai_client, standard_config

HEADER_LIMIT = 16 * 1024
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
KEEPALIVE = 1.0
MAX_CONNECTIONS = 200
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def edge(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url)
    cfg["server"] = {**cfg["server"], "max_header_bytes": HEADER_LIMIT, "header_timeout_secs": HEADER_TIMEOUT,
                     "body_timeout_secs": BODY_TIMEOUT, "keepalive_timeout_secs": KEEPALIVE,
                     "max_connections": MAX_CONNECTIONS}
    tw = Tollway(tmp_path_factory.mktemp("edge"), cfg)
    yield tw
    tw.stop()


def rss_mb(tw: Tollway) -> float:
    for line in Path(f"/proc/{tw.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def connect(tw: Tollway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", tw.port), timeout=10)


def read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (or `timeout` passes)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def health(tw: Tollway, timeout: float = 2.0) -> dict:
    """/health answers within `timeout` seconds (urllib raises otherwise)."""
    req = urllib.request.Request(tw.url + "/health", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:  # 503 when degraded still answers
        return json.loads(e.read())


def real_client_is_served(tw: Tollway) -> None:
    health(tw)
    client = openai_client(tw)
    client.timeout = 5
    assert client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices[0].message.content


def flood_header(tw: Tollway, total: int, result: list, path: bytes = b"/v1/chat/completions") -> None:
    """Send one header of `total` bytes, 1 MiB at a time, until the server hangs up."""
    sock = connect(tw)
    sent = 0
    try:
        sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nX-Flood: ")
        chunk = b"a" * (1 << 20)
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    result.append((sent, read_all(sock, 3)))
    sock.close()


# -- header size ----------------------------------------------------------------------------


@pytest.mark.parametrize("pieces", [1, 40])
def test_headers_over_the_limit_get_431_in_the_route_format(edge: Tollway, pieces: int) -> None:
    for path, fmt in ((b"/v1/chat/completions", "openai"), (b"/v1/messages", "anthropic")):
        request = (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * HEADER_LIMIT
                   + b"\r\nContent-Length: 2\r\n\r\n{}")
        sock = connect(edge)
        step = -(-len(request) // pieces)
        try:
            for i in range(0, len(request), step):
                sock.sendall(request[i:i + step])
        except OSError:
            pass  # the server may hang up before the last piece
        status, body = status_and_json(read_all(sock))
        sock.close()
        assert status == 431
        if fmt == "openai":
            assert body["error"]["code"] == "request_header_fields_too_large"
            assert str(HEADER_LIMIT) in body["error"]["message"]
        else:
            assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"


def test_headers_just_under_the_limit_are_served(edge: Tollway) -> None:
    sock = connect(edge)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "
    sock.sendall(head + b"a" * (HEADER_LIMIT - len(head) - 200) + b"\r\n\r\n")
    assert read_all(sock).startswith(b"HTTP/1.1 200 ")
    sock.close()


def test_a_pipelined_request_with_oversized_headers_is_refused(edge: Tollway) -> None:
    sock = connect(edge)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (HEADER_LIMIT + 10) + b"\r\n\r\n")
    raw = read_all(sock)
    sock.close()
    first, second = raw.split(b"HTTP/1.1 ")[1:]  # the first request is answered, then the second refused
    assert first.startswith(b"200 ") and second.startswith(b"431 ")


def test_four_40mb_header_floods_do_not_stall_other_clients(edge: Tollway) -> None:
    before = rss_mb(edge)
    results: list = []
    floods = [threading.Thread(target=flood_header, args=(edge, 40 << 20, results)) for _ in range(4)]
    for t in floods:
        t.start()
    for _ in range(5):
        real_client_is_served(edge)
    for t in floods:
        t.join(30)
    assert len(results) == 4
    for sent, answer in results:
        assert sent < (40 << 20)  # the server hung up long before the end
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")
    assert rss_mb(edge) - before < 50
    assert health(edge)["connections"]["header_too_large"] >= 4


def test_one_300mb_header_does_not_grow_memory(edge: Tollway) -> None:
    before = rss_mb(edge)
    results: list = []
    flood_header(edge, 300 << 20, results)
    sent, answer = results[0]
    assert sent < (300 << 20)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")
    assert rss_mb(edge) - before < 50
    real_client_is_served(edge)


# -- time -----------------------------------------------------------------------------------


def test_headers_dribbled_slower_than_the_timeout_get_408(edge: Tollway) -> None:
    sock = connect(edge)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    raw = b""
    try:
        for _ in range(int(HEADER_TIMEOUT * 4)):
            time.sleep(0.5)
            sock.sendall(b"X-Slow: 1\r\n")  # every line in time, the whole too slow
    except OSError:
        pass
    raw = read_all(sock)
    sock.close()
    status, body = status_and_json(raw)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert time.monotonic() - start < HEADER_TIMEOUT * 4  # cut before the client was done


def test_a_connection_that_sends_nothing_is_closed(edge: Tollway) -> None:
    sock = connect(edge)
    assert read_all(sock, HEADER_TIMEOUT + 5) == b""  # closed, no response to a request never made
    sock.close()


def test_a_body_dribbled_slower_than_the_timeout_gets_408_and_a_record(edge: Tollway) -> None:
    sock = connect(edge)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + MASTER_KEY.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
    try:
        for _ in range(int(BODY_TIMEOUT * 4)):
            time.sleep(0.5)
            sock.sendall(b" ")
    except OSError:
        pass
    raw = read_all(sock)
    sock.close()
    status, body = status_and_json(raw)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    rows = [r for r in edge.records(limit=20) if r["status"] == 499]
    assert rows and rows[0]["error_type"] == "client_disconnected"
    assert "Traceback" not in edge.log()


def test_idle_keepalive_connections_are_closed(edge: Tollway) -> None:
    sock = connect(edge)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(5)
    first = b""
    while b"\r\n\r\n" not in first:
        first += sock.recv(65536)
    head, _, body = first.partition(b"\r\n\r\n")
    length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200 ")
    start = time.monotonic()
    assert read_all(sock, KEEPALIVE + 5) == b""
    assert time.monotonic() - start < KEEPALIVE + 4
    sock.close()


# -- connections ----------------------------------------------------------------------------


def test_a_thousand_dribbling_connections_do_not_lock_out_real_clients(edge: Tollway) -> None:
    before = health(edge)["connections"]
    socks = []
    for _ in range(1000):
        s = connect(edge)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    try:
        deadline = time.monotonic() + HEADER_TIMEOUT + 2
        while time.monotonic() < deadline:
            for s in socks:
                try:
                    s.send(b"X-Drip: 1\r\n")
                except OSError:
                    pass
            real_client_is_served(edge)
            time.sleep(0.5)
        # every dribbler was evicted to make room or cut at the header timeout
        for s in socks:
            answer = read_all(s, 3)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
    finally:
        for s in socks:
            s.close()
    after = health(edge)["connections"]
    assert after["evicted"] - before["evicted"] >= 1000 - MAX_CONNECTIONS
    assert after["header_timeouts"] > before["header_timeouts"]
    assert after["open"] < 20


def test_when_every_slot_is_busy_a_new_connection_gets_503(fake: FakeProvider, tmp_path: Path) -> None:
    cfg = standard_config(fake.url)
    cfg["server"] = {**cfg["server"], "max_connections": 3}
    tw = Tollway(tmp_path, cfg)
    try:
        client = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
        slow = [threading.Thread(target=client.chat.completions.create, kwargs={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "[[delay:3]] hi"}]}) for _ in range(3)]
        for t in slow:
            t.start()
        time.sleep(1.0)  # all three requests in progress
        sock = connect(tw)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, body = status_and_json(read_all(sock))
        sock.close()
        assert status == 503 and body["error"]["code"] == "overloaded"
        for t in slow:
            t.join(10)
        assert client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices  # slots free again
        assert health(tw)["connections"]["refused"] >= 1
    finally:
        tw.stop()


def test_websocket_handshakes_still_upgrade_and_free_their_slot(edge: Tollway) -> None:
    """Realtime's WebSocket handshake goes through the guarded protocol, then leaves it: the
    connection is uvicorn's WebSocket protocol's, and its slot is released."""
    before = health(edge)["connections"]["open"]
    for _ in range(20):
        sock = connect(edge)
        sock.sendall(b"GET /v1/realtime?model=gpt-4o-realtime-preview HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer wrong-key\r\n\r\n")
        sock.settimeout(5)
        answer = b""
        while b"\x88" not in answer.partition(b"\r\n\r\n")[2]:  # until the close frame
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        sock.close()
        # upgraded, then refused by the route: a Realtime error event and a close frame (1008)
        assert answer.startswith(b"HTTP/1.1 101 ") and b"\x88" in answer, answer[:200]
    assert health(edge)["connections"]["open"] <= before + 1
