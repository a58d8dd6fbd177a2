"""What the attempt loop tells the health board (`AppState.health`, the router's seam): `started`
before every provider call and `finished` exactly once after it, whatever happened; credential
profiles cooled on 401/429 and skipped while cooling.

Tollway runs in this process (uvicorn in a thread) so the test can set its own recording board
on AppState: the seam itself, not a mock of the code under test. Clients are the official SDKs.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import uvicorn

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, free_port, standard_config
from tollway.app import build_app
from tollway.config import build_settings
from tollway.routing.outcome import Outcome

REPLY = "Hello from the fake provider!"


class RecordingBoard:
    """Wraps the app's own health board (the router's, or the no-op one): writes down what it is
    told and passes it on; its own cool-downs are real (with expiry) whatever the inner board does."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.events: list[tuple] = []
        self.cooled: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def __getattr__(self, name: str):  # what else the router reads of its board
        return getattr(self.inner, name)

    def started(self, dep, credential) -> None:
        with self.lock:
            self.events.append(("started", dep.name, credential))
        self.inner.started(dep, credential)

    def finished(self, dep, credential, outcome: Outcome) -> None:
        with self.lock:
            self.events.append(("finished", dep.name, credential, outcome))
        self.inner.finished(dep, credential, outcome)

    def cooling(self, provider_id: str, credential: str) -> bool:
        return self.cooled.get((provider_id, credential), 0) > time.monotonic()

    def cool(self, provider_id: str, credential: str, seconds: float) -> None:
        with self.lock:
            self.events.append(("cool", provider_id, credential, seconds))
            self.cooled[(provider_id, credential)] = time.monotonic() + seconds
        self.inner.cool(provider_id, credential, seconds)

    def take(self) -> list[tuple]:
        """What was told so far, once every call started is finished (the loop tells `finished`
        right after the answer went out, so the client may have it a moment before)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self.lock:
                kinds = [e[0] for e in self.events]
            if kinds.count("started") == kinds.count("finished"):
                break
            time.sleep(0.02)
        with self.lock:
            out, self.events = self.events, []
            return out


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f


@pytest.fixture(scope="module")
def served(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RecordingBoard]]:
    cfg = standard_config(fake.url)
    port = free_port()
    cfg["server"].update(port=port, data_dir=str(Path(tmp_path_factory.mktemp("health")) / "data"))
    cfg["providers"][0]["profiles"] = [{"name": "bad", "api_key": "sk-bad-credential-1"},
                                       {"name": "good", "api_key": "sk-good-credential-2"}]
    cfg["providers"][0]["profile_order"] = ["bad", "good"]
    cfg["providers"].append({"id": "down", "kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1",
                             "api_key": "sk-down", "models": ["down-model"]})
    cfg["routing"] = {"fallback_order": ["anthropic:claude-haiku-4-5"]}
    fake.refuse_key("sk-bad-credential-1", 401)
    app = build_app(build_settings(cfg, {}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None,
                                           access_log=False))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started and app.state is not None
    board = RecordingBoard(app.state.health)
    app.state.health = board
    try:
        yield f"http://127.0.0.1:{port}", board
    finally:
        server.should_exit = True
        thread.join(15)


def _oai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)


def _pairs(events: list[tuple]) -> list[tuple]:
    """started/finished must alternate per call: return (deployment, credential, outcome) per call."""
    calls, open_ = [], None
    for e in events:
        if e[0] == "started":
            assert open_ is None, f"started twice without finished: {events}"
            open_ = e
        elif e[0] == "finished":
            assert open_ is not None and open_[1:3] == e[1:3], f"finished without its start: {events}"
            calls.append((e[1], e[2], e[3]))
            open_ = None
    assert open_ is None, f"a call was never finished: {events}"
    return calls


def test_refused_credential_cools_and_the_next_serves(served) -> None:
    url, board = served
    board.take()
    raw = _oai(url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers["x-tollway-attempts"] == "2" and raw.headers["x-tollway-route"] == "openai:gpt-4o-mini"
    events = board.take()
    calls = _pairs(events)
    assert [(d, c, o.ok, o.status) for d, c, o in calls] == [
        ("openai:gpt-4o-mini", "bad", False, 401), ("openai:gpt-4o-mini", "good", True, 200)]
    assert ("cool", "openai", "bad", 60.0) in events
    # the cooling credential is skipped: one call
    raw = _oai(url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert raw.headers["x-tollway-attempts"] == "1"
    assert [(d, c) for d, c, _ in _pairs(board.take())] == [("openai:gpt-4o-mini", "good")]


def test_every_call_is_started_and_finished_once(served, fake: FakeProvider) -> None:
    url, board = served
    board.cooled.clear()
    fake.clear()  # the bad credential is no longer refused
    board.take()
    oai = _oai(url)
    # connect refused, then the fallback
    out = oai.chat.completions.create(model="down-model", messages=[{"role": "user", "content": "Hi"}])
    assert out.choices[0].message.content == REPLY
    calls = _pairs(board.take())
    assert [(d, o.ok, o.status, o.error_type) for d, _, o in calls] == [
        ("down:down-model", False, None, "upstream_unreachable"),
        ("anthropic:claude-haiku-4-5", True, 200, None)]
    # a stream reset before its first token, then the fallback
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", stream=True,
                                              messages=[{"role": "user", "content": "Hi [[reset_after:1@gpt-4o-mini]]"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    calls = _pairs(board.take())
    assert [(d, o.ok) for d, _, o in calls] == [("openai:gpt-4o-mini", False), ("anthropic:claude-haiku-4-5", True)]
    assert calls[1][2].ttft_s is not None
    # everything failed: one call each, all finished
    with pytest.raises(openai.APIStatusError):
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi [[fault:503]]"}])
    calls = _pairs(board.take())
    assert [(d, o.status) for d, _, o in calls] == [("openai:gpt-4o-mini", 503), ("anthropic:claude-haiku-4-5", 503)]


def test_profile_keys_never_reach_clients_records_or_reprs(served, fake: FakeProvider) -> None:
    url, board = served
    board.cooled.clear()
    fake.clear()
    # every provider echoes the credential it was sent in its 401
    with pytest.raises(openai.APIStatusError) as ei:
        _oai(url).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi [[leak_key]]"}])
    text = ei.value.response.text
    assert ei.value.response.headers["x-tollway-attempts"] == "3"  # bad, good, then the fallback
    assert "[redacted]" in text
    for secret in ("sk-bad-credential-1", "sk-good-credential-2", "sk-ant-fake", "sk-fake-openai"):
        assert secret not in text
    trace = ei.value.response.headers["x-tollway-trace-id"]
    req = urllib.request.Request(f"{url}/v1/records/{trace}", headers={"authorization": f"Bearer {MASTER_KEY}"})
    deadline = time.monotonic() + 5
    while True:
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                rec = r.read().decode()
            break
        except urllib.error.HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert "[redacted]" in rec and "sk-bad-credential-1" not in rec and "sk-good-credential-2" not in rec
    settings = build_settings({"providers": [{"id": "o", "kind": "openai", "profiles": [
        {"name": "a", "api_key": "sk-profile-secret-1"}]}]}, {})
    assert "sk-profile-secret-1" not in repr(settings) and "sk-profile-secret-1" not in str(settings.providers[0])
    assert "sk-profile-secret-1" not in settings.model_dump_json()
