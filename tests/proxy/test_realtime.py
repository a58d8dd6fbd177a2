"""Realtime: WebSocket sessions relayed to a fake Realtime server with Tollway's credentials, metered
per `response.done`, through the openai SDK's realtime client (and a bare websockets client for the
browser SDK's subprotocol key)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.fakes.provider import FakeProvider
from tests.fakes.realtime import REPLY, FakeRealtime
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway, standard_config


@pytest.fixture(scope="module")
def rt() -> Iterator[FakeRealtime]:
    with FakeRealtime() as f:
        yield f


@pytest.fixture(scope="module")
def tw(rt: FakeRealtime, fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url, aliases={"voice": "gpt-realtime"})
    cfg["providers"] = [
        {"id": "openai", "kind": "openai", "base_url": rt.url + "/v1", "api_key": "sk-upstream-rt",
         "models": ["gpt-realtime"]},
        {"id": "azure", "kind": "azure_openai", "base_url": rt.url, "api_key": "azure-upstream-rt",
         "deployments": {"gpt-realtime-mini": "rt-deploy"}},
        {"id": "keyless", "kind": "openai", "base_url": rt.url + "/keyless/v1", "models": ["gpt-4o-realtime-preview"]},
        {"id": "anthropic", "kind": "anthropic", "base_url": fake.url, "api_key": "sk-ant-fake", "models": ["claude-*"]},
    ]
    t = Tollway(tmp_path_factory.mktemp("realtime"), cfg)
    yield t
    t.stop()


def ws_base(tw: Tollway) -> str:
    return "ws://" + tw.url.removeprefix("http://")


def converse(conn, prompts: list[str]) -> list[str]:
    """One response per prompt; the text of each, as the SDK user reads it."""
    conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
    texts = []
    for prompt in prompts:
        conn.conversation.item.create(item={"type": "message", "role": "user",
                                            "content": [{"type": "input_text", "text": prompt}]})
        conn.response.create()
        text = ""
        for event in conn:
            if event.type == "response.output_text.delta":
                text += event.delta
            elif event.type == "error":
                raise AssertionError(event.error)
            elif event.type == "response.done":
                assert event.response.usage.output_tokens == 6
                break
        texts.append(text)
    return texts


def records_for(tw: Tollway, model: str, n: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.time() + timeout
    while True:
        recs = tw.records(model=model, limit=50)
        if len(recs) >= n or time.time() > deadline:
            return recs
        time.sleep(0.05)


def test_openai_sdk_session_is_relayed_and_metered_per_response(tw: Tollway, rt: FakeRealtime) -> None:
    client = openai.OpenAI(base_url=tw.url + "/v1", api_key=TEAM_KEY, max_retries=0)
    before = len(tw.records(model="voice", limit=50))
    with client.realtime.connect(model="voice") as conn:
        assert converse(conn, ["Hi there", "And again"]) == [REPLY, REPLY]
    hs = rt.handshakes[-1]
    assert hs.path == "/v1/realtime?model=gpt-realtime"  # the alias resolved, Tollway's key used
    assert hs.headers["authorization"] == "Bearer sk-upstream-rt" and TEAM_KEY not in json.dumps(hs.headers)
    assert [e["type"] for e in hs.received][:3] == ["session.update", "conversation.item.create", "response.create"]
    recs = records_for(tw, "voice", before + 2)
    assert len(recs) == before + 2
    for rec in recs[:2]:
        assert (rec["route"], rec["provider"], rec["model_served"], rec["status"], rec["key_id"], rec["project"]) == (
            "openai.realtime", "openai", "gpt-realtime-2025-08-28", 200, "team-alpha", "alpha")
        assert (rec["input_tokens"], rec["output_tokens"], rec["cached_tokens"]) == (12, 6, 4)
        assert Decimal(rec["cost_usd"]) == Decimal("0.0001296") and rec["ttft_ms"] is not None
    assert recs[0]["trace_id"] != recs[1]["trace_id"]


def test_browser_subprotocol_key_is_tollways_and_never_forwarded(tw: Tollway, rt: FakeRealtime) -> None:
    protocols = ["realtime", f"openai-insecure-api-key.{MASTER_KEY}"]
    with connect(f"{ws_base(tw)}/v1/realtime?model=gpt-realtime", subprotocols=protocols) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "realtime"
        assert json.loads(ws.recv())["type"] == "session.created"
        ws.send(json.dumps({"type": "response.create"}))
        types = []
        while "response.done" not in types:
            types.append(json.loads(ws.recv())["type"])
    hs = rt.handshakes[-1]
    assert hs.subprotocol == "realtime" and MASTER_KEY not in json.dumps(hs.headers)
    assert hs.headers["sec-websocket-protocol"] == "realtime"


@pytest.mark.parametrize("url_tail,key,code,why", [
    ("/v1/realtime?model=gpt-realtime", "wrong-key", 1008, "Tollway key"),
    ("/v1/realtime?model=claude-haiku-4-5", MASTER_KEY, 1008, "no Realtime API"),
    ("/v1/realtime?model=no-such-model", MASTER_KEY, 1008, "not routable"),
    ("/v1/realtime", MASTER_KEY, 1008, "Name the model"),
    ("/v1/realtime?model=gpt-4o-realtime-preview", MASTER_KEY, 1011, "HTTP 401"),  # upstream refuses a keyless call
])
def test_refusals_are_an_error_event_and_a_close_never_a_500(tw: Tollway, url_tail: str, key: str, code: int,
                                                            why: str) -> None:
    with connect(ws_base(tw) + url_tail, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        event = json.loads(ws.recv())
        assert event["type"] == "error" and why in event["error"]["message"], event
        with pytest.raises(ConnectionClosed):
            ws.recv()
        assert ws.close_code == code


def test_azure_client_reaches_the_deployment_with_azures_key(tw: Tollway, rt: FakeRealtime) -> None:
    client = openai.AzureOpenAI(azure_endpoint=tw.url, api_key=MASTER_KEY, api_version="2025-04-01-preview",
                                websocket_base_url=ws_base(tw) + "/openai", max_retries=0)
    with client.realtime.connect(model="gpt-realtime-mini") as conn:
        assert converse(conn, ["Hallo"]) == [REPLY]
    hs = rt.handshakes[-1]
    assert hs.path == "/openai/realtime?api-version=2025-04-01-preview&deployment=rt-deploy"
    assert hs.headers["api-key"] == "azure-upstream-rt" and "authorization" not in hs.headers
    rec = records_for(tw, "gpt-realtime-mini", 1)[0]
    assert (rec["route"], rec["provider"], rec["output_tokens"]) == ("azure.realtime", "azure", 6)


def test_upstream_hangup_mid_response_closes_the_client_and_records_it(tw: Tollway) -> None:
    client = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.conversation.item.create(item={"type": "message", "role": "user",
                                            "content": [{"type": "input_text", "text": "bye [[hangup]]"}]})
        conn.response.create()
        with pytest.raises(ConnectionClosed) as ei:
            for _ in conn:
                pass
        assert ei.value.rcvd is not None and ei.value.rcvd.code == 1011
    rec = records_for(tw, "gpt-realtime", 1)[0]
    assert rec["cancelled"] and rec["error_type"] == "session_closed" and rec["output_tokens"] is None


def test_audio_tokens_are_recorded_without_a_made_up_price(tw: Tollway) -> None:
    client = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    with client.realtime.connect(model="gpt-realtime") as conn:
        converse(conn, ["speak [[audio]]"])
    rec = records_for(tw, "gpt-realtime", 1)[0]
    assert rec["output_tokens"] == 6 and rec["cost_usd"] is None and "audio" in rec["cost_note"]


def test_plain_http_get_is_told_to_upgrade(tw: Tollway) -> None:
    status, body = tw.get("/v1/realtime?model=gpt-realtime")
    assert status == 426 and body["error"]["code"] == "upgrade_required"
