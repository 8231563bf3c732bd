"""The service pool: bound to its schema, and a released connection carries no open work."""

from __future__ import annotations

import pytest
from plugboard_servicekit import db

pytestmark = pytest.mark.integration


async def test_pool_sees_only_its_schema(postgres_dsn: str, fresh_schema: str):
    await db.migrate(postgres_dsn, fresh_schema, [])
    pool = await db.create_pool(postgres_dsn, fresh_schema, min_size=1, max_size=1)
    try:
        assert await pool.fetchval("SELECT current_schema()") == fresh_schema
        assert await pool.fetchval("SELECT to_regclass('outbox')::text") == "outbox"
    finally:
        await pool.close()


async def test_released_connection_rolls_back_a_transaction_left_open(
    postgres_dsn: str, fresh_schema: str
):
    """The pool skips asyncpg's reset query; an unfinished transaction must still not
    leak into the next request that gets the same connection."""
    await db.migrate(postgres_dsn, fresh_schema, [])
    pool = await db.create_pool(postgres_dsn, fresh_schema, min_size=1, max_size=1)
    try:
        await pool.execute("CREATE TABLE things (id int PRIMARY KEY)")
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO things VALUES (1)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM things") == 0
    finally:
        await pool.close()
