"""Our database's own state is never an event's fault: read-only after a failover,
serialization failures, deadlocks, a full disk or a cancelled query are retried
until the database is healthy, and nothing is dead-lettered for them."""

from __future__ import annotations

import asyncpg
import pytest
from plugboard_servicekit import db
from plugboard_servicekit.errors import NotFound

from .conftest import (
    EFFECTS_MIGRATIONS,
    TopicProbe,
    consumed,
    consumer_for,
    failed_attempts,
    make_event,
    produce,
    wait_until,
)

pytestmark = pytest.mark.integration


async def _raise_sqlstate(conn: asyncpg.Connection, sqlstate: str) -> BaseException:
    """A real server error with that SQLSTATE, as asyncpg raises it."""
    try:
        await conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{sqlstate}'; END $$")
    except asyncpg.PostgresError as exc:
        return exc
    raise AssertionError("no error raised")


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("25006", True),  # read_only_sql_transaction
        ("40001", True),  # serialization_failure
        ("40P01", True),  # deadlock_detected
        ("53100", True),  # disk_full
        ("53200", True),  # out_of_memory
        ("57014", True),  # query_canceled
        ("57P01", True),  # admin_shutdown
        ("08006", True),  # connection_failure
        ("23505", False),  # unique_violation: the event's data
        ("22P02", False),  # invalid_text_representation
        ("42P01", False),  # undefined_table: our bug, retried then dead-lettered
    ],
)
async def test_database_state_errors_are_transient(
    postgres_dsn: str, sqlstate: str, transient: bool
) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        error = await _raise_sqlstate(conn, sqlstate)
    finally:
        await conn.close()
    assert db.is_transient(error) is transient
    wrapped = NotFound("gone")
    wrapped.__cause__ = error
    assert db.is_transient(wrapped) is transient  # `raise NotFound(...) from error`
    merely_during = NotFound("gone")
    merely_during.__context__ = error
    assert not db.is_transient(merely_during)


async def test_read_only_database_delays_but_never_dead_letters(
    postgres_dsn: str, fresh_schema: str, kafka_bootstrap: str, topic: str
) -> None:
    """A failover onto a standby: every new session is read-only."""
    role = f"r_{fresh_schema}"
    dsn = await db.provision(postgres_dsn, fresh_schema, role)
    await db.migrate(dsn, fresh_schema, [EFFECTS_MIGRATIONS])
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f'ALTER ROLE "{role}" SET default_transaction_read_only = on')
    pool = await db.create_pool(dsn, fresh_schema, min_size=0, max_size=4)
    consumer = consumer_for(
        pool, kafka_bootstrap, topic, max_attempts=2, backoff_base=0.01, backoff_max=0.05
    )
    dead_letters = await TopicProbe(kafka_bootstrap, f"{topic}.dlq").start()
    await consumer.start()
    try:
        await produce(kafka_bootstrap, topic, [make_event(topic, "agg-ro", n) for n in range(3)])
        await wait_until(  # 5x max_attempts, or a (wrong) dead letter
            lambda: failed_attempts(topic) >= 5 * 2 or consumed(topic, "dead_lettered") > 0
        )
        assert consumed(topic, "dead_lettered") == 0
        assert await pool.fetchval("SELECT count(*) FROM effects") == 0
        assert await dead_letters.records() == []

        await admin.execute(f'ALTER ROLE "{role}" RESET default_transaction_read_only')
        await admin.execute(  # the pool's sessions keep their default: reconnect them
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )

        async def applied() -> bool:
            return await admin.fetchval(f'SELECT count(*) FROM "{fresh_schema}".effects') == 3

        await wait_until(applied)
        seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM effects ORDER BY id")]
        assert seqs == [0, 1, 2]
        assert await dead_letters.records() == []
    finally:
        await dead_letters.stop()
        await consumer.stop()
        await pool.close()
        await admin.execute(f'ALTER ROLE "{role}" RESET default_transaction_read_only')
        await admin.close()
