"""Pass-through hardening: what may go upstream (path, headers, credentials), what comes back
(no echoed credentials, no upstream x-tollway-* headers), and what is metered (by path only)."""

from __future__ import annotations

import http.client
import json

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, openai_client, standard_config

HELLO = [{"role": "user", "content": "Hello"}]


def raw_request(tw: Tollway, method: str, target: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """A request with the target exactly as written (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", tw.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in {"Authorization": f"Bearer {MASTER_KEY}", **(headers or {})}.items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# --- forged usage ---------------------------------------------------------------------------------

def test_a_downloaded_file_that_looks_like_usage_costs_nothing(oai: openai.OpenAI, tollway: Tollway) -> None:
    forged = json.dumps({"model": "gpt-4o", "usage": {"prompt_tokens": 1_000_000_000, "completion_tokens": 5,
                                                      "total_tokens": 1_000_000_005}}).encode()
    f = oai.files.create(file=("usage.json", forged, "application/json"), purpose="batch")
    raw = oai.files.with_raw_response.content(f.id, extra_headers={"x-tollway-project": "victim-forged"})
    assert raw.content == forged  # the file comes back as it is
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["project"] == "victim-forged" and rec["status"] == 200
    assert rec["input_tokens"] is None and rec["output_tokens"] is None and rec["cost_usd"] is None
    assert rec["cost_note"] == "pass-through endpoint that reports no usage"
    status, stats = tollway.get("/v1/stats?project=victim-forged")
    assert status == 200 and stats["totals"]["input_tokens"] in (0, None)


def test_endpoints_that_report_usage_are_metered_through_pass_through(oai: openai.OpenAI, tollway: Tollway,
                                                                      fake: FakeProvider) -> None:
    audio = ("hello.wav", b"RIFF....WAVEfmt ", "audio/wav")
    raw = oai.audio.transcriptions.with_raw_response.create(model="gpt-4o-mini-transcribe", file=audio)
    assert raw.parse().text == "Hello from the fake provider!"
    assert fake.requests[-1].form["model"] == "gpt-4o-mini-transcribe"
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "passthrough.openai" and rec["model_requested"] == "gpt-4o-mini-transcribe"
    assert (rec["input_tokens"], rec["output_tokens"]) == (14, 7) and rec["tokens_estimated"] is False
    # streamed: the usage comes in the final event
    stream = oai.audio.transcriptions.with_raw_response.create(model="gpt-4o-mini-transcribe", file=audio,
                                                              stream=True)
    events = list(stream.parse())
    assert events[-1].type == "transcript.text.done"
    rec = tollway.record(stream.headers["x-tollway-trace-id"])
    assert rec["stream"] is True and (rec["input_tokens"], rec["output_tokens"]) == (14, 7)


# --- paths ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/v1/files/..%2f..%2fx",
    "/v1/files/..%2F..%2Fadmin",
    "/v1/%2e%2e/%2e%2e/x",
    "/v1/files/%2e%2e/%2e%2e/x",
    "/v1/files/a%20b",
    "/v1/files/a%0d%0aX-Injected:%201",
    "/v1/files/a%00b",
    "/v1/files/a%5c..%5cb",
    "/proxy/openai/v1/%2e%2e/%2e%2e/x",
    "/proxy/openai/v1/files/..%2f..%2fx",
])
def test_paths_that_leave_v1_or_break_the_request_line_are_400(tollway: Tollway, fake: FakeProvider,
                                                               target: str) -> None:
    before = len(fake.requests)
    headers = {"X-Tollway-Key": MASTER_KEY, "Authorization": "Bearer sk-customer"} if target.startswith("/proxy/") \
        else None
    status, hdrs, body = raw_request(tollway, "GET", target, headers)
    assert status == 400, body
    err = json.loads(body)["error"]
    assert err["type"] == "invalid_request_error" and "pass-through path" in err["message"]
    assert len(fake.requests) == before  # nothing went upstream
    rec = tollway.record(hdrs["x-tollway-trace-id"])
    assert rec["status"] == 400 and rec["error_type"] == "invalid_request"


def test_anthropic_passthrough_path_errors_are_anthropic_shaped(tollway: Tollway, fake: FakeProvider) -> None:
    status, _, body = raw_request(tollway, "GET", "/v1/messages/batches/..%2f..%2fx",
                                  {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"})
    assert status == 400 and json.loads(body)["type"] == "error"


def test_dot_segments_inside_v1_are_resolved_before_going_upstream(tollway: Tollway, fake: FakeProvider) -> None:
    status, _, _ = raw_request(tollway, "GET", "/v1/files/./x/../../files")
    assert status == 200
    assert fake.requests[-1].path == "/v1/files"


def test_model_ids_with_colons_pass_through(tollway: Tollway, fake: FakeProvider) -> None:
    status, _, _ = raw_request(tollway, "GET", "/v1/files/file-abc:def")
    assert status == 404 and fake.requests[-1].path == "/v1/files/file-abc:def"


# --- headers going up -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def org_tollway(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory):
    cfg = standard_config(fake.url)
    cfg["providers"][0]["headers"] = {"OpenAI-Organization": "org-tollway", "OpenAI-Project": "proj_tollway"}
    tw = Tollway(tmp_path_factory.mktemp("org"), cfg)
    yield tw
    tw.stop()


def test_configured_headers_apply_to_pass_through_and_the_clients_do_not(org_tollway: Tollway,
                                                                        fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=org_tollway.url + "/v1", api_key=MASTER_KEY, organization="org-client",
                           project="proj_client", max_retries=0,
                           default_headers={"x-goog-api-key": "AIza-client", "api-key": "azure-client",
                                            "Cookie": "session=1"})
    client.files.list()
    up = fake.requests[-1].headers
    assert up["authorization"] == "Bearer sk-fake-openai"
    assert up["openai-organization"] == "org-tollway" and up["openai-project"] == "proj_tollway"
    assert "x-goog-api-key" not in up and "api-key" not in up and "cookie" not in up
    # the unified routes send the configured headers too, and never the client's organisation
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    up = fake.requests[-1].headers
    assert up["openai-organization"] == "org-tollway" and up["openai-project"] == "proj_tollway"


def test_key_query_parameter_never_goes_upstream(tollway: Tollway, fake: FakeProvider) -> None:
    status, _, _ = raw_request(tollway, "GET", "/v1/files?limit=2&key=AIza-secret&purpose=batch")
    assert status == 200
    assert fake.requests[-1].query == {"limit": "2", "purpose": "batch"}  # Gemini's `?key=` is dropped


def test_on_proxy_routes_the_callers_own_org_goes_and_tollways_does_not(org_tollway: Tollway,
                                                                       fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=org_tollway.url + "/proxy/openai/v1", api_key="sk-customer",
                           organization="org-customer", max_retries=0,
                           default_headers={"X-Tollway-Key": MASTER_KEY, "x-goog-api-key": "AIza-client"})
    client.files.list()
    up = fake.requests[-1].headers
    assert up["authorization"] == "Bearer sk-customer" and up["openai-organization"] == "org-customer"
    assert "openai-project" not in up and "x-goog-api-key" not in up


# --- what comes back ------------------------------------------------------------------------------

def test_provider_errors_never_echo_tollways_key(oai: openai.OpenAI, tollway: Tollway) -> None:
    # fast path
    with pytest.raises(openai.AuthenticationError) as ei:
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "[[leak_key]]"}])
    body = ei.value.response.text
    assert "sk-fake-openai" not in body and "[redacted]" in body
    # translated (an OpenAI client, an Anthropic model)
    with pytest.raises(openai.AuthenticationError) as ei:
        oai.chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "[[leak_key]]"}])
    assert "sk-ant-fake" not in ei.value.response.text and "[redacted]" in ei.value.response.text
    # pass-through
    status, _, raw = raw_request(tollway, "POST", "/v1/moderations", {"Content-Type": "application/json"},
                                 json.dumps({"input": "[[leak_key]]"}).encode())
    assert status == 401 and b"sk-fake-openai" not in raw and b"[redacted]" in raw
    assert "sk-fake-openai" not in tollway.log()


def test_a_chained_tollways_headers_are_not_relayed(fake: FakeProvider, tollway: Tollway, workdir) -> None:
    """Tollway A in front of Tollway B: the client sees A's trace id and cost only."""
    cfg = standard_config(tollway.url)  # B (the session Tollway) is A's OpenAI provider
    cfg["providers"][0]["api_key"] = MASTER_KEY
    a = Tollway(workdir, cfg)
    try:
        raw = openai_client(a).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
        assert raw.parse().choices[0].message.content == "Hello from the fake provider!"
        traces = raw.headers.get_list("x-tollway-trace-id")
        assert len(traces) == 1 and len(raw.headers.get_list("x-tollway-cost-usd")) == 1
        assert a.record(traces[0])["route"] == "openai.chat"
        status, _ = tollway.get(f"/v1/records/{traces[0]}")
        assert status == 404  # not B's trace id
        files = openai_client(a).files.with_raw_response.list()
        assert len(files.headers.get_list("x-tollway-trace-id")) == 1
        assert a.record(files.headers["x-tollway-trace-id"])["route"] == "passthrough.openai"
    finally:
        a.stop()
