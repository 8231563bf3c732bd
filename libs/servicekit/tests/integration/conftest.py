"""Helpers for the servicekit integration tests: a migrated schema with an `effects`
table, events for arbitrary test topics, and a consumer that records effects."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.ids import uuid7
from plugboard_servicekit import db, kafka
from plugboard_servicekit.consumer import EventConsumer, Handler, on
from plugboard_servicekit.db import Connection

EFFECTS_MIGRATIONS = Path(__file__).parent / "effects_migrations"


def make_event(topic: str, key: str, seq: int, **extra: Any) -> CloudEvent[dict[str, Any]]:
    return CloudEvent[dict[str, Any]](
        id=uuid7(),
        source="servicekit-tests",
        type=topic,
        subject=key,
        time=datetime.now(UTC),
        dataschema=None,
        orgid="org-test",
        data={"seq": seq, **extra},
    )


async def record_effect(_: object, conn: Connection, event: CloudEvent[dict[str, Any]]) -> None:
    await conn.execute(
        "INSERT INTO effects (event_id, key, seq) VALUES ($1, $2, $3)",
        event.id,
        event.subject,
        event.data["seq"],
    )


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


def consumer_for(
    pool: asyncpg.Pool,
    bootstrap: str,
    topic: str,
    *,
    handler: Handler[None] = record_effect,
    max_attempts: int = 5,
    backoff_base: float = 0.2,
    backoff_max: float = 5.0,
) -> EventConsumer[None]:
    """A consumer in a group of its own, with the fast group timings Tansu needs."""
    return EventConsumer(
        pool,
        bootstrap,
        f"g-{uuid.uuid4().hex[:8]}",
        None,
        [on(topic, handler)],
        max_attempts=max_attempts,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
    )


@pytest.fixture
async def effects_db(postgres_dsn: str, fresh_schema: str) -> AsyncIterator[asyncpg.Pool]:
    await db.migrate(postgres_dsn, fresh_schema, [EFFECTS_MIGRATIONS])
    pool = await db.create_pool(postgres_dsn, fresh_schema, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    name = f"test.{uuid.uuid4().hex[:12]}"
    await kafka.ensure_topics(kafka_bootstrap, [name, f"{name}.dlq"], partitions=3)
    return name
