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
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.ids import uuid7
from plugboard_servicekit import db, kafka, testing
from plugboard_servicekit.consumer import EventConsumer
from plugboard_servicekit.db import Connection
from plugboard_servicekit.subscriptions import Handler, on
from prometheus_client import REGISTRY

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


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool], timeout: float = 60.0
) -> None:
    """The kit's ``wait_until`` with this suite's longer default (group joins on Tansu)."""
    await testing.wait_until(predicate, timeout)


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


class TopicProbe:
    """Reads a topic from the end offsets taken at `start`, and proves it could read:
    `records()` puts a sentinel on every partition and reads until each one came
    back, so an empty answer means nothing arrived, not that nothing was read."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._reader = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self._partitions: list[TopicPartition] = []

    async def start(self) -> TopicProbe:
        await self._reader.start()
        await self._reader.topics()  # fetches the metadata
        numbers = sorted(self._reader.partitions_for_topic(self.topic) or ())
        assert numbers, f"{self.topic} has no partitions"
        self._partitions = [TopicPartition(self.topic, n) for n in numbers]
        self._reader.assign(self._partitions)
        ends = await self._reader.end_offsets(self._partitions)
        for partition in self._partitions:
            self._reader.seek(partition, ends[partition])
        return self

    async def stop(self) -> None:
        await self._reader.stop()

    async def records(self, timeout: float = 30.0) -> list[ConsumerRecord]:
        """Every record that arrived since the last call (sentinels left out)."""
        mark = uuid.uuid4().hex.encode()
        producer = await kafka.create_producer(self.bootstrap)
        try:
            for partition in self._partitions:
                await producer.send_and_wait(
                    self.topic,
                    b"sentinel",
                    partition=partition.partition,
                    headers=[(SENTINEL, mark)],
                )
        finally:
            await producer.stop()
        found: list[ConsumerRecord] = []
        pending = set(self._partitions)
        deadline = asyncio.get_running_loop().time() + timeout
        while pending:
            assert asyncio.get_running_loop().time() < deadline, "sentinels never came back"
            for tp, batch in (await self._reader.getmany(timeout_ms=200)).items():
                for record in batch:
                    if dict(record.headers).get(SENTINEL) == mark:
                        pending.discard(tp)
                    elif SENTINEL not in dict(record.headers):
                        found.append(record)
        return found


SENTINEL = "x-test-sentinel"


def failed_attempts(topic: str) -> float:
    """`plugboard_events_failed_total` of a topic in this process."""
    return REGISTRY.get_sample_value("plugboard_events_failed_total", {"topic": topic}) or 0.0


def consumed(topic: str, outcome: str) -> float:
    labels = {"topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("plugboard_events_consumed_total", labels) or 0.0


async def produce(
    bootstrap: str, topic: str, events: list[CloudEvent[Any]], partition: int | None = None
) -> None:
    producer = await kafka.create_producer(bootstrap)
    try:
        for event in events:
            await producer.send_and_wait(
                topic,
                event.model_dump_json(by_alias=True).encode(),
                key=event.subject.encode(),
                partition=partition,
            )
    finally:
        await producer.stop()
