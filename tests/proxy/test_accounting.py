"""What a client can make Tollway write: bounded per record and per log line, and nothing at
all to the ledger without a key (unauthenticated calls are logged and counted, not recorded)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import openai
import pytest

from tests.harness import MASTER_KEY, Tollway
from tollway.usage import MAX_ATTRIBUTION_CHARS, MAX_MODEL_CHARS, MAX_PATH_CHARS

HELLO = [{"role": "user", "content": "Hello"}]


def post(tw: Tollway, path: str, key: str | None, body: bytes = b"{}") -> tuple[int, dict, str]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(tw.url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read()), r.headers["x-tollway-trace-id"]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers["x-tollway-trace-id"]


def wait_for_log(tw: Tollway, needle: str, timeout: float = 5.0) -> str:
    deadline = time.time() + timeout
    while needle not in (log := tw.log()):
        assert time.time() < deadline, f"{needle!r} never reached the log"
        time.sleep(0.05)
    return log


def store_bytes(tw: Tollway) -> int:
    data = tw.workdir / ".tollway"
    return sum(p.stat().st_size for p in data.glob("tollway.db*"))


def test_requests_without_a_key_cannot_fill_the_store_or_the_log(tollway: Tollway) -> None:
    """The attack of the issue: thousands of 401s with ~60 KB paths (just under the header limit)."""
    marker = uuid.uuid4().hex
    long_path = f"/v1/chat/completions-{marker}-" + "a" * 60_000
    _, before_health = tollway.get("/health")
    log_before = tollway.log_path.stat().st_size
    db_before = store_bytes(tollway)
    traces = []
    for _ in range(300):
        status, body, trace = post(tollway, "/proxy/openai" + long_path, None)
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        traces.append(trace)
    log = wait_for_log(tollway, traces[-1])
    lines = [ln for ln in log.splitlines() if marker in ln]
    assert len(lines) == 300  # every one logged ...
    assert all(len(ln) < MAX_PATH_CHARS + 400 and "status=401" in ln for ln in lines)  # ... bounded
    assert tollway.log_path.stat().st_size - log_before < 300 * (MAX_PATH_CHARS + 400)
    _, health = tollway.get("/health")
    assert health["requests"]["unauthenticated"] - before_health["requests"]["unauthenticated"] >= 300
    # ... and none recorded
    for trace in traces[:5] + traces[-5:]:
        assert tollway.get(f"/v1/records/{trace}")[0] == 404
    assert store_bytes(tollway) - db_before < 1_000_000


def test_long_client_values_are_clipped_in_the_record_and_the_log(tollway: Tollway) -> None:
    marker = uuid.uuid4().hex
    model = f"m{marker}" + "m" * 10_000
    client = openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=MASTER_KEY, max_retries=0,
                           default_headers={"x-tollway-source": "s" * 5000, "x-tollway-customer": "c" * 5000})
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model=model, messages=HELLO)
    trace = ei.value.response.headers["x-tollway-trace-id"]
    rec = tollway.record(trace)
    assert len(rec["model_requested"]) == MAX_MODEL_CHARS and rec["model_requested"].startswith(f"m{marker}")
    assert rec["model_requested"].endswith("…")
    for name in ("source", "customer"):
        assert len(rec[name]) <= MAX_ATTRIBUTION_CHARS, name
    line = next(ln for ln in wait_for_log(tollway, trace).splitlines() if trace in ln)
    assert len(line) < MAX_MODEL_CHARS + 2 * MAX_ATTRIBUTION_CHARS + 300

    # a long path (a project slug no project can have: a 400, recorded all the same)
    slug = f"p{marker}" + "s" * 5000
    with pytest.raises(openai.BadRequestError) as ei:
        openai.OpenAI(base_url=f"{tollway.url}/projects/{slug}/v1", api_key=MASTER_KEY,
                      max_retries=0).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    rec = tollway.record(ei.value.response.headers["x-tollway-trace-id"])
    assert len(rec["path"]) == MAX_PATH_CHARS and rec["path"].startswith(f"/projects/p{marker}")
    assert rec["path"].endswith("…")


def test_the_store_is_not_touched_by_a_401_even_on_a_fresh_server(fake, tmp_path: Path) -> None:
    """Counted in /health, written to the access log, absent from records and stats."""
    from tests.harness import standard_config

    tw = Tollway(tmp_path, standard_config(fake.url))
    try:
        for _ in range(20):
            assert post(tw, "/v1/chat/completions", "not-a-key")[0] == 401
        _, stats = tw.get("/v1/stats")
        assert stats["totals"]["requests"] == 0
        assert tw.get("/health")[1]["requests"]["unauthenticated"] == 20
    finally:
        tw.stop()
