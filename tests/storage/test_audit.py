"""The audit log on SQLite and Postgres: entries newest first, paging, filters, no secrets."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.audit import AuditLog, scrub
from tollway.storage.schema import audit_log


async def test_entries_newest_first_with_paging_and_filters(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    for i in range(5):
        await log.record("master", "key.create", f"key:k{i}", None, {"name": f"k{i}", "rpm": i})
    await log.record("ops", "key.revoke", "key:k1", {"state": "active"}, {"state": "revoked"})

    page = await log.list(limit=4)
    assert [e["target"] for e in page["data"]] == ["key:k1", "key:k4", "key:k3", "key:k2"]
    assert page["data"][0] == {**page["data"][0], "actor": "ops", "action": "key.revoke",
                               "before": {"state": "active"}, "after": {"state": "revoked"}}
    rest = await log.list(limit=4, before_id=int(page["next_cursor"]))
    assert [e["target"] for e in rest["data"]] == ["key:k1", "key:k0"]
    assert rest["next_cursor"] is None
    assert [e["action"] for e in (await log.list(target="key:k1"))["data"]] == ["key.revoke", "key.create"]
    assert len((await log.list(actor="ops"))["data"]) == 1


async def test_secret_values_never_reach_a_row(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    secret = "sk-live-abcdefghijklmnop"
    await log.record("master", "provider.create", "provider:p1", None, {
        "id": "p1", "api_key": secret, "headers": {"Authorization": "Bearer " + secret},
        "credentials": [{"openai_key": secret}], "key_id": "tw_ab12", "secret_key": secret, "password": secret,
    })
    async with engine.connect() as conn:
        rows = (await conn.execute(select(audit_log.c.before, audit_log.c.after))).all()
    assert rows and all(secret not in (r[1] or "") for r in rows)
    entry = (await log.list())["data"][0]["after"]
    assert entry["key_id"] == "tw_ab12" and entry["api_key"] == "***" and entry["headers"]["Authorization"] == "***"


def test_scrub_keeps_ids_and_hides_secret_names() -> None:
    assert scrub({"key_id": "a", "public_id": "b", "token_limit": None, "api_key": "x", "nested": {"secret": "y"}}) == {
        "key_id": "a", "public_id": "b", "token_limit": None, "api_key": "***", "nested": {"secret": "***"}}


async def test_an_actor_or_target_with_nul_is_kept_not_lost(engine: AsyncEngine) -> None:
    """Postgres refuses NUL in text: an entry whose actor (a configured key id) or target holds
    one is written with U+FFFD instead of failing the admin call."""
    log = AuditLog(engine)
    await log.record("key\x00id", "key.create", "key:\x00", None, {"name": "n"})
    entry = (await log.list(limit=1))["data"][0]
    assert (entry["actor"], entry["target"]) == ("key\ufffdid", "key:\ufffd")
