"""Responses Tollway stores itself (non-OpenAI providers): whose they are, how long they live,
how a chain is stored and bounded, their input items, and item references. Responses the OpenAI
provider keeps: whose they are, too."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway, openai_client, standard_config

BETA_KEY = "tw-team-beta-key"
MODEL = "claude-haiku-4-5"


def keyed_config(fake_url: str, **responses: object) -> dict:
    cfg = standard_config(fake_url)
    cfg["keys"] = [*cfg["keys"], {"id": "team-beta", "key": BETA_KEY}]
    if responses:
        cfg["responses"] = responses
    return cfg


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    t = Tollway(tmp_path_factory.mktemp("responses"), keyed_config(fake.url, max_chain_depth=4,
                                                                   max_chain_bytes=200_000))
    yield t
    t.stop()


def db(t: Tollway) -> sqlite3.Connection:
    return sqlite3.connect(Path(t.workdir) / ".tollway" / "tollway.db")


# --- ownership ------------------------------------------------------------------------------------

def test_another_key_cannot_read_continue_list_or_delete(tw: Tollway, fake: FakeProvider) -> None:
    alpha, beta, master = openai_client(tw, TEAM_KEY), openai_client(tw, BETA_KEY), openai_client(tw, MASTER_KEY)
    first = alpha.responses.create(model=MODEL, input="The secret word is heliotrope.")
    before = len(fake.requests)
    with pytest.raises(openai.NotFoundError):
        beta.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        beta.responses.input_items.list(first.id)
    with pytest.raises(openai.NotFoundError) as ei:
        beta.responses.create(model=MODEL, previous_response_id=first.id, input="What is the secret word? [[echo]]")
    assert ei.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        beta.responses.delete(first.id)
    # an item of the first key's response cannot be pulled in by reference either
    with pytest.raises(openai.BadRequestError) as ei:
        beta.responses.create(model=MODEL, input=[{"type": "item_reference", "id": first.output[0].id},
                                                 {"role": "user", "content": "go on [[echo]]"}])
    assert "not found" in ei.value.body["message"]
    assert len(fake.requests) == before  # none of it went to a provider (not even the OpenAI one)

    assert alpha.responses.retrieve(first.id).output_text == first.output_text  # still there for its owner
    assert master.responses.retrieve(first.id).id == first.id  # the master key sees every key's
    alpha.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        alpha.responses.retrieve(first.id)


def test_without_keys_everything_is_open(fake: FakeProvider, workdir: Path) -> None:
    cfg = standard_config(fake.url)
    cfg["server"] = {k: v for k, v in cfg["server"].items() if k != "master_key"}
    cfg["keys"] = []
    t = Tollway(workdir, cfg)
    try:
        a = openai.OpenAI(base_url=t.url + "/v1", api_key="anything", max_retries=0)
        b = openai.OpenAI(base_url=t.url + "/v1", api_key="something-else", max_retries=0)
        first = a.responses.create(model=MODEL, input="Hello")
        assert b.responses.retrieve(first.id).id == first.id
    finally:
        t.stop()


# --- storage: linear chains, bounds ---------------------------------------------------------------

def test_a_chain_stores_each_turn_once_and_rebuilds_the_history(fake: FakeProvider, workdir: Path) -> None:
    t = Tollway(workdir, keyed_config(fake.url))
    try:
        client = openai_client(t, TEAM_KEY)
        pad = "x" * 2000
        prev = None
        for i in range(25):
            r = client.responses.create(model=MODEL, input=f"turn {i} {pad}", previous_response_id=prev)
            prev = r.id
        last = client.responses.create(model=MODEL, input="recap [[echo]]", previous_response_id=prev)
        sent = json.loads(last.output_text)["messages"]
        users = [m["content"][0]["text"].split(" ")[1] for m in sent if m["role"] == "user"][:-1]
        assert users == [str(i) for i in range(25)]  # every turn, in order, once
        with db(t) as conn:
            total = conn.execute("SELECT sum(length(conversation)) FROM responses").fetchone()[0]
            depth, chain, own = conn.execute("SELECT depth, chain_bytes, length(conversation) FROM responses "
                                             "WHERE id = ?", (last.id,)).fetchone()
        assert depth == 26 and chain == total
        assert total - own < 25 * 2600  # linear: each turn's ~2 KB once (quadratic would be ~650 KB)
    finally:
        t.stop()


def test_a_chain_beyond_its_bounds_is_a_clear_400(tw: Tollway) -> None:
    client = openai_client(tw, TEAM_KEY)
    prev = None
    for _ in range(4):  # max_chain_depth = 4
        prev = client.responses.create(model=MODEL, input="again", previous_response_id=prev).id
    with pytest.raises(openai.BadRequestError) as ei:
        client.responses.create(model=MODEL, input="once more", previous_response_id=prev)
    assert ei.value.body["param"] == "previous_response_id" and "max_chain_depth" in ei.value.body["message"]

    big = client.responses.create(model=MODEL, input="y" * 150_000)  # max_chain_bytes = 200,000
    with pytest.raises(openai.BadRequestError) as ei:
        client.responses.create(model=MODEL, input="z" * 60_000, previous_response_id=big.id)
    assert "max_chain_bytes" in ei.value.body["message"]


def test_stored_responses_expire(fake: FakeProvider, workdir: Path) -> None:
    t = Tollway(workdir, keyed_config(fake.url, ttl_days=2 / 86400))  # two seconds
    try:
        client = openai_client(t, TEAM_KEY)
        r = client.responses.create(model=MODEL, input="short-lived")
        assert client.responses.retrieve(r.id).id == r.id
        time.sleep(2.2)
        with pytest.raises(openai.NotFoundError):  # expired: gone at once, whatever the cleaner did
            client.responses.retrieve(r.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model=MODEL, input="more", previous_response_id=r.id)
        deadline = time.time() + 10
        while time.time() < deadline:  # and the background cleaner deletes the row
            with db(t) as conn:
                if conn.execute("SELECT count(*) FROM responses WHERE id = ?", (r.id,)).fetchone()[0] == 0:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("expired response was not deleted")
    finally:
        t.stop()


# --- input items ----------------------------------------------------------------------------------

def test_input_items_list_like_openai(tw: Tollway) -> None:
    client = openai_client(tw, TEAM_KEY)
    one = client.responses.create(model=MODEL, input="first question")
    two = client.responses.create(model=MODEL, previous_response_id=one.id, input=[
        {"role": "user", "content": "second question"},
        {"role": "user", "content": [{"type": "input_text", "text": "and a third"}]}])
    page = client.responses.input_items.list(two.id)
    texts = [i.content[0].text for i in page.data]  # newest first by default
    assert texts == ["and a third", "second question", "Hello from the fake provider!", "first question"]
    assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id and page.has_more is False
    assert all(i.id for i in page.data) and len({i.id for i in page.data}) == 4

    asc = client.responses.input_items.list(two.id, order="asc", limit=3)
    assert [i.content[0].text for i in asc.data] == ["first question", "Hello from the fake provider!",
                                                     "second question"]
    assert asc.has_more is True
    rest = client.responses.input_items.list(two.id, order="asc", limit=3, after=asc.last_id)
    assert [i.content[0].text for i in rest.data] == ["and a third"] and rest.has_more is False
    every = [i.id for i in client.responses.input_items.list(two.id, order="asc", limit=1)]  # auto-paging
    assert every == [i.id for i in page.data][::-1]
    with pytest.raises(openai.BadRequestError):
        client.responses.input_items.list(two.id, limit=500)


# --- item references ------------------------------------------------------------------------------

def test_item_references_resolve_from_the_store(tw: Tollway, fake: FakeProvider) -> None:
    """What the Vercel AI SDK does on a tool step: earlier items by reference, no previous_response_id."""
    client = openai_client(tw, TEAM_KEY)
    tools = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    step1 = client.responses.create(model=MODEL, tools=tools, input="Weather in Paris? [[tool:get_weather]]")
    call = next(i for i in step1.output if i.type == "function_call")
    step2 = client.responses.create(model=MODEL, tools=tools, input=[
        {"role": "user", "content": "Weather in Paris? [[tool:get_weather]]"},
        {"type": "item_reference", "id": call.id},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ])
    assert step2.output_text == "Tool said: sunny"
    sent = fake.requests[-1].json["messages"]
    tool_use = [b for m in sent if m["role"] == "assistant" for b in m["content"] if b["type"] == "tool_use"]
    assert tool_use and tool_use[0]["id"] == call.call_id and tool_use[0]["input"] == {"city": "Paris"}
    items = client.responses.input_items.list(step2.id, order="asc")
    assert [i.type for i in items.data] == ["message", "function_call", "function_call_output"]


# --- responses the OpenAI provider keeps ----------------------------------------------------------

OPENAI_MODEL = "gpt-4o-mini"


def _upstream_calls(fake: FakeProvider, rid: str) -> list[str]:
    return [r.method for r in fake.requests if r.path.startswith(f"/v1/responses/{rid}")]


@pytest.mark.parametrize("stream", [False, True])
def test_a_response_the_provider_keeps_is_only_its_keys(tw: Tollway, fake: FakeProvider, stream: bool) -> None:
    alpha, beta, master = openai_client(tw, TEAM_KEY), openai_client(tw, BETA_KEY), openai_client(tw, MASTER_KEY)
    if stream:
        with alpha.responses.stream(model=OPENAI_MODEL, input="The secret word is heliotrope.") as s:
            rid = s.get_final_response().id
    else:
        rid = alpha.responses.create(model=OPENAI_MODEL, input="The secret word is heliotrope.").id
    assert fake.requests[-1].path == "/v1/responses"  # the provider keeps it, not Tollway
    before = len(fake.requests)
    with pytest.raises(openai.NotFoundError):
        beta.responses.retrieve(rid)
    with pytest.raises(openai.NotFoundError):
        beta.responses.input_items.list(rid)
    with pytest.raises(openai.NotFoundError):
        beta.responses.delete(rid)
    with pytest.raises(openai.NotFoundError) as ei:
        beta.responses.create(model=OPENAI_MODEL, previous_response_id=rid, input="What is the secret word?")
    assert ei.value.body["param"] == "previous_response_id"
    assert len(fake.requests) == before  # none of it reached the provider with Tollway's key

    assert alpha.responses.retrieve(rid).id == rid  # its own key's reads go on to the provider
    nxt = alpha.responses.create(model=OPENAI_MODEL, previous_response_id=rid, input="And now?")
    assert fake.requests[-1].json["previous_response_id"] == rid
    assert master.responses.retrieve(nxt.id).id == nxt.id  # the master key reaches every key's
    alpha.responses.delete(rid)
    assert _upstream_calls(fake, rid) == ["GET", "DELETE"]
    with pytest.raises(openai.NotFoundError):  # deleted: no longer anyone's but the master key's
        alpha.responses.retrieve(rid)
    assert _upstream_calls(fake, rid) == ["GET", "DELETE"]


def test_an_id_tollway_never_passed_on_is_not_found_for_a_key(tw: Tollway, fake: FakeProvider) -> None:
    rid = "resp_" + "ab" * 24  # of the provider's form, but never created through Tollway
    with pytest.raises(openai.NotFoundError):
        openai_client(tw, TEAM_KEY).responses.retrieve(rid)
    with pytest.raises(openai.NotFoundError):
        openai_client(tw, TEAM_KEY).responses.create(model=OPENAI_MODEL, previous_response_id=rid, input="Hi")
    assert _upstream_calls(fake, rid) == []
    assert openai_client(tw, MASTER_KEY).responses.retrieve(rid).id == rid  # the master key: as before
    assert _upstream_calls(fake, rid) == ["GET"]


def test_a_response_not_stored_by_the_provider_is_not_claimed(tw: Tollway) -> None:
    rid = openai_client(tw, TEAM_KEY).responses.create(model=OPENAI_MODEL, input="Hi", store=False).id
    assert db(tw).execute("SELECT count(*) FROM upstream_responses WHERE id = ?", (rid,)).fetchone() == (0,)


def test_upstream_owners_expire_with_stored_responses(fake: FakeProvider, workdir: Path) -> None:
    t = Tollway(workdir, keyed_config(fake.url, ttl_days=1))
    try:
        alpha = openai_client(t, TEAM_KEY)
        rid = alpha.responses.create(model=OPENAI_MODEL, input="Hi").id
        assert alpha.responses.retrieve(rid).id == rid
        with db(t) as conn:  # two days old
            conn.execute("UPDATE upstream_responses SET created_at = created_at - 2 * 86400 WHERE id = ?", (rid,))
        with pytest.raises(openai.NotFoundError):
            alpha.responses.retrieve(rid)
    finally:
        t.stop()


# --- no model: a stored prompt --------------------------------------------------------------------

def test_a_stored_prompt_without_model_goes_to_openai(tw: Tollway, fake: FakeProvider) -> None:
    raw = openai_client(tw, TEAM_KEY).responses.with_raw_response.create(
        prompt={"id": "pmpt_abc123", "variables": {"city": "Paris"}}, input="Hello")
    assert raw.parse().output_text == "Hello from the fake provider!"
    up = fake.requests[-1]
    assert up.provider == "openai" and up.path == "/v1/responses" and "model" not in up.json
    assert up.json["prompt"]["id"] == "pmpt_abc123"
    rec = tw.record(raw.headers["x-tollway-trace-id"])
    assert rec["provider"] == "openai" and rec["model_served"] == "gpt-4o-mini" and rec["cost_usd"] is not None


def test_no_model_and_no_prompt_is_still_400(tw: Tollway) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        openai_client(tw, TEAM_KEY).responses.create(input="Hello")  # type: ignore[call-overload]
    assert ei.value.body["param"] == "model"
