"""A fake OpenAI / Azure Realtime server: a `websockets` server on 127.0.0.1 in a background thread.

It speaks the documented GA events: `session.created` on connect, `session.updated` for
`session.update`, `conversation.item.created` for `conversation.item.create`, and for
`response.create` a `response.created`, text deltas of `Hello from the fake realtime!`, and a
`response.done` whose usage is 12 input tokens (4 of them cached) and 6 output tokens. A user
message containing `[[audio]]` adds audio tokens; `[[hangup]]` closes mid-response (code 1011).
Connections need `Authorization: Bearer …` or `api-key` (else HTTP 401).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

REPLY = "Hello from the fake realtime!"
USAGE = {"total_tokens": 18, "input_tokens": 12, "output_tokens": 6,
         "input_token_details": {"text_tokens": 12, "audio_tokens": 0, "cached_tokens": 4,
                                 "cached_tokens_details": {"text_tokens": 4, "audio_tokens": 0}},
         "output_token_details": {"text_tokens": 6, "audio_tokens": 0}}


@dataclass
class Handshake:
    path: str
    headers: dict[str, str]
    subprotocol: str | None
    received: list[dict[str, Any]] = field(default_factory=list)


class FakeRealtime:
    def __init__(self) -> None:
        self.handshakes: list[Handshake] = []
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "FakeRealtime":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check,
                                   subprotocols=["realtime"], select_subprotocol=self._select)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    @staticmethod
    def _select(conn: ServerConnection, offered: Any) -> Any:
        return "realtime" if "realtime" in offered else None

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") and not request.headers.get("api-key"):
            body = json.dumps({"error": {"message": "Missing bearer or basic authentication in header",
                                         "type": "invalid_request_error"}}).encode()
            return Response(401, "Unauthorized", Headers({"content-type": "application/json"}), body)
        return None

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    async def _handle(self, ws: ServerConnection) -> None:
        req = ws.request
        assert req is not None
        hs = Handshake(req.path, {k.lower(): v for k, v in req.headers.raw_items()}, ws.subprotocol)
        self.handshakes.append(hs)
        model = "gpt-realtime-2025-08-28"
        await self._send(ws, "session.created", session={"id": self._id("sess"), "object": "realtime.session",
                                                          "type": "realtime", "model": model})
        last_text = ""
        async for raw in ws:
            event = json.loads(raw)
            hs.received.append(event)
            t = event.get("type")
            if t == "session.update":
                await self._send(ws, "session.updated", session={"type": "realtime", "model": model})
            elif t == "conversation.item.create":
                item = event.get("item") or {}
                last_text = "".join(c.get("text", "") for c in item.get("content") or () if isinstance(c, dict))
                await self._send(ws, "conversation.item.added", previous_item_id=None, item={**item, "id": self._id("item")})
            elif t == "response.create":
                await self._respond(ws, last_text)

    async def _respond(self, ws: ServerConnection, prompt: str) -> None:
        rid = self._id("resp")
        base = {"id": rid, "object": "realtime.response", "output": [], "usage": None, "status": "in_progress"}
        await self._send(ws, "response.created", response=base)
        item = self._id("item")
        for i, word in enumerate(REPLY.split(" ")):
            await self._send(ws, "response.output_text.delta", response_id=rid, item_id=item, output_index=0,
                             content_index=0, delta=word if i == 0 else " " + word)
            if "[[hangup]]" in prompt and i == 1:
                await ws.close(1011, "upstream went away")
                return
        usage = json.loads(json.dumps(USAGE))
        if "[[audio]]" in prompt:
            usage["output_token_details"] = {"text_tokens": 2, "audio_tokens": 4}
        await self._send(ws, "response.done", response={**base, "status": "completed", "usage": usage, "output": [
            {"id": item, "type": "message", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": REPLY}]}]})

    async def _send(self, ws: ServerConnection, etype: str, **fields: Any) -> None:
        await ws.send(json.dumps({"type": etype, "event_id": self._id("event"), **fields}))
