"""The Responses API's state for providers that have none: stored response objects and their
items, so a follow-up with `previous_response_id` continues on any provider.

Each row keeps the response object and its *own* items once (this request's input, then its
output), linked to the response it continued (`previous_id`); a conversation is rebuilt by
walking the links (one recursive query), so a chain of N turns stores O(N) items, not O(N²).
`depth` and `chain_bytes` of the newest row bound what a continuation may load, checked before
anything is loaded (`[responses] max_chain_depth`, `max_chain_bytes`).

A response belongs to the key that created it: every read takes an `Owner`, and another key's
response is as good as absent (the route answers 404). With no keys configured everything is
open; the master key sees all. Rows expire `ttl_days` after creation: reads ignore expired
rows at once, and a background task deletes them in small batches. A walk stops at a missing
link (deleted or expired): the history is what is still stored.

Responses an OpenAI-format provider keeps itself (the call went on as it was) are the provider's
to store, but whose they are is Tollway's to know: `claim_upstream` notes the caller's key for
the id before the client learns it, and `upstream_owner` answers like `find` (another key's, an
expired or an unknown id is not the caller's: Tollway's credentials never fetch it).

Written before the response's last bytes are sent, so a client's immediate follow-up finds it.
Text is kept as every store can keep it (`rows.storable_text`: no NUL, which Postgres refuses even
in a query): a key id or project with one is stored with U+FFFD (and its owner still matches),
and an id with one is no stored response's, so it is looked up nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from sqlalchemy import delete, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.config import ResponsesSettings
from tollway.storage.rows import storable_text
from tollway.storage.schema import responses as responses_table
from tollway.storage.schema import upstream_responses

log = logging.getLogger("tollway")

_ITEM_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
EXPIRY_BATCH = 500


@dataclass(frozen=True, slots=True)
class Owner:
    """Who asks: the caller's key id, and whether it may see every key's responses."""

    key_id: str | None
    sees_all: bool

    def __post_init__(self) -> None:
        # compared with the stored key id, which is kept as every store can keep it
        if self.key_id is not None:
            object.__setattr__(self, "key_id", storable_text(self.key_id))

    def may(self, key_id: str | None) -> bool:
        return self.sees_all or key_id == self.key_id


@dataclass(frozen=True, slots=True)
class ChainLink:
    """What a continuation needs to know of the response it continues, before loading anything."""

    id: str
    depth: int
    chain_bytes: int


class Found(Enum):
    MINE = "mine"
    HIDDEN = "hidden"  # another key's, or expired: answered as not found, never passed on
    ABSENT = "absent"  # not Tollway's: may be the OpenAI provider's own


def input_item_ids(response_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as the API lists them: each with an `id` (the client's when given, else
    `<prefix>_<response hex>i<n>`, so an id names the response that holds it, see
    `response_of_item`), and a message in its full form (`type`, content parts, `status`)."""
    base = response_id.removeprefix("resp_")
    out = []
    for n, item in enumerate(items):
        if "role" in item and item.get("type") in (None, "message"):
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                content = [{"type": part, "text": content}]
            item = {**item, "type": "message", "content": content, "status": item.get("status") or "completed"}
        if not isinstance(item.get("id"), str):
            prefix = _ITEM_PREFIX.get(item.get("type") or "", "item")
            item = {"id": f"{prefix}_{base}i{n:02x}", **item}
        out.append(item)
    return out


def response_of_item(item_id: str) -> str | None:
    """The id of the stored response an item id was made for (output items: `formats.responses.
    item_id`, input items: `input_item_ids`), or None for any other id."""
    _, sep, rest = item_id.partition("_")
    base = rest[:32]
    if not sep or len(rest) <= 32 or any(c not in "0123456789abcdef" for c in base):
        return None
    return "resp_" + base


def _text(value: str | None) -> str | None:
    return None if value is None else storable_text(value)  # as Postgres can keep it (no NUL)


def _storable_id(response_id: str) -> bool:
    """False for an id no stored response can have (a NUL, which Postgres cannot even be asked
    about): such an id is looked up nowhere, it is simply not Tollway's."""
    return storable_text(response_id) == response_id


