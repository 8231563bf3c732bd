"""Connector versions: draft → publish → unpublish. A published version is immutable:
changing or deleting it answers 409 until it is unpublished. A change to a version is
a change to its connector (``connector.updated``, version + 1)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.ids import uuid7
from plugboard_servicekit import outbox
from plugboard_servicekit.db import Connection
from plugboard_servicekit.errors import Conflict, NotFound

from connector_registry import events
from connector_registry import repository as repo
from connector_registry.models import VersionIn, VersionPatch
from connector_registry.service_connectors import not_found


def _published() -> Conflict:
    return Conflict("The version is published and immutable; unpublish it first.")


class VersionService:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def _touch(self, conn: Connection, org: str, cid: UUID) -> None:
        row = await repo.touch_connector(conn, org, cid)
        await outbox.add(conn, events.connector_state("updated", org, row))

    async def create(self, org: str, cid: UUID, body: VersionIn) -> Any:
        async with self.pool.acquire() as conn, conn.transaction():
            if await repo.get_connector(conn, org, cid, lock=True) is None:
                raise not_found()
            vid = uuid7()
            if body.is_default:
                await repo.clear_default(conn, org, cid, vid)
            try:
                async with conn.transaction():
                    values = (body.name, body.description, body.is_default)
                    row = await repo.insert_version(conn, org, cid, vid, values)
            except asyncpg.UniqueViolationError:
                raise Conflict("A version with this name exists for the connector.") from None
            await self._touch(conn, org, cid)
            return row

    async def _change(
        self, org: str, cid: UUID, vid: UUID, change: Any, *, allow_published: bool = False
    ) -> Any:
        async with self.pool.acquire() as conn, conn.transaction():
            if await repo.get_connector(conn, org, cid, lock=True) is None:
                raise not_found()
            current = await repo.lock_version(conn, org, cid, vid)
            if current is None:
                raise NotFound("No such version.")
            if current["published_at"] is not None and not allow_published:
                raise _published()
            values = change(current)
            if values is None:
                await repo.delete_version(conn, org, cid, vid)
                await self._touch(conn, org, cid)
                return None
            if values[2]:
                await repo.clear_default(conn, org, cid, vid)
            try:
                async with conn.transaction():
                    row = await repo.update_version(conn, org, cid, vid, values)
            except asyncpg.UniqueViolationError:
                raise Conflict("A version with this name exists for the connector.") from None
            await self._touch(conn, org, cid)
            return row

    async def patch(self, org: str, cid: UUID, vid: UUID, patch: VersionPatch) -> Any:
        def change(current: Any) -> tuple[Any, ...]:
            given = patch.model_fields_set
            name = patch.name if "name" in given and patch.name else current["name"]
            text = patch.description if "description" in given else current["description"]
            default = current["is_default"] if patch.is_default is None else patch.is_default
            return (name, text, default, current["published_at"])

        return await self._change(org, cid, vid, change)

    async def publish(self, org: str, cid: UUID, vid: UUID) -> Any:
        def change(current: Any) -> tuple[Any, ...]:
            at = datetime.now(UTC)
            return (current["name"], current["description"], current["is_default"], at)

        return await self._change(org, cid, vid, change)

    async def unpublish(self, org: str, cid: UUID, vid: UUID) -> Any:
        def change(current: Any) -> tuple[Any, ...]:
            if current["published_at"] is None:
                raise Conflict("The version is not published.")
            return (current["name"], current["description"], current["is_default"], None)

        return await self._change(org, cid, vid, change, allow_published=True)

    async def delete(self, org: str, cid: UUID, vid: UUID) -> None:
        await self._change(org, cid, vid, lambda _current: None)
