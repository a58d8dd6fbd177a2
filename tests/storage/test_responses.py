"""The Responses store on both engines: linked chains, owners, expiry, rows from before 0004."""

from __future__ import annotations

import time
import uuid

import orjson
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.config import ResponsesSettings
from tollway.storage.responses import Found, Owner, ResponseStore, response_of_item
from tollway.storage.schema import responses as responses_table

ALICE = Owner("alice", sees_all=False)
BOB = Owner("bob", sees_all=False)
MASTER = Owner("master", sees_all=True)


def rid() -> str:
    return "resp_" + uuid.uuid4().hex


def msg(text: str, role: str = "user") -> dict:
    return {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}


async def chain(store: ResponseStore, n: int, owner: str = "alice") -> list[str]:
    ids: list[str] = []
    prev = None
    for i in range(n):
        r = rid()
        out = {**msg(f"a{i}", "assistant"), "id": "msg_" + r[5:] + "00"}
        await store.put(r, {"id": r, "output": [out]}, [msg(f"q{i}")], [out], previous=prev, provider="p",
                        project=None, key_id=owner)
        prev = await store.link(r, Owner(owner, False))
        ids.append(r)
    return ids


def texts(items: list[dict]) -> list[str]:
    return [i["content"][0]["text"] for i in items]


async def test_a_chain_is_rebuilt_from_its_links(engine: AsyncEngine) -> None:
    store = ResponseStore(engine, ResponsesSettings())
    ids = await chain(store, 5)
    assert texts(await store.history(ids[-1], ALICE)) == ["q0", "a0", "q1", "a1", "q2", "a2", "q3", "a3", "q4", "a4"]
    link = await store.link(ids[-1], ALICE)
    assert link is not None and link.depth == 5
    found, items = await store.input_items(ids[-1], ALICE)
    assert found is Found.MINE and texts(items) == ["q0", "a0", "q1", "a1", "q2", "a2", "q3", "a3", "q4"]
    assert [response_of_item(i["id"]) for i in items] == [r for r in ids for _ in (0, 1)][:-1]


async def test_another_owner_sees_nothing_and_the_master_all(engine: AsyncEngine) -> None:
    store = ResponseStore(engine, ResponsesSettings())
    ids = await chain(store, 2)
    assert (await store.find(ids[0], BOB))[0] is Found.HIDDEN
    assert await store.link(ids[1], BOB) is None
    assert await store.history(ids[1], BOB) == []
    assert await store.items_of(ids, BOB) == {}
    assert await store.delete(ids[0], BOB) is Found.HIDDEN
    assert (await store.find(ids[0], MASTER))[0] is Found.MINE
    assert (await store.find(rid(), ALICE))[0] is Found.ABSENT


async def test_a_walk_stops_at_a_deleted_link(engine: AsyncEngine) -> None:
    store = ResponseStore(engine, ResponsesSettings())
    ids = await chain(store, 3)
    assert await store.delete(ids[1], ALICE) is Found.MINE
    assert texts(await store.history(ids[2], ALICE)) == ["q2", "a2"]


async def test_expiry_deletes_only_expired_rows_in_batches(engine: AsyncEngine) -> None:
    store = ResponseStore(engine, ResponsesSettings(ttl_days=1))
    fresh = await chain(store, 2)
    old = [rid() for _ in range(7)]
    async with engine.begin() as conn:
        await conn.execute(insert(responses_table), [
            {"id": r, "created_at": time.time() - 2 * 86400, "provider": "p", "project": None, "key_id": "alice",
             "response": "{}", "conversation": "[]"} for r in old])
    assert (await store.find(old[0], ALICE))[0] is Found.HIDDEN  # expired: hidden before it is deleted
    assert await store.expire(batch=3) == 3
    assert await store.expire_all(pause=0) == 4
    async with engine.connect() as conn:
        left = set((await conn.execute(select(responses_table.c.id).where(
            responses_table.c.id.in_(old + fresh)))).scalars())
    assert left == set(fresh)


async def test_rows_from_before_0004_keep_their_whole_conversation(engine: AsyncEngine) -> None:
    """A row written by Tollway before migration 0004 holds every item up to it and no link."""
    store = ResponseStore(engine, ResponsesSettings())
    legacy = rid()
    conversation = [msg("q0"), msg("a0", "assistant"), msg("q1"), msg("a1", "assistant")]
    async with engine.begin() as conn:
        await conn.execute(insert(responses_table), [{
            "id": legacy, "created_at": time.time(), "provider": "p", "project": None, "key_id": "alice",
            "response": orjson.dumps({"id": legacy, "output": [msg("a1", "assistant")]}).decode(),
            "conversation": orjson.dumps(conversation).decode()}])
    link = await store.link(legacy, ALICE)
    assert link is not None and link.depth == 1
    nxt = rid()
    await store.put(nxt, {"id": nxt, "output": []}, [msg("q2")], [msg("a2", "assistant")], previous=link,
                    provider="p", project=None, key_id="alice")
    assert texts(await store.history(nxt, ALICE)) == ["q0", "a0", "q1", "a1", "q2", "a2"]
    found, items = await store.input_items(legacy, ALICE)
    assert texts(items) == ["q0", "a0", "q1"] and all(i["id"] for i in items)


def test_item_ids_name_their_response() -> None:
    r = "resp_" + "ab" * 16
    assert response_of_item("fc_" + "ab" * 16 + "00") == r
    assert response_of_item("msg_" + "ab" * 16 + "i03") == r
    assert response_of_item("fc_123") is None and response_of_item("call_" + "zz" * 17) is None