class ResponseStore:
    def __init__(self, engine: AsyncEngine, settings: ResponsesSettings) -> None:
        self._engine = engine
        self.settings = settings
        self._cleaner: asyncio.Task[None] | None = None
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self._claim = dialect.insert(upstream_responses).on_conflict_do_nothing(index_elements=["id"])

    @property
    def ttl_secs(self) -> float:
        return self.settings.ttl_days * 86400.0

    def _cutoff(self) -> float:
        return time.time() - self.ttl_secs

    # -- writing -----------------------------------------------------------------------------------
    async def put(self, response_id: str, response: dict[str, Any], input_items: list[dict[str, Any]],
                  output_items: list[dict[str, Any]], *, previous: ChainLink | None, provider: str | None,
                  project: str | None, key_id: str | None) -> None:
        items = [*input_item_ids(response_id, input_items), *output_items]
        data = orjson.dumps(items)
        row = {"id": response_id, "created_at": time.time(), "provider": _text(provider), "project": _text(project),
               "key_id": _text(key_id), "response": orjson.dumps(response).decode(), "conversation": data.decode(),
               "previous_id": previous.id if previous else None, "input_count": len(input_items),
               "depth": previous.depth + 1 if previous else 1,
               "chain_bytes": (previous.chain_bytes if previous else 0) + len(data)}
        async with self._engine.begin() as conn:
            await conn.execute(insert(responses_table), [row])

    # -- reading -----------------------------------------------------------------------------------
    async def find(self, response_id: str, owner: Owner) -> tuple[Found, dict[str, Any] | None]:
        if not _storable_id(response_id):
            return Found.ABSENT, None
        t = responses_table
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(t.c.response, t.c.key_id, t.c.created_at)
                                      .where(t.c.id == response_id))).first()
        if row is None:
            return Found.ABSENT, None
        if not owner.may(row.key_id) or row.created_at < self._cutoff():
            return Found.HIDDEN, None
        return Found.MINE, orjson.loads(row.response)

    async def link(self, response_id: str, owner: Owner) -> ChainLink | None:
        if not _storable_id(response_id):
            return None
        t = responses_table
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(t.c.depth, t.c.chain_bytes, t.c.key_id, t.c.created_at)
                                      .where(t.c.id == response_id))).first()
        if row is None or not owner.may(row.key_id) or row.created_at < self._cutoff():
            return None
        return ChainLink(response_id, row.depth, row.chain_bytes)

    async def _chain(self, response_id: str, owner: Owner, max_rows: int) -> list[Any]:
        """Rows of the chain ending at `response_id`, newest first, up to the first one missing,
        hidden or expired (and at most `max_rows`)."""
        if not _storable_id(response_id):
            return []
        t = responses_table
        cols = (t.c.id, t.c.previous_id, t.c.conversation, t.c.input_count, t.c.key_id, t.c.created_at)
        chain = select(*cols, literal(0).label("n")).where(t.c.id == response_id).cte("chain", recursive=True)
        chain = chain.union_all(select(*cols, (chain.c.n + 1).label("n"))
                                .where(t.c.id == chain.c.previous_id, chain.c.n < max_rows - 1))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(chain).order_by(chain.c.n))).all()
        cutoff = self._cutoff()
        out = []
        for row in rows:
            if not owner.may(row.key_id) or row.created_at < cutoff:
                break
            out.append(row)
        return out

    async def history(self, response_id: str, owner: Owner) -> list[dict[str, Any]]:
        """Every item up to and including `response_id`'s output, oldest first."""
        rows = await self._chain(response_id, owner, self.settings.max_chain_depth)
        items: list[dict[str, Any]] = []
        for row in reversed(rows):
            items.extend(orjson.loads(row.conversation))
        return items

    async def input_items(self, response_id: str, owner: Owner) -> tuple[Found, list[dict[str, Any]]]:
        """The items a stored response was generated from: its conversation before it, then its
        own input (oldest first)."""
        found, response = await self.find(response_id, owner)
        if found is not Found.MINE or response is None:
            return found, []
        rows = await self._chain(response_id, owner, self.settings.max_chain_depth)
        if not rows:
            return Found.HIDDEN, []
        items: list[dict[str, Any]] = []
        for row in reversed(rows[1:]):
            items.extend(orjson.loads(row.conversation))
        own = orjson.loads(rows[0].conversation)
        n_input = rows[0].input_count
        if n_input is None:  # a row from before 0004: its conversation, then its output
            n_input = max(len(own) - len(response.get("output") or []), 0)
        items.extend(input_item_ids(response_id, own[:n_input]))
        return found, items

    async def items_of(self, response_ids: list[str], owner: Owner) -> dict[str, dict[str, Any]]:
        """Items by id, of the given stored responses the owner may see (for `item_reference`)."""
        response_ids = [r for r in response_ids if _storable_id(r)]
        if not response_ids:
            return {}
        t = responses_table
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(t.c.id, t.c.conversation, t.c.key_id, t.c.created_at)
                                       .where(t.c.id.in_(response_ids)))).all()
        cutoff = self._cutoff()
        found: dict[str, dict[str, Any]] = {}
        for row in rows:
            if owner.may(row.key_id) and row.created_at >= cutoff:
                for item in orjson.loads(row.conversation):
                    if isinstance(item, dict) and isinstance(item.get("id"), str):
                        found[item["id"]] = item
        return found

    async def delete(self, response_id: str, owner: Owner) -> Found:
        found, _ = await self.find(response_id, owner)
        if found is Found.MINE:
            async with self._engine.begin() as conn:
                await conn.execute(delete(responses_table).where(responses_table.c.id == response_id))
        return found

    # -- responses the provider keeps ----------------------------------------------------------------
    async def claim_upstream(self, response_id: str, key_id: str | None) -> None:
        """Note that the provider's response `response_id` is `key_id`'s. The first claim of an
        id stands (ids are the provider's, unique; a repeat cannot take one over)."""
        if not _storable_id(response_id) or len(response_id) > 80:
            return
        async with self._engine.begin() as conn:
            await conn.execute(self._claim, [{"id": response_id, "created_at": time.time(), "key_id": _text(key_id)}])

    async def upstream_owner(self, response_id: str, owner: Owner) -> Found:
        """MINE when the owner may reach the provider's response `response_id`; HIDDEN when it is
        another key's or expired; ABSENT when Tollway never passed it on."""
        if not _storable_id(response_id):
            return Found.ABSENT
        t = upstream_responses
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(t.c.key_id, t.c.created_at).where(t.c.id == response_id))).first()
        if row is None:
            return Found.ABSENT
        if not owner.may(row.key_id) or row.created_at < self._cutoff():
            return Found.HIDDEN
        return Found.MINE

    async def forget_upstream(self, response_id: str) -> None:
        if _storable_id(response_id):
            async with self._engine.begin() as conn:
                await conn.execute(delete(upstream_responses).where(upstream_responses.c.id == response_id))

    # -- expiry ------------------------------------------------------------------------------------
    async def expire(self, batch: int = EXPIRY_BATCH) -> int:
        """Delete up to `batch` expired rows of each table; how many went in all (`batch` or more:
        more may be waiting)."""
        total = 0
        for t in (responses_table, upstream_responses):
            doomed = select(t.c.id).where(t.c.created_at < self._cutoff()).limit(batch).scalar_subquery()
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(t).where(t.c.id.in_(doomed)))
            total += int(result.rowcount or 0)
        return total

    def start(self) -> None:
        self._cleaner = asyncio.get_running_loop().create_task(self._clean_forever())

    async def stop(self) -> None:
        if self._cleaner is not None:
            self._cleaner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleaner
            self._cleaner = None

    async def _clean_forever(self) -> None:
        # Often enough that little outlives its time, rarely enough to cost nothing: a tenth of the
        # lifetime, between a second and ten minutes. Small batches keep each transaction short.
        interval = min(600.0, max(1.0, self.ttl_secs / 10))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_all()
            except Exception:
                log.exception("deleting expired responses failed; will retry")

    async def expire_all(self, pause: float = 0.05) -> int:
        """Delete every expired row, a batch at a time with a pause between (other writers go on)."""
        total = 0
        for _ in range(1_000_000):
            n = await self.expire()
            total += n
            if n < EXPIRY_BATCH:
                break
            await asyncio.sleep(pause)
        return total
