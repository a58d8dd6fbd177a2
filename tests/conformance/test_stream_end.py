"""A stream the client read to its end is a complete call, even when the client hangs up at once.

The `openai` SDK closes the connection as soon as it reads `data: [DONE]`, without waiting for
the end of the HTTP body. An upstream whose final empty chunk comes a little after `[DONE]`
(any real network can do that) must not turn a complete, fully metered stream into a
"client_disconnected" call with estimated tokens. The matrix's openai-chat stream cells on
fast-path providers hit that race only now and then; this upstream makes it certain.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest

from tests.harness import MASTER_KEY, Tollway, standard_config

EOF_DELAY = 0.5  # seconds between `[DONE]` and the end of the HTTP body
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    obj = {"id": "chatcmpl-late-eof", "object": "chat.completion.chunk", "created": 1741570283,
           "model": "gpt-4o-mini", "choices": choices, "usage": usage}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class _LateEofHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        events = [_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hello"}),
                  _chunk({"content": " there"}), _chunk({}, "stop"), _chunk({}, usage=USAGE), b"data: [DONE]\n\n"]
        for ev in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
            self.wfile.flush()
        time.sleep(EOF_DELAY)
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass  # Tollway went away first


@pytest.fixture(scope="module")
def late_eof_tollway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LateEofHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream = f"http://127.0.0.1:{server.server_address[1]}"
    cfg = standard_config(upstream)
    cfg["aliases"] = {}
    cfg["providers"] = [{"id": "late-eof", "kind": "openai", "base_url": upstream + "/v1", "api_key": "sk-x",
                         "models": ["gpt-4o-mini"]}]
    tw = Tollway(Path(tmp_path_factory.mktemp("late-eof")), cfg)
    try:
        yield tw
    finally:
        tw.stop()
        server.shutdown()


def test_client_closing_after_done_is_a_complete_call(late_eof_tollway: Tollway) -> None:
    oai = openai.OpenAI(base_url=late_eof_tollway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
    with oai.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True,
            stream_options={"include_usage": True}) as raw:
        trace = raw.headers["x-tollway-trace-id"]
        chunks = list(raw.parse())  # ends at [DONE]; the SDK then closes the connection
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    rec = late_eof_tollway.record(trace, timeout=EOF_DELAY + 5)
    assert (rec["error_type"], rec["cancelled"], rec["tokens_estimated"]) == (None, False, False), rec
    assert (rec["input_tokens"], rec["output_tokens"], rec["status"]) == (11, 7, 200), rec
