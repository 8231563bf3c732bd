"""Order-tolerant apply: whatever order an aggregate's events arrive in, and however
often, the end state is the newest one; a deletion's tombstone outlives late events."""

from __future__ import annotations

import itertools
import uuid

import asyncpg
import pytest
from plugboard_servicekit import versions
from plugboard_servicekit.db import Connection

pytestmark = pytest.mark.integration

LIFE = [(1, False), (2, False), (3, False), (4, True)]  # created, updated, updated, deleted


async def _apply(conn: Connection, thing: str, version: int, deleted: bool) -> bool:
    """What a consumer does: advance, and change state only when it advanced."""
    async with conn.transaction():
        if not await versions.advance(conn, "thing", thing, version, deleted=deleted):
            return False
        if deleted:
            await conn.execute("DELETE FROM things WHERE id = $1", thing)
        else:
            await conn.execute(
                "INSERT INTO things (id, version) VALUES ($1, $2)"
                " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
                thing,
                version,
            )
        return True


@pytest.fixture
async def conn(effects_db: asyncpg.Pool):
    async with effects_db.acquire() as connection:
        await connection.execute("CREATE TABLE things (id text PRIMARY KEY, version int)")
        yield connection


async def _state(conn: Connection, thing: str) -> tuple[int | None, tuple[int, bool] | None]:
    row = await conn.fetchrow(
        "SELECT version, deleted FROM aggregate_versions WHERE aggregate = 'thing'"
        " AND aggregate_id = $1",
        thing,
    )
    version = await conn.fetchval("SELECT version FROM things WHERE id = $1", thing)
    return version, (row["version"], row["deleted"]) if row else None


async def test_every_order_and_every_duplicate_ends_in_the_newest_state(conn: Connection) -> None:
    """All 24 orders of a life ending in a deletion, each with one event repeated;
    and all orders of a life without one."""
    for order in itertools.permutations(LIFE):
        for repeated in order:
            thing = uuid.uuid4().hex
            applied = [v for v, d in [*order, repeated] if await _apply(conn, thing, v, d)]
            assert applied == sorted(set(applied))  # only ever newer, never twice
            assert applied[-1] == 4
            assert await _state(conn, thing) == (None, (4, True))  # gone, tombstone kept
    for order in itertools.permutations(LIFE[:3]):
        thing = uuid.uuid4().hex
        for version, deleted in [*order, *order]:
            await _apply(conn, thing, version, deleted)
        assert await _state(conn, thing) == (3, (3, False))


async def test_created_after_deleted_changes_nothing(conn: Connection) -> None:
    thing = uuid.uuid4().hex
    assert await _apply(conn, thing, 2, True)
    assert not await _apply(conn, thing, 1, False)  # the late created
    assert not await _apply(conn, thing, 2, True)  # the deletion redelivered
    assert await _state(conn, thing) == (None, (2, True))


async def test_advance_many_takes_each_ids_newest_item(conn: Connection) -> None:
    a, b, c = (uuid.uuid4() for _ in range(3))
    assert await versions.advance(conn, "thing", a, 5)
    advanced = await versions.advance_many(
        conn,
        "thing",
        [(a, 3, False), (b, 1, False), (b, 2, False), (c, 1, False), (c, 1, True), (a, 6, False)],
    )
    assert advanced == {str(a), str(b), str(c)}
    rows = await conn.fetch(
        "SELECT aggregate_id, version, deleted FROM aggregate_versions ORDER BY aggregate_id"
    )
    assert {r["aggregate_id"]: (r["version"], r["deleted"]) for r in rows} == {
        str(a): (6, False),
        str(b): (2, False),
        str(c): (1, True),  # a deletion wins a tie
    }
    assert await versions.advance_many(conn, "thing", [(b, 2, False), (c, 1, False)]) == set()
    assert await versions.advance_many(conn, "thing", []) == set()


async def test_versions_start_at_one(conn: Connection) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        await versions.advance(conn, "thing", "x", 0)
