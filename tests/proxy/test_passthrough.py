"""Pass-through: other /v1 paths to the OpenAI provider, and /proxy/<kind>/ with the caller's own key."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway

HELLO = [{"role": "user", "content": "Hello"}]


def test_file_upload_arrives_intact(oai: openai.OpenAI, tollway: Tollway, fake: FakeProvider) -> None:
    content = b'{"custom_id": "1", "method": "POST"}\n' * 500 + bytes(range(256))
    raw = oai.files.with_raw_response.create(file=("batch.jsonl", content, "application/jsonl"), purpose="batch")
    f = raw.parse()
    assert f.bytes == len(content) and f.filename == "batch.jsonl" and f.purpose == "batch"
    up = fake.requests[-1]
    assert up.path == "/v1/files" and up.headers["authorization"] == "Bearer sk-fake-openai"
    assert up.form["file"].data == content and up.form["purpose"] == "batch"
    assert up.headers["content-type"].startswith("multipart/form-data; boundary=")
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "passthrough.openai" and rec["provider"] == "openai"
    assert rec["method"] == "POST" and rec["path"] == "/v1/files" and rec["status"] == 200

    listed = oai.files.list()
    assert any(x.id == f.id for x in listed.data)
    assert fake.requests[-1].method == "GET"


def test_query_string_and_status_pass_through(oai: openai.OpenAI, fake: FakeProvider) -> None:
    oai.files.list(extra_query={"purpose": "batch", "limit": 3})
    assert fake.requests[-1].query == {"purpose": "batch", "limit": "3"}
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve("file-does-not-exist")


def byok_openai(tollway: Tollway, key: str = "sk-customer-own-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=tollway.url + "/proxy/openai/v1", api_key=key, max_retries=0,
                         default_headers={"X-Tollway-Key": MASTER_KEY, "X-Tollway-Customer": "cust_123"})


def test_proxy_openai_forwards_the_callers_key_and_meters(tollway: Tollway, fake: FakeProvider) -> None:
    client = byok_openai(tollway)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert raw.parse().choices[0].message.content == "Hello from the fake provider!"
    up = fake.requests[-1]
    assert up.headers["authorization"] == "Bearer sk-customer-own-key"
    assert "x-tollway-key" not in up.headers and "x-tollway-customer" not in up.headers
    rec = tollway.record(raw.headers["x-tollway-trace-id"])
    assert rec["route"] == "proxy.openai.chat" and rec["customer"] == "cust_123" and rec["key_id"] == "master"
    assert (rec["input_tokens"], rec["output_tokens"]) == (11, 7) and rec["cost_usd"] is not None

    # streams are metered the same way, and the client still sees only what it asked for
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    assert all(c.usage is None for c in chunks)
    streamed = tollway.records(customer="cust_123", limit=1)[0]
    assert streamed["stream"] is True and streamed["output_tokens"] == 7
    assert "sk-customer-own-key" not in tollway.log()
    assert all("sk-customer-own-key" not in str(r) for r in tollway.records(limit=200))


def test_proxy_routes_any_model_name_untouched(tollway: Tollway, fake: FakeProvider) -> None:
    byok_openai(tollway).chat.completions.create(model="ft:gpt-4o-mini:acme::abc123", messages=HELLO)
    assert fake.requests[-1].json["model"] == "ft:gpt-4o-mini:acme::abc123"


def test_proxy_openai_other_paths(tollway: Tollway, fake: FakeProvider) -> None:
    byok_openai(tollway).files.list()
    up = fake.requests[-1]
    assert up.path == "/v1/files" and up.headers["authorization"] == "Bearer sk-customer-own-key"


def test_proxy_anthropic_forwards_x_api_key(tollway: Tollway, fake: FakeProvider) -> None:
    client = anthropic.Anthropic(base_url=tollway.url + "/proxy/anthropic", api_key="sk-ant-customer",
                                 max_retries=0, default_headers={"X-Tollway-Key": MASTER_KEY})
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=HELLO) as s:
        final = s.get_final_message()
        trace = s.response.headers["x-tollway-trace-id"]
    assert final.content[0].text == "Hello from the fake provider!"
    up = fake.requests[-1].headers
    # the SDK's own credential header (x-api-key or Bearer) reaches Anthropic untouched
    assert up.get("x-api-key") == "sk-ant-customer" or up.get("authorization") == "Bearer sk-ant-customer"
    assert "x-tollway-key" not in up
    rec = tollway.record(trace)
    assert rec["route"] == "proxy.anthropic.messages" and rec["output_tokens"] == final.usage.output_tokens


def test_proxy_without_tollway_key_is_401(tollway: Tollway) -> None:
    client = openai.OpenAI(base_url=tollway.url + "/proxy/openai/v1", api_key="sk-customer", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as ei:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert "X-Tollway-Key" in ei.value.body["message"]
