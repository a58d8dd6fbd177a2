"""A fake LLM provider that speaks the real OpenAI, Azure OpenAI, Anthropic and Gemini wire formats.

One aiohttp server on 127.0.0.1 (random free port) in a background thread with its own event
loop, so tests can use the sync `openai` / `anthropic` clients and Tollway can run as a
subprocess. Every answer is built from the recorded-shape fixtures in tests/fixtures/.

    with FakeProvider() as fake:
        client = openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi [[tool:lookup]]"}])
        fake.requests[-1].json["model"]

Routes (one server serves all of them):
    OpenAI     /v1/chat/completions  /v1/completions  /v1/embeddings  /v1/responses
               GET / DELETE /v1/responses/{id} (any id of the fake's form, resp_ and 48 hex digits)
               /v1/files (POST multipart, GET)  /v1/files/{id}[/content]  /v1/models[/{id}]
               /v1/audio/transcriptions (multipart; stream=true: SSE)
    Azure      /openai/deployments/{deployment}/chat/completions|completions|embeddings?api-version=
               /openai/responses?api-version=   and the v1 API under /openai/v1/...  (header api-key)
    Local      the OpenAI routes under /local/v1/... (no auth; local model list)
    Anthropic  /v1/messages  /v1/messages/count_tokens  /v1/models (when sent x-api-key)
               /v1/messages/batches[/{id}[/results]]  /v1/complete  /v1/files (with anthropic-version)
    Gemini     /v1beta/models/{model}:generateContent|streamGenerateContent|embedContent|
               batchEmbedContents|countTokens   /v1beta/models  (also under /v1/)

Directives (in the text of the last user turn / tool results, see scenario.py):
    [[fault:CODE]] [[fault:CODE@SCOPE]] [[delay:S]] [[chunk_delay:S]] [[reset_after:N]] [[malformed]]
    [[hang]] [[no_usage]] [[tool:NAME]] [[tools:N]] [[max_tokens]] [[thinking]] [[echo]] [[cache]]
    [[dated]] [[stream_error]] [[gzip]]
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from . import anthropic_extras, anthropic_wire, gemini_wire, openai_audio, openai_wire
from .multipart import UploadedFile, parse_multipart
from .scenario import (
    Directives,
    Scenario,
    from_anthropic,
    from_gemini,
    from_gemini_embed,
    from_openai_chat,
    from_openai_completion,
    from_openai_embeddings,
    from_responses,
)
from .sse import Sse

OPENAI_FAMILIES = ("openai", "azure", "local")
STORED_PROMPT_MODEL = "gpt-4o-mini"  # what a Responses `prompt` (a stored prompt) names when the body has no model
_REASONS = {529: "Overloaded", 499: "Client Closed Request"}


@dataclass
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any  # parsed body, or None
    form: dict[str, str | UploadedFile] = field(default_factory=dict)  # multipart fields
    provider: str = ""  # "openai" | "azure" | "local" | "anthropic" | "gemini"
    received_at: float = 0.0
    completed: bool = False  # the fake finished its answer
    disconnected: bool = False  # the client went away before the answer was finished
    raw_path: str = ""  # the request target as sent, still percent-encoded (path and query)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class _ScriptedFault:
    status: int
    remaining: int
    scope: str | None


@dataclass
class _ScriptedReply:
    text: str
    remaining: int
    scope: str | None


class _Abort(Exception):
    """Raised after the connection has been reset on purpose."""


class FakeProvider:
    def __init__(self) -> None:
        self.url: str = ""
        self.port: int = 0
        self._requests: list[ReceivedRequest] = []
        self._cond = threading.Condition()
        self._faults: list[_ScriptedFault] = []
        self._refused: dict[str, int] = {}  # credential -> status (refuse_key)
        self._replies: list[_ScriptedReply] = []
        self._files: dict[str, tuple[dict, bytes]] = {}
        self._batches: dict[str, tuple[dict, list[dict]]] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # ------------------------------------------------------------ public API

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._cond:
            return list(self._requests)

    @property
    def local_url(self) -> str:
        """Base of the local OpenAI-compatible flavour (append /v1)."""
        return self.url + "/local"

    def clear(self) -> None:
        with self._cond:
            self._requests.clear()
            self._faults.clear()
            self._refused.clear()
            self._replies.clear()
            self._files.clear()
            self._batches.clear()

    def fail_next(self, status: int, count: int = 1, scope: str | None = None) -> None:
        """Answer the next `count` requests (in `scope`, if given) with `status`, then behave.

        Scope is a provider family ("openai", "azure", "local", "anthropic", "gemini"), a model or
        an Azure deployment name. Lets tests script "fail once, then succeed" for retries/fallback.
        """
        with self._cond:
            self._faults.append(_ScriptedFault(status, count, scope))

    def refuse_key(self, credential: str, status: int = 401) -> None:
        """Requests sent with this credential (any auth header) are answered `status` (401, 403, 429)."""
        with self._cond:
            self._refused[credential] = status

    def reply_next(self, text: str, count: int = 1, scope: str | None = None) -> None:
        """The next `count` answers (in `scope`: a family or a model) say `text` instead of the usual reply.

        For tests of features that read what a model wrote (e.g. the SQL of Ask).
        """
        with self._cond:
            self._replies.append(_ScriptedReply(text, count, scope))

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        with self._cond:
            self._cond.wait_for(lambda: len(self._requests) >= n, timeout)
            return list(self._requests)

    def start(self) -> "FakeProvider":
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # pragma: no cover - surfaced to the caller
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._astop(), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> "FakeProvider":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ server lifecycle

    async def _astart(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=256 * 1024 * 1024)
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0,
                                     handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"

    async def _astop(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()
        await self._runner.cleanup()

    def _add_routes(self, app: web.Application) -> None:
        r = app.router
        h = self._route

        def openai_routes(prefix: str, family: str) -> None:
            r.add_post(prefix + "/chat/completions", h(family, "chat"))
            r.add_post(prefix + "/completions", h(family, "completion"))
            r.add_post(prefix + "/embeddings", h(family, "embeddings"))
            r.add_post(prefix + "/responses", h(family, "responses"))
            r.add_get(prefix + "/responses/{response_id}", h(family, "response_get"))
            r.add_delete(prefix + "/responses/{response_id}", h(family, "response_get"))
            r.add_post(prefix + "/files", h(family, "file_upload"))
            r.add_get(prefix + "/files", h(family, "file_list"))
            r.add_get(prefix + "/files/{file_id}", h(family, "file_get"))
            r.add_delete(prefix + "/files/{file_id}", h(family, "file_delete"))
            r.add_get(prefix + "/files/{file_id}/content", h(family, "file_content"))
            r.add_get(prefix + "/models", h(family, "models"))
            r.add_get(prefix + "/models/{model}", h(family, "model_get"))
            r.add_post(prefix + "/audio/transcriptions", h(family, "transcription"))

        # Gemini first: its paths contain a colon that /v1/models/{model} would also match.
        for version in ("v1beta", "v1"):
            r.add_post(f"/{version}/models/{{model}}:{{action}}", h("gemini", "gemini"))
        r.add_get("/v1beta/models", h("gemini", "gemini_models"))
        r.add_post("/v1/messages", h("anthropic", "messages"))
        r.add_post("/v1/messages/count_tokens", h("anthropic", "count_tokens"))
        r.add_post("/v1/messages/batches", h("anthropic", "batch_create"))
        r.add_get("/v1/messages/batches", h("anthropic", "batch_list"))
        r.add_get("/v1/messages/batches/{batch_id}", h("anthropic", "batch_get"))
        r.add_get("/v1/messages/batches/{batch_id}/results", h("anthropic", "batch_results"))
        r.add_post("/v1/complete", h("anthropic", "complete"))
        openai_routes("/v1", "openai")
        openai_routes("/local/v1", "local")
        openai_routes("/openai/v1", "azure")
        for op, kind in (("chat/completions", "chat"), ("completions", "completion"), ("embeddings", "embeddings")):
            r.add_post(f"/openai/deployments/{{deployment}}/{op}", h("azure", kind))
        r.add_post("/openai/responses", h("azure", "responses"))
        r.add_route("*", "/{tail:.*}", h("openai", "not_found"))

    def _route(self, family: str, kind: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            fam = family
            if (kind in ("models", "model_get") or kind.startswith("file_")) and family == "openai" \
                    and "anthropic-version" in request.headers:
                fam = "anthropic"  # /v1/models and /v1/files are both OpenAI's and Anthropic's
            if kind == "not_found":
                fam = self._guess_family(request)
            rr = await self._record(request, fam)
            try:
                resp = await self._serve(request, rr, fam, kind)
                rr.completed = not rr.disconnected
                return resp
            except _Abort:
                raise asyncio.CancelledError() from None
            except (asyncio.CancelledError, ConnectionError):
                rr.disconnected = True
                raise

        return handler

    @staticmethod
    def _guess_family(request: web.Request) -> str:
        if request.path.startswith(("/v1beta", "/v1/models/")) and ":" in request.path:
            return "gemini"
        if "anthropic-version" in request.headers or "x-api-key" in request.headers:
            return "anthropic"
        if request.path.startswith("/openai/"):
            return "azure"
        return "openai"

    async def _record(self, request: web.Request, family: str) -> ReceivedRequest:
        body = await request.read()
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        parsed: Any = None
        form: dict[str, str | UploadedFile] = {}
        ctype = headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = parse_multipart(body, ctype)
        elif body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        rr = ReceivedRequest(request.method, request.path, {k: v for k, v in request.query.items()}, headers,
                             body, parsed, form, family, time.time(), raw_path=request.raw_path)
        with self._cond:
            self._requests.append(rr)
            self._cond.notify_all()
        return rr

    # ------------------------------------------------------------ request handling

    async def _serve(self, request: web.Request, rr: ReceivedRequest, family: str, kind: str) -> web.StreamResponse:
        denied = self._check_auth(request, family)
        if denied is not None:
            return denied
        if self._refused:
            for h in ("authorization", "x-api-key", "api-key", "x-goog-api-key"):
                v = request.headers.get(h, "")
                v = v[7:].strip() if v.lower().startswith("bearer ") else v.strip()
                if v in self._refused:
                    return self._fault(family, self._refused[v])
        if "[[leak_key]]" in rr.text:  # a careless upstream that echoes the credential it was sent
            sent = [request.headers.get(h, "") for h in ("authorization", "x-api-key", "api-key", "x-goog-api-key")]
            return self._json(family, 401, self._leak_body(family, " ".join(v for v in sent if v)))
        if kind == "not_found":
            return self._not_found(request, family)
        if kind in ("models", "model_get", "gemini_models"):
            return self._models(request, family, kind)
        if kind.startswith("file_"):
            return self._files_route(request, rr, family, kind)
        if kind == "response_get":  # a response the fake could have made (resp_ and 48 hex digits)
            rid = request.match_info["response_id"]
            if not re.fullmatch(r"resp_[0-9a-f]{48}", rid):
                return self._not_found(request, family)
            if request.method == "DELETE":
                return self._json(family, 200, {"id": rid, "object": "response", "deleted": True})
            return self._json(family, 200, {"id": rid, "object": "response", "created_at": int(time.time()),
                                            "status": "completed", "model": "gpt-4o-mini", "output": []})
        if kind.startswith("batch_") or kind == "complete":
            return self._anthropic_extras(request, rr, kind)
        if kind == "transcription":
            if not isinstance(rr.form.get("file"), UploadedFile) or not rr.form.get("model"):
                return self._json(family, 400, openai_wire.error_body(400, family))
            if rr.form.get("stream") == "true":
                plain = Scenario(Directives(), "", [], 0, "")
                return await self._stream(request, rr, family, plain, openai_audio.transcription_stream())
            return self._json(family, 200, openai_audio.transcription())

        deployment = request.match_info.get("deployment")
        if family == "azure" and request.path.startswith("/openai/") and not request.path.startswith("/openai/v1/") \
                and not request.query.get("api-version"):
            return self._json(family, 404, openai_wire.named_error("not_found", "azure"))
        if kind == "gemini":
            kind = request.match_info["action"]
            if kind not in ("generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents",
                            "countTokens"):
                return self._json(family, 404, gemini_wire.error_body(404))
        if not isinstance(rr.json, dict):
            return self._json(family, 400, self._error_body(family, 400))

        body = rr.json
        model = request.match_info.get("model") or body.get("model") or deployment or (
            STORED_PROMPT_MODEL if kind == "responses" and isinstance(body.get("prompt"), dict) else "")
        sc = self._scenario(kind, body, rr.text, model)
        sc.directives = sc.directives.in_scopes({family, model, deployment or ""})
        invalid = self._validate(family, kind, body)
        if invalid is not None:
            return invalid

        d = sc.directives
        if d.hang:
            assert self._stopping is not None
            await self._stopping.wait()
            self._abort(request)
        await self._sleep(d.delay)  # before any fault too: [[delay:2]] [[fault:500]] is a slow failure
        status = self._fault_for(sc, family, model, deployment)
        if status is not None:
            return self._fault(family, status)
        sc.scripted = self._scripted_reply({family, model, deployment or ""})
        streaming = bool(body.get("stream")) or (kind == "streamGenerateContent" and request.query.get("alt") == "sse")
        if d.reset_after is not None and not streaming:
            self._abort(request)

        if family in OPENAI_FAMILIES:
            return await self._openai(request, rr, family, kind, sc, body, streaming)
        if family == "anthropic":
            return await self._anthropic(request, rr, kind, sc, body, streaming)
        return await self._gemini(request, rr, kind, sc, body)

    @staticmethod
    def _scenario(kind: str, body: dict, text: str, model: str) -> Scenario:
        if kind == "embedContent":
            return from_gemini_embed([body.get("content") or {}], text, model)
        if kind == "batchEmbedContents":
            return from_gemini_embed([r.get("content") or {} for r in body.get("requests") or []], text, model)
        extract = {
            "chat": from_openai_chat, "completion": from_openai_completion, "embeddings": from_openai_embeddings,
            "responses": from_responses, "messages": from_anthropic, "count_tokens": from_anthropic,
        }.get(kind, from_gemini)
        return extract(body, text, model)

    def _validate(self, family: str, kind: str, body: dict) -> web.Response | None:
        def openai_missing(param: str) -> web.Response:
            err = openai_wire.error_body(400, family if family == "azure" else "openai")
            err["error"].update(message=f"Missing required parameter: '{param}'.", param=param,
                                code="missing_required_parameter")
            return self._json(family, 400, err)

        if family in OPENAI_FAMILIES:
            required = {"chat": ["messages"], "completion": ["prompt"], "embeddings": ["input"],
                        "responses": []}.get(kind, [])
            prompt_names_model = kind == "responses" and isinstance(body.get("prompt"), dict)  # a stored prompt
            if not body.get("model") and family != "azure" and not prompt_names_model:
                required = ["model"] + required
            for param in required:
                if body.get(param) in (None, ""):
                    return openai_missing(param)
        elif family == "anthropic":
            if kind == "messages" and body.get("max_tokens") is None:
                return self._json(family, 400, anthropic_wire.named_error("missing_max_tokens"))
            if not isinstance(body.get("messages"), list) or not body.get("model"):
                return self._json(family, 400, anthropic_wire.error_body(400))
        elif kind in ("generateContent", "streamGenerateContent") and not body.get("contents"):
            err = gemini_wire.error_body(400)
            err["error"]["message"] = "* GenerateContentRequest.contents: contents is not specified\n"
            return self._json(family, 400, err)
        return None

    def _scripted_reply(self, scopes: set[str]) -> str | None:
        with self._cond:
            for r in self._replies:
                if r.remaining > 0 and (r.scope is None or r.scope in scopes):
                    r.remaining -= 1
                    return r.text
        return None

    def _fault_for(self, sc: Scenario, family: str, model: str, deployment: str | None) -> int | None:
        scopes = {family, model, deployment or ""}
        with self._cond:
            for f in self._faults:
                if f.remaining > 0 and (f.scope is None or f.scope in scopes):
                    f.remaining -= 1
                    return f.status
        d = sc.directives
        if d.fault is not None and (d.fault_scope is None or d.fault_scope in scopes):
            return d.fault
        return None

    # ------------------------------------------------------------ provider dialects

    async def _openai(self, request: web.Request, rr: ReceivedRequest, family: str, kind: str, sc: Scenario,
                      body: dict, streaming: bool) -> web.StreamResponse:
        flavour = family
        if streaming and kind in ("chat", "completion", "responses"):
            if kind == "chat":
                events = openai_wire.chat_stream(sc, body, flavour)
            elif kind == "completion":
                events = openai_wire.completion_stream(sc, body, flavour)
            else:
                events = openai_wire.response_stream(sc, body)
            if sc.directives.stream_error:
                events = events[:2] + [openai_wire.stream_error_event(kind, seq=2)]
            return await self._stream(request, rr, family, sc, events)
        if kind == "chat":
            obj = openai_wire.chat_completion(sc, flavour)
        elif kind == "completion":
            obj = openai_wire.completion(sc, flavour)
        elif kind == "embeddings":
            obj = openai_wire.embeddings(sc, body, flavour)
        else:
            obj = openai_wire.response(sc, body)
        return self._answer(family, obj, sc)

    async def _anthropic(self, request: web.Request, rr: ReceivedRequest, kind: str, sc: Scenario, body: dict,
                         streaming: bool) -> web.StreamResponse:
        if kind == "count_tokens":
            return self._answer("anthropic", anthropic_wire.count_tokens(sc), sc)
        if streaming:
            events = anthropic_wire.stream(sc)
            if sc.directives.stream_error:
                events = events[:3] + [anthropic_wire.stream_error_event()]
            return await self._stream(request, rr, "anthropic", sc, events)
        return self._answer("anthropic", anthropic_wire.message(sc), sc)

    async def _gemini(self, request: web.Request, rr: ReceivedRequest, kind: str, sc: Scenario,
                      body: dict) -> web.StreamResponse:
        if kind == "streamGenerateContent":
            events = gemini_wire.stream(sc)
            if sc.directives.stream_error:
                events = events[:1] + [gemini_wire.stream_error_event()]
            if request.query.get("alt") == "sse":
                return await self._stream(request, rr, "gemini", sc, events)
            # without alt=sse Google streams one JSON array
            text = "[" + ",\r\n".join(e.data for e in events) + "]"
            return self._raw("gemini", 200, text.encode(), malformed=sc.directives.malformed,
                             compress=sc.directives.gzip)
        obj = {
            "generateContent": lambda: gemini_wire.generate_content(sc),
            "embedContent": lambda: gemini_wire.embed_content(sc, body),
            "batchEmbedContents": lambda: gemini_wire.batch_embed_contents(sc, body),
            "countTokens": lambda: gemini_wire.count_tokens(sc),
        }[kind]()
        return self._answer("gemini", obj, sc)

    # ------------------------------------------------------------ models, files, auth, errors

    def _models(self, request: web.Request, family: str, kind: str) -> web.Response:
        if family == "anthropic":
            listing = anthropic_wire.model_list()
            if kind == "model_get":
                found = [m for m in listing["data"] if m["id"] == request.match_info["model"]]
                if not found:
                    return self._json(family, 404, anthropic_wire.error_body(404))
                return self._json(family, 200, found[0])
            return self._json(family, 200, listing)
        if family == "gemini":
            return self._json(family, 200, gemini_wire.model_list())
        listing = openai_wire.model_list(family)
        if kind == "model_get":
            wanted = request.match_info["model"]
            for m in listing["data"]:
                if m["id"] == wanted:
                    return self._json(family, 200, m)
            err = openai_wire.error_body(404, family)
            if "message" in err["error"]:
                err["error"]["message"] = f"The model '{wanted}' does not exist"
            return self._json(family, 404, err)
        return self._json(family, 200, listing)

    def _files_route(self, request: web.Request, rr: ReceivedRequest, family: str, kind: str) -> web.Response:
        if kind == "file_upload":
            upload = rr.form.get("file")
            purpose = rr.form.get("purpose")
            if family == "anthropic" and isinstance(upload, UploadedFile):
                obj = anthropic_extras.file_object(anthropic_extras.new_file_id(), upload.filename, upload.size,
                                                   upload.content_type or "application/octet-stream", time.time())
                with self._cond:
                    self._files[obj["id"]] = (obj, upload.data)
                return self._json(family, 200, obj)
            if not isinstance(upload, UploadedFile) or not isinstance(purpose, str):
                err = openai_wire.error_body(400, family)
                err["error"]["message"] = "'file' and 'purpose' are required multipart fields."
                return self._json(family, 400, err)
            obj = openai_wire.file_object(openai_wire.new_file_id(), upload.filename, upload.size, purpose,
                                          int(time.time()))
            with self._cond:
                self._files[obj["id"]] = (obj, upload.data)
            return self._json(family, 200, obj)
        if kind == "file_list":
            with self._cond:
                files = [obj for obj, _ in self._files.values()]
            if family == "anthropic":
                return self._json(family, 200, anthropic_extras.file_list([f for f in files if f.get("type") == "file"]))
            purpose = request.query.get("purpose")
            return self._json(family, 200, openai_wire.file_list([f for f in files if "purpose" in f and (
                not purpose or f["purpose"] == purpose)]))
        file_id = request.match_info["file_id"]
        with self._cond:
            entry = self._files.get(file_id)
            if entry is not None and kind == "file_delete":
                del self._files[file_id]
        if entry is None:
            if family == "anthropic":
                return self._json(family, 404, anthropic_wire.error_body(404))
            err = openai_wire.error_body(404, family)
            err["error"].update(message=f"No such File object: {file_id}", param="id", code=None)
            return self._json(family, 404, err)
        if kind == "file_content":
            return web.Response(body=entry[1], content_type="application/octet-stream",
                                headers=openai_wire.headers(family))
        if kind == "file_delete":
            if family == "anthropic":
                return self._json(family, 200, {"id": file_id, "type": "file_deleted"})
            return self._json(family, 200, {"object": "file", "deleted": True, "id": file_id})
        return self._json(family, 200, entry[0])

    def _anthropic_extras(self, request: web.Request, rr: ReceivedRequest, kind: str) -> web.Response:
        fam = "anthropic"
        if kind == "complete":
            if not isinstance(rr.json, dict) or not rr.json.get("prompt"):
                return self._json(fam, 400, anthropic_wire.error_body(400))
            return self._json(fam, 200, anthropic_extras.completion(rr.json))
        if kind == "batch_create":
            reqs = rr.json.get("requests") if isinstance(rr.json, dict) else None
            if not isinstance(reqs, list) or not reqs:
                return self._json(fam, 400, anthropic_wire.error_body(400))
            batch = anthropic_extras.new_batch(reqs, self.url)
            with self._cond:
                self._batches[batch["id"]] = (batch, reqs)
            return self._json(fam, 200, batch)
        if kind == "batch_list":
            with self._cond:
                batches = [b for b, _ in self._batches.values()]
            return self._json(fam, 200, anthropic_extras.batch_list(batches))
        with self._cond:
            entry = self._batches.get(request.match_info["batch_id"])
        if entry is None:
            return self._json(fam, 404, anthropic_wire.error_body(404))
        if kind == "batch_results":
            return web.Response(body=anthropic_extras.batch_results(entry[1]), content_type="application/binary",
                                headers=anthropic_wire.headers())
        return self._json(fam, 200, entry[0])

    @staticmethod
    def _leak_body(family: str, credential: str) -> dict:
        message = f"Incorrect API key provided: {credential}. You can find your API key in your account."
        if family == "anthropic":
            return {"type": "error", "error": {"type": "authentication_error", "message": message}}
        if family == "gemini":
            return {"error": {"code": 401, "message": message, "status": "UNAUTHENTICATED"}}
        return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}

    def _check_auth(self, request: web.Request, family: str) -> web.Response | None:
        hdr = request.headers
        if family == "openai":
            auth = hdr.get("authorization", "")
            if not auth.lower().startswith("bearer ") or not auth[7:].strip():
                return self._json(family, 401, openai_wire.named_error("missing_key"))
        elif family == "azure":
            if not hdr.get("api-key", "").strip():
                return self._json(family, 401, openai_wire.named_error("missing_key", "azure"))
        elif family == "anthropic":
            # Older SDKs send x-api-key; the current SDK (anthropic-version 2026-10-21) sends the API
            # key as "Authorization: Bearer". The API accepts either.
            auth = hdr.get("authorization", "")
            bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if not (hdr.get("x-api-key", "").strip() or bearer):
                return self._json(family, 401, anthropic_wire.named_error("missing_key"))
            if not hdr.get("anthropic-version", "").strip():
                return self._json(family, 400, anthropic_wire.named_error("missing_version"))
        elif family == "gemini":
            if not (hdr.get("x-goog-api-key", "").strip() or request.query.get("key", "").strip()):
                return self._json(family, 403, gemini_wire.named_error("missing_key"))
        return None

    def _not_found(self, request: web.Request, family: str) -> web.Response:
        if family == "anthropic":
            return self._json(family, 404, anthropic_wire.named_error("not_found_url"))
        if family == "gemini":
            return self._json(family, 404, gemini_wire.error_body(404))
        if family == "azure":
            return self._json(family, 404, openai_wire.named_error("not_found", "azure"))
        err = openai_wire.named_error("not_found_url")
        err["error"]["message"] = f"Invalid URL ({request.method} {request.path})"
        return self._json(family, 404, err)

    @staticmethod
    def _error_body(family: str, status: int) -> dict:
        if family == "anthropic":
            return anthropic_wire.error_body(status)
        if family == "gemini":
            return gemini_wire.error_body(status)
        return openai_wire.error_body(status, family)

    def _fault(self, family: str, status: int) -> web.Response:
        extra = {"retry-after": "1"} if status == 429 else {}
        return self._json(family, status, self._error_body(family, status), extra)

    @staticmethod
    def _headers(family: str) -> dict[str, str]:
        if family == "anthropic":
            return anthropic_wire.headers()
        if family == "gemini":
            return gemini_wire.headers()
        return openai_wire.headers(family)

    def _answer(self, family: str, obj: Any, sc: Scenario) -> web.Response:
        return self._json(family, 200, obj, malformed=sc.directives.malformed, compress=sc.directives.gzip)

    def _json(self, family: str, status: int, obj: Any, extra: dict[str, str] | None = None, *,
              malformed: bool = False, compress: bool = False) -> web.Response:
        headers = self._headers(family)
        if family == "anthropic" and isinstance(obj, dict) and obj.get("type") == "error":
            obj["request_id"] = headers["request-id"]
        if family == "gemini":
            data = gemini_wire.dumps(obj)
        elif family == "anthropic":
            data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        else:
            data = openai_wire.dumps(obj, family)
        return self._raw(family, status, data, extra, malformed=malformed, compress=compress, headers=headers)

    def _raw(self, family: str, status: int, data: bytes, extra: dict[str, str] | None = None, *,
             malformed: bool = False, compress: bool = False,
             headers: dict[str, str] | None = None) -> web.Response:
        headers = dict(headers or self._headers(family))
        headers.update(extra or {})
        if malformed:
            data = data[: max(1, len(data) // 2)]  # a truncated body: not valid JSON
        ctype = "application/json; charset=UTF-8" if family == "gemini" else "application/json"
        headers["Content-Type"] = ctype
        if compress:  # [[gzip]]: a Content-Encoding'd body, as providers send to clients that accept it
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
        return web.Response(status=status, reason=_REASONS.get(status), body=data, headers=headers)

    # ------------------------------------------------------------ streaming

    async def _stream(self, request: web.Request, rr: ReceivedRequest, family: str, sc: Scenario,
                      events: list[Sse]) -> web.StreamResponse:
        d = sc.directives
        line_end = gemini_wire.LINE_END if family == "gemini" else "\n"
        if d.malformed:
            i = min(1, len(events) - 1)
            events[i] = Sse(events[i].data[: max(1, len(events[i].data) // 2)], events[i].event)
        headers = self._headers(family)
        headers["Content-Type"] = "text/event-stream" if family == "gemini" else "text/event-stream; charset=utf-8"
        headers["Cache-Control"] = "no-cache"
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        for sent, ev in enumerate(events):
            if d.reset_after is not None and sent >= d.reset_after:
                self._abort(request)
            if sent and d.chunk_delay:
                await self._sleep(d.chunk_delay)
            try:
                await resp.write(ev.encode(line_end))
                writer = getattr(resp, "_payload_writer", None)
                if writer is not None:
                    await writer.drain()
            except (ConnectionError, RuntimeError):
                rr.disconnected = True
                return resp
        await resp.write_eof()
        return resp

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    @staticmethod
    def _abort(request: web.Request) -> None:
        """Reset the TCP connection (RST, not FIN) and stop handling the request."""
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            transport.abort()
        raise _Abort()
