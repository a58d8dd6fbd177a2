"""What a key is bound to holds on every route: its project and customer (a header or path naming
another one is a 403, never spend against the other's budget), and its model allow-list on
pass-through (/v1/files, /v1/batches, /proxy/<kind>/...), Gemini and Azure path models and
Realtime: a call that could run a model it may not use never reaches a provider."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal

import anthropic
import openai
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.fakes.provider import FakeProvider
from tests.fakes.realtime import FakeRealtime
from tests.harness import Tollway, anthropic_client, gemini_client, openai_client, standard_config
from tests.policy.support import EASY_PRICE, HELLO, budget_of, eventually, ledger_sum

BOUND = "tw-bound-to-project-a-key-0001"
CUSTOMER = "tw-bound-to-customer-acme-0001"
LISTED = "tw-allow-listed-4o-mini-key-0001"
VOICE = "tw-realtime-budget-key-0001"
CHATTY = "tw-realtime-rpm-key-0001"
BUDGETED = "tw-budgeted-pass-through-0001"


@pytest.fixture(scope="module")
def rt() -> Iterator[FakeRealtime]:
    with FakeRealtime() as f:
        yield f


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, rt: FakeRealtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url)
    cfg["providers"] += [
        {"id": "gemini", "kind": "gemini", "base_url": fake.url, "api_key": "fake-gemini-key", "models": ["gemini-*"]},
        {"id": "rt", "kind": "openai", "base_url": rt.url + "/v1", "api_key": "sk-upstream-rt",
         "models": ["gpt-realtime", "gpt-realtime-mini"]},
    ]
    # a Realtime response (12 input tokens, 4 of them cached, 6 output) costs 0.018 USD
    cfg["prices"] = [EASY_PRICE, {"model": "gpt-realtime*", "input_per_mtok": "1000", "output_per_mtok": "1000",
                                  "cached_input_per_mtok": "1000"}]
    cfg["projects"] = [{"id": "a", "budget": "100/month"}, {"id": "b", "budget": "100/month"}]
    cfg["customers"] = [{"id": "acme", "budget": "100/month"}, {"id": "globex", "budget": "100/month"}]
    cfg["keys"] += [
        {"id": "bound", "key": BOUND, "project": "a"},
        {"id": "cust", "key": CUSTOMER, "customer": "acme"},
        {"id": "listed", "key": LISTED, "models": ["gpt-4o-mini", "claude-3-5-haiku*", "gemini-2.0-flash",
                                                   "gpt-realtime-mini"]},
        {"id": "voice", "key": VOICE, "budget": "0.01/total"},
        {"id": "chatty", "key": CHATTY, "rpm": 1},
        {"id": "budgeted", "key": BUDGETED, "budget": "5/month"},
    ]
    t = Tollway(tmp_path_factory.mktemp("bindings"), cfg)
    yield t
    t.stop()


def spent(tw: Tollway, scope: str, target: str) -> str:
    return budget_of(tw, scope, target)["spent_usd"]


# -- a key bound to a project or customer acts for it only ------------------------------------

def test_a_bound_key_cannot_spend_against_another_projects_budget(tw: Tollway, fake: FakeProvider) -> None:
    before_b, n = spent(tw, "project", "b"), len(fake.requests)
    with pytest.raises(openai.PermissionDeniedError) as e:
        openai_client(tw, BOUND).chat.completions.create(model="gpt-4o-mini", messages=HELLO,
                                                         extra_headers={"x-tollway-project": "b"})
    assert e.value.body["code"] == "project_not_allowed" and "'a'" in e.value.message and "'b'" in e.value.message
    with pytest.raises(openai.PermissionDeniedError):  # the short header, too
        openai_client(tw, BOUND).chat.completions.create(model="gpt-4o-mini", messages=HELLO,
                                                         extra_headers={"x-project": "b"})
    # ... and the /projects/{slug}/ path, in each client's own error format
    path_client = openai.OpenAI(base_url=tw.url + "/projects/b/v1", api_key=BOUND, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        path_client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    claude = anthropic.Anthropic(base_url=tw.url + "/projects/b", api_key=BOUND, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as ae:
        claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=10, messages=HELLO)
    assert ae.value.body["type"] == "error" and ae.value.body["error"]["type"] == "permission_error"
    status, body = raw_post(tw, "/proxy/openai/v1/models", b"", {"X-Tollway-Key": BOUND, "x-tollway-project": "b"},
                            method="GET")
    assert status == 403 and body["error"]["code"] == "project_not_allowed"
    assert len(fake.requests) == n and spent(tw, "project", "b") == before_b

    # its own project, named or not, is fine and is what is charged
    before_a = spent(tw, "project", "a")
    raw = openai_client(tw, BOUND).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers={"x-tollway-project": "a"})
    assert tw.record(raw.headers["x-tollway-trace-id"])["project"] == "a"
    assert spent(tw, "project", "a") > before_a and spent(tw, "project", "b") == before_b
    # a key without a binding (and the master key) may name any project
    raw = openai_client(tw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers={"x-tollway-project": "b"})
    assert tw.record(raw.headers["x-tollway-trace-id"])["project"] == "b"


def test_a_customer_key_cannot_bill_another_customer(tw: Tollway, fake: FakeProvider) -> None:
    before, n = spent(tw, "customer", "globex"), len(fake.requests)
    with pytest.raises(openai.PermissionDeniedError) as e:
        openai_client(tw, CUSTOMER).chat.completions.create(model="gpt-4o-mini", messages=HELLO,
                                                            extra_headers={"x-tollway-customer": "globex"})
    assert e.value.body["code"] == "customer_not_allowed"
    assert len(fake.requests) == n and spent(tw, "customer", "globex") == before
    raw = openai_client(tw, CUSTOMER).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers={"x-tollway-customer": "acme"})
    assert tw.record(raw.headers["x-tollway-trace-id"])["customer"] == "acme"


# -- the model allow-list on every route that can run a model ----------------------------------

def raw_post(tw: Tollway, path: str, body: bytes, headers: dict[str, str], method: str = "POST") -> tuple[int, dict]:
    req = urllib.request.Request(tw.url + path, data=body if method == "POST" else None,
                                 method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_pass_through_calls_obey_the_allow_list(tw: Tollway, fake: FakeProvider) -> None:
    oai = openai_client(tw, LISTED)
    n = len(fake.requests)
    # an OpenAI batch names no model Tollway can read (it is in the uploaded file): refused
    with pytest.raises(openai.PermissionDeniedError) as e:
        oai.batches.create(input_file_id="file-abc", endpoint="/v1/chat/completions", completion_window="24h")
    assert e.value.body["code"] == "model_not_allowed" and "gpt-4o-mini" in e.value.message
    # a model outside the list, in JSON or in a multipart form
    with pytest.raises(openai.PermissionDeniedError):
        oai.images.generate(model="dall-e-3", prompt="a cat")
    with pytest.raises(openai.PermissionDeniedError):
        oai.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF0000", "audio/wav"))
    # a file part whose filename is "model" does not stand in for the model field
    boundary = "XyZ"
    form = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="model"\r\n\r\n'
            f'gpt-4o-mini\r\n--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            f'--{boundary}--\r\n').encode()
    status, body = raw_post(tw, "/v1/audio/transcriptions", form, {
        "authorization": f"Bearer {LISTED}", "content-type": f"multipart/form-data; boundary={boundary}"})
    assert status == 403 and body["error"]["code"] == "model_not_allowed"
    # two model fields: which one the provider reads is its business, so neither is trusted
    two = (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o-mini\r\n'
           f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--{boundary}--\r\n').encode()
    status, body = raw_post(tw, "/v1/audio/transcriptions", two, {
        "authorization": f"Bearer {LISTED}", "content-type": f"multipart/form-data; boundary={boundary}"})
    assert status == 403
    # a JSON body sent as text/plain names no model Tollway reads
    status, body = raw_post(tw, "/v1/images/generations", b'{"model": "dall-e-3", "prompt": "x"}', {
        "authorization": f"Bearer {LISTED}", "content-type": "text/plain"})
    assert status == 403
    # /proxy/<kind>/ (the caller's own provider key) obeys the same list
    byok = openai.OpenAI(base_url=tw.url + "/proxy/openai/v1", api_key="sk-own", max_retries=0,
                         default_headers={"X-Tollway-Key": LISTED})
    with pytest.raises(openai.PermissionDeniedError):
        byok.batches.create(input_file_id="file-abc", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.PermissionDeniedError):
        byok.chat.completions.create(model="gpt-4o", messages=HELLO)
    # an Anthropic message batch: every request's model is checked
    claude = anthropic_client(tw, LISTED)
    with pytest.raises(anthropic.PermissionDeniedError) as ae:
        claude.messages.batches.create(requests=[
            {"custom_id": "1", "params": {"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": HELLO}},
            {"custom_id": "2", "params": {"model": "claude-opus-4-1", "max_tokens": 5, "messages": HELLO}}])
    assert ae.value.body["error"]["type"] == "permission_error" and "claude-opus-4-1" in ae.value.message
    assert len(fake.requests) == n, [r.path for r in fake.requests[n:]]

    # what is allowed still works: reading and storing files, a listed model, an allowed batch
    f = oai.files.create(file=("b.jsonl", b"{}\n", "application/jsonl"), purpose="batch")
    assert any(x.id == f.id for x in oai.files.list().data)
    oai.files.delete(f.id)
    batch = claude.messages.batches.create(requests=[
        {"custom_id": "1", "params": {"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": HELLO}}])
    assert batch.id
    assert byok.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices


def test_path_models_obey_the_allow_list(tw: Tollway, fake: FakeProvider) -> None:
    n = len(fake.requests)
    gem = gemini_client(tw, LISTED)
    from google.genai import errors as gerrors

    with pytest.raises(gerrors.ClientError) as ge:
        gem.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert ge.value.code == 403 and ge.value.status == "PERMISSION_DENIED"
    assert gem.models.generate_content(model="gemini-2.0-flash", contents="hi").text
    azure = openai.AzureOpenAI(azure_endpoint=tw.url, api_key=LISTED, api_version="2024-10-21", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        azure.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert len([r for r in fake.requests[n:] if "gemini-2.5-pro" in r.path or r.path.endswith("/chat/completions")]) == 0


def test_a_stored_prompt_that_names_the_model_is_refused_to_an_allow_listed_key(tw: Tollway,
                                                                               fake: FakeProvider) -> None:
    n = len(fake.requests)
    with pytest.raises(openai.PermissionDeniedError) as e:  # the prompt's model could be any
        openai_client(tw, LISTED).responses.create(prompt={"id": "pmpt_abc123"}, input="Hello")
    assert e.value.body["code"] == "model_not_allowed" and e.value.body["param"] == "model"
    assert len(fake.requests) == n


def test_realtime_obeys_the_allow_list(tw: Tollway) -> None:
    base = "ws://" + tw.url.removeprefix("http://")
    with connect(f"{base}/v1/realtime?model=gpt-realtime", additional_headers={"Authorization": f"Bearer {LISTED}"}) as ws:
        event = json.loads(ws.recv(timeout=10))
        assert event["type"] == "error" and "gpt-realtime-mini" in event["error"]["message"]
        assert event["error"]["code"] == "permission"
    with connect(f"{base}/v1/realtime?model=gpt-realtime-mini",
                 additional_headers={"Authorization": f"Bearer {LISTED}"}) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"


# -- Realtime: each response is admitted and settled like a call -------------------------------

def respond(ws, prompt: str = "hi") -> dict:
    """Ask for one response; the first `error` or `response.done` event that follows."""
    ws.send(json.dumps({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}}))
    ws.send(json.dumps({"type": "response.create"}))
    while True:
        event = json.loads(ws.recv(timeout=10))
        if event["type"] in ("error", "response.done"):
            return event


def realtime(tw: Tollway, key: str, model: str = "gpt-realtime"):
    base = "ws://" + tw.url.removeprefix("http://")
    return connect(f"{base}/v1/realtime?model={model}", additional_headers={"Authorization": f"Bearer {key}"})


def test_realtime_responses_are_held_to_budgets_and_rates(tw: Tollway, rt: FakeRealtime) -> None:
    with realtime(tw, VOICE) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
        assert respond(ws)["type"] == "response.done"  # room left: it runs, and spends 0.018 of 0.01
        refused = respond(ws)
        assert refused["type"] == "error" and refused["error"]["code"] == "key_budget_exceeded"
        assert "0.010000000" in refused["error"]["message"]
        hs = rt.handshakes[-1]
        eventually(lambda: any(ev.get("type") == "response.cancel" for ev in hs.received))
    # the counter holds what the provider was paid, the refused response included: the ledger's sum

    eventually(lambda: len(tw.records(key_id="voice")) == 2)
    # the cancelled response is charged when the provider's response.done for it arrives
    eventually(lambda: ledger_sum(tw, key_id="voice") == Decimal("0.036"))
    eventually(lambda: Decimal(budget_of(tw, "key", "voice")["spent_usd"]) == ledger_sum(tw, key_id="voice"))

    with realtime(tw, CHATTY) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
        assert respond(ws)["type"] == "response.done"
        refused = respond(ws)
        assert refused["type"] == "error" and refused["error"]["code"] == "rate_limit_exceeded"


def test_a_revoked_key_ends_its_realtime_session(tw: Tollway) -> None:
    from tests.policy.support import admin

    status, k = admin(tw, "POST", "/admin/keys", {"name": "voice-temp"})
    assert status == 201, k
    with realtime(tw, k["key"]) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
        assert respond(ws)["type"] == "response.done"
        assert admin(tw, "POST", f"/admin/keys/{k['id']}/revoke")[0] == 200
        time.sleep(1.2)  # every instance drops a revoked key within a second
        ended = respond(ws)
        assert ended["type"] == "error" and "revoked" in ended["error"]["message"]
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


# -- refusals in each route's own format, with the headers clients read ------------------------

def test_429s_in_gemini_and_azure_shapes_with_their_headers(tw: Tollway, fake: FakeProvider) -> None:
    from tests.policy.support import admin

    status, k = admin(tw, "POST", "/admin/keys", {"name": "g429", "budgets": ["0.00002/day"]})
    assert status == 201, k
    n = len(fake.requests)
    # a budget that cannot hold this call's worst case: Gemini's RESOURCE_EXHAUSTED, never the provider
    req = urllib.request.Request(tw.url + "/v1beta/models/gemini-2.0-flash:generateContent",
                                 data=json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode(),
                                 headers={"x-goog-api-key": k["key"], "content-type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("not refused")
    except urllib.error.HTTPError as e:
        code, body, h = e.code, json.loads(e.read()), e.headers
    assert code == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED" and body["error"]["code"] == 429
    assert "key 'k" in body["error"]["message"] or "Budget exhausted" in body["error"]["message"]
    assert h["x-tollway-budget-limit"] == "0.000020000" and h["x-tollway-budget-spent"] == "0.000000000"
    assert h["x-tollway-budget-reset"].endswith("T00:00:00Z") and int(h["retry-after"]) >= 1
    # Azure's deployment route: OpenAI's shape, the same headers
    azure = openai.AzureOpenAI(azure_endpoint=tw.url, api_key=k["key"], api_version="2024-10-21", max_retries=0)
    with pytest.raises(openai.RateLimitError) as ae:
        azure.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert ae.value.body["type"] == "budget_exceeded" and ae.value.body["code"] == "key_budget_exceeded"
    assert ae.value.response.headers["x-tollway-budget-limit"] == "0.000020000"
    assert len(fake.requests) == n


def test_pass_through_spend_tollway_cannot_price_is_refused_under_a_budget(tw: Tollway, fake: FakeProvider) -> None:
    oai = openai_client(tw, BUDGETED)
    n = len(fake.requests)
    # a batch is priced only when its results come back: under a budget it could spend without limit
    with pytest.raises(openai.BadRequestError) as e:
        oai.batches.create(input_file_id="file-abc", endpoint="/v1/chat/completions", completion_window="24h")
    assert e.value.body["code"] == "model_unpriced" and "budget" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:  # a model with no price
        oai.images.generate(model="dall-e-3", prompt="a cat")
    assert "[[prices]]" in e.value.message
    claude = anthropic_client(tw, BUDGETED)
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.batches.create(requests=[
            {"custom_id": "1", "params": {"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": HELLO}}])
    assert len(fake.requests) == n
    # reading and storing files costs nothing and stays open; priced calls go on as ever
    f = oai.files.create(file=("b.jsonl", b"{}\n", "application/jsonl"), purpose="batch")
    assert any(x.id == f.id for x in oai.files.list().data)
    assert oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices
    assert budget_of(tw, "key", "budgeted")["reserved_usd"] == "0.000000000"
