"""The Responses API's state for providers that have none: stored response objects and the
whole conversation (input and output items) up to each response, so a follow-up with
`previous_response_id` continues on any provider.

Written before the response's last bytes are sent, so a client's immediate follow-up finds it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.schema import responses as responses_table

class ResponseStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def put(self, response_id: str, response: dict[str, Any], items: list[dict[str, Any]], *,
                  provider: str | None, project: str | None, key_id: str | None) -> None:
        row = {"id": response_id, "created_at": time.time(), "provider": provider, "project": project,
               "key_id": key_id, "response": orjson.dumps(response).decode(), "conversation": orjson.dumps(items).decode()}
        async with self._engine.begin() as conn:
            await conn.execute(insert(responses_table), [row])

    async def get(self, response_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """(response object, conversation items up to and including it), or None."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(responses_table.c.response, responses_table.c.conversation)
                                      .where(responses_table.c.id == response_id))).first()
        if row is None:
            return None
        return orjson.loads(row[0]), orjson.loads(row[1])

    async def delete(self, response_id: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(responses_table).where(responses_table.c.id == response_id))
        return bool(result.rowcount)
