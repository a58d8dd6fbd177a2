"""Logs: one line per request with what an operator needs, and never a body or a key."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway, standard_config

PROMPT_MARKER = "purple-elephant-prompt-7731"
BYOK_KEY = "sk-byok-secret-caller-key-8842"
WRONG_KEY = "tw-wrong-guess-key-5519"
PROVIDER_KEYS = ("sk-fake-openai", "sk-ant-fake")
REPLY = "Hello from the fake provider!"


def wait_for(tw: Tollway, predicate: Callable[[str], bool], timeout: float = 5.0) -> str:
    """Access lines are buffered and flushed every ~0.2 s: poll the log until it shows what we wait for."""
    deadline = time.time() + timeout
    while True:
        log = tw.log()
        if predicate(log):
            return log
        if time.time() > deadline:
            raise AssertionError(f"log never matched; it is:\n{log}")
        time.sleep(0.05)


def lines_with(log: str, needle: str) -> list[str]:
    return [ln for ln in log.splitlines() if needle in ln]


def assert_no_secrets(log: str) -> None:
    for secret in (MASTER_KEY, TEAM_KEY, BYOK_KEY, WRONG_KEY, *PROVIDER_KEYS):
        assert secret not in log, f"secret {secret!r} is in the log"
    assert PROMPT_MARKER not in log, "a request body reached the log"
    assert REPLY not in log, "a response body reached the log"


def make_calls(tw: Tollway) -> dict[str, str]:
    """A few different calls; returns name -> trace id."""
    prompt = [{"role": "user", "content": f"tell nobody: {PROMPT_MARKER}"}]
    traces: dict[str, str] = {}
    oai = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=prompt,
                                                        extra_headers={"x-tollway-source": "log-test"})
    traces["chat"] = raw.headers["x-tollway-trace-id"]
    with oai.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=prompt,
                                                              stream=True) as s:
        traces["stream"] = s.headers["x-tollway-trace-id"]
        assert b"[DONE]" in s.read()  # to the end of the body, not just to [DONE]
    team = openai.OpenAI(base_url=tw.url + "/v1", api_key=TEAM_KEY, max_retries=0, timeout=20)
    traces["team"] = team.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=PROMPT_MARKER).headers["x-tollway-trace-id"]
    byok = openai.OpenAI(base_url=tw.url + "/proxy/openai/v1", api_key=BYOK_KEY, max_retries=0, timeout=20,
                         default_headers={"X-Tollway-Key": MASTER_KEY})
    traces["byok"] = byok.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=prompt).headers["x-tollway-trace-id"]
    claude = anthropic.Anthropic(base_url=tw.url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    traces["messages"] = claude.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50, messages=prompt).headers["x-tollway-trace-id"]
    wrong = openai.OpenAI(base_url=tw.url + "/v1", api_key=WRONG_KEY, max_retries=0, timeout=20)
    with pytest.raises(openai.AuthenticationError) as ei:
        wrong.chat.completions.create(model="gpt-4o-mini", messages=prompt)
    traces["denied"] = ei.value.response.headers["x-tollway-trace-id"]
    with pytest.raises(openai.NotFoundError) as nf:
        oai.chat.completions.create(model="no-such-model", messages=prompt)
    traces["unknown"] = nf.value.response.headers["x-tollway-trace-id"]
    return traces


# -- text format (the shared server: default format and level) ----------------------------------


@pytest.fixture(scope="module")
def text_log(tollway: Tollway) -> tuple[str, dict[str, str]]:
    traces = make_calls(tollway)
    log = wait_for(tollway, lambda log: all(t in log for t in traces.values()))
    return log, traces


def test_one_text_line_per_request_with_the_essentials(text_log: tuple[str, dict[str, str]]) -> None:
    log, traces = text_log
    for name, trace in traces.items():
        found = lines_with(log, trace)
        assert len(found) == 1, f"{name}: expected one line for {trace}, got {found}"
    line = lines_with(log, traces["chat"])[0]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\s+INFO\b", line), line  # time first
    assert " openai.chat POST /v1/chat/completions " in line  # route, method, path
    assert "model=gpt-4o-mini" in line and "provider=openai" in line and "status=200" in line
    assert re.search(r"latency_ms=\d+(\.\d+)?", line) and "tokens=11/7" in line
    assert "source=log-test" in line

    stream = lines_with(log, traces["stream"])[0]
    assert "status=200" in stream and "tokens=11/7" in stream
    team = lines_with(log, traces["team"])[0]
    assert "/v1/embeddings" in team and "model=text-embedding-3-small" in team and "project=alpha" in team
    byok = lines_with(log, traces["byok"])[0]
    assert "/proxy/openai/v1/chat/completions" in byok and "status=200" in byok
    messages = lines_with(log, traces["messages"])[0]
    assert "/v1/messages" in messages and "provider=anthropic" in messages
    denied = lines_with(log, traces["denied"])[0]
    assert "status=401" in denied and "error=authentication" in denied
    unknown = lines_with(log, traces["unknown"])[0]
    assert "status=404" in unknown and "model=no-such-model" in unknown


def test_text_log_never_holds_bodies_or_keys(text_log: tuple[str, dict[str, str]]) -> None:
    log, _ = text_log
    assert_no_secrets(log)


# -- JSON format --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def json_server(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    tw = Tollway(tmp_path_factory.mktemp("jsonlog"), standard_config(fake.url),
                 extra_args=["--log-format", "json"])
    yield tw
    tw.stop()


def test_json_log_is_one_object_per_line(json_server: Tollway) -> None:
    traces = make_calls(json_server)
    log = wait_for(json_server, lambda log: all(t in log for t in traces.values()))
    objects = []
    for line in log.splitlines():
        if line.strip():
            obj = json.loads(line)  # every line, start-up lines included, is JSON
            assert isinstance(obj, dict) and "time" in obj and "level" in obj
            objects.append(obj)
    access = {o["trace_id"]: o for o in objects if "trace_id" in o}
    for name, trace in traces.items():
        assert sum(1 for o in objects if o.get("trace_id") == trace) == 1, name
    chat = access[traces["chat"]]
    assert chat["status"] == 200 and chat["model"] == "gpt-4o-mini" and chat["provider"] == "openai"
    assert chat["path"] == "/v1/chat/completions" and chat["route"] == "openai.chat"
    assert chat["input_tokens"] == 11 and chat["output_tokens"] == 7 and chat["latency_ms"] > 0
    assert chat["source"] == "log-test" and chat["level"] == "info"
    assert access[traces["stream"]]["stream"] is True
    assert access[traces["denied"]]["status"] == 401
    assert access[traces["byok"]]["route"] == "proxy.openai.chat"
    assert_no_secrets(log)


# -- level --------------------------------------------------------------------------------------


def test_log_level_warning_suppresses_request_lines(fake: FakeProvider, tmp_path: Path) -> None:
    cfg = standard_config(fake.url)
    cfg["server"] = {k: v for k, v in cfg["server"].items() if k != "master_key"}
    del cfg["keys"]  # an open proxy: Tollway warns about that at start-up
    tw = Tollway(tmp_path, cfg, extra_args=["--log-level", "warning"])
    try:
        oai = openai.OpenAI(base_url=tw.url + "/v1", api_key="anything", max_retries=0, timeout=20)
        raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": PROMPT_MARKER}])
        trace = raw.headers["x-tollway-trace-id"]
        assert tw.record(trace)["status"] == 200  # the call happened and was recorded
        time.sleep(1.0)  # five flush intervals of the access log
        log = tw.log()
        assert "no master key" in log  # warnings still come through
        assert trace not in log and "/v1/chat/completions" not in log
        assert not lines_with(log, "INFO")
    finally:
        tw.stop()
    assert "INFO" not in tw.log_path.read_text()  # not at shutdown either


# -- forging --------------------------------------------------------------------------------------

FORGED = "2026-01-01T00:00:00.000Z INFO    forged-line"
CONTROLS = "".join(chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029))


def forging_calls(tw: Tollway) -> dict[str, str]:
    """Encoded newlines (and every other control character) in the path, the model and the
    project slug, each trying to start a fake access-log line. The paths are refused before
    any provider call (no X-Tollway-Key on /proxy/), and logged all the same."""
    traces: dict[str, str] = {}
    quoted = "%0A" + FORGED.replace(" ", "%20")
    controls = "".join(f"%{c:02X}" for c in range(0x20)) + "%7F%C2%85%E2%80%A8"
    for name, path in (("path", f"/proxy/openai/v1/chat/completions{quoted}"),
                       ("slug", f"/projects/acme{quoted}/v1/chat/completions"),
                       ("controls", f"/proxy/openai/v1/x{controls}")):
        req = urllib.request.Request(tw.url + path, method="POST", data=b'{"model":"gpt-4o-mini","messages":[]}',
                                     headers={"Authorization": f"Bearer {MASTER_KEY}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                traces[name] = r.headers["x-tollway-trace-id"]
        except urllib.error.HTTPError as e:
            traces[name] = e.headers["x-tollway-trace-id"]
    oai = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
    for name, model in (("model", "gpt\r\n" + FORGED), ("model_controls", "m" + CONTROLS)):
        with pytest.raises(openai.NotFoundError) as nf:
            oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                        extra_headers={"x-tollway-source": "src\t" + FORGED})
        traces[name] = nf.value.response.headers["x-tollway-trace-id"]
    return traces


def test_no_client_value_forges_a_text_log_line(tollway: Tollway) -> None:
    traces = forging_calls(tollway)
    log = wait_for(tollway, lambda log: all(t in log for t in traces.values()))
    for line in log.splitlines():
        assert not line.startswith(FORGED[:24]), f"forged line: {line!r}"
        assert "forged-line" not in line or any(t in line for t in traces.values()), line
        assert not any(c in line for c in CONTROLS if c not in "\t"), repr(line)
    for name, trace in traces.items():
        [line] = lines_with(log, trace)
        if name in ("path", "slug", "model"):
            assert "\\x0a" in line and "\\x20" in line  # escaped, visibly
    [controls] = lines_with(log, traces["controls"])
    assert "\\x00" in controls and "\\x7f" in controls and "\\x85" in controls and "\\u2028" in controls


def test_no_client_value_forges_a_json_log_line(json_server: Tollway) -> None:
    traces = forging_calls(json_server)
    log = wait_for(json_server, lambda log: all(t in log for t in traces.values()))
    by_trace = {}
    for line in log.splitlines():
        if line.strip():
            obj = json.loads(line)  # every line is one whole JSON object
            if obj.get("trace_id") in traces.values():
                by_trace[obj["trace_id"]] = obj
    assert set(by_trace) == set(traces.values())
    assert by_trace[traces["path"]]["path"].endswith("\n" + FORGED)  # exact value, safely encoded
    assert by_trace[traces["model"]]["model"] == "gpt\r\n" + FORGED
    assert by_trace[traces["model_controls"]]["model"] == "m" + CONTROLS
