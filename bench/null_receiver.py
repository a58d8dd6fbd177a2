"""A receiver that accepts and discards: OTLP/HTTP traces and billing webhooks, for benchmarks.

    python bench/null_receiver.py --port 4318

Answers every POST with 200 and an empty body (an empty body is a valid, empty
`ExportTraceServiceResponse` in protobuf, and a webhook only looks at the status), over
HTTP/1.1 keep-alive. Counts what it got and prints the totals every few seconds and on exit,
so a benchmark can check that spans and events did arrive. Standard library only; run it on
another CPU than the proxy (`taskset -c 1 ...`) so its work is not counted as the proxy's.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_path: dict[str, list[int]] = {}  # path -> [requests, bytes]

    def add(self, path: str, n: int) -> None:
        with self.lock:
            c = self.by_path.setdefault(path, [0, 0])
            c[0] += 1
            c[1] += n

    def line(self) -> str:
        with self.lock:
            return " ".join(f"{p}: {c[0]} posts, {c[1]} bytes" for p, c in sorted(self.by_path.items())) or "nothing yet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=4318)
    ap.add_argument("--report-secs", type=float, default=5.0)
    a = ap.parse_args()
    counts = Counts()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the http.server naming
            n = int(self.headers.get("content-length") or 0)
            self.rfile.read(n)
            counts.add(self.path, n)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf" if self.path.endswith("/traces")
                             else "application/json")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(a.report_secs):
            print(counts.line(), flush=True)

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    threading.Thread(target=report, daemon=True).start()
    signal.signal(signal.SIGTERM, on_term)
    print(f"null receiver on http://127.0.0.1:{a.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        print("total:", counts.line(), flush=True)
        sys.exit(0)


if __name__ == "__main__":
    main()
