"""The relay's rounds: one producer batch per partition, so one round carries every
row that fits its partition's batch (not one batch's bytes for all partitions
together), a full partition defers only its own later rows, and every key lands on
the partition Kafka's default partitioner picks."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from plugboard_contracts.envelope import CloudEvent
from plugboard_servicekit import db, kafka, outbox
from plugboard_servicekit.outbox import OutboxRelay

from .conftest import TopicProbe, make_event

pytestmark = pytest.mark.integration
BLOB = "x" * 900  # rows of about 1 KB


@asynccontextmanager
async def _leader_side(
    dsn: str, schema: str, bootstrap: str
) -> AsyncIterator[tuple[asyncpg.Connection, AIOKafkaProducer]]:
    """What a leading relay holds: its connection and its producer."""
    conn = await db.connect(dsn, schema)
    producer = await kafka.create_producer(bootstrap)
    try:
        yield conn, producer
    finally:
        await producer.stop()
        await conn.close()


async def _stage(pool: asyncpg.Pool, events: Sequence[CloudEvent[Any]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add_many(conn, events)


def _by_key(records: list[ConsumerRecord]) -> dict[str, list[int]]:
    """Each key's seqs in the order a consumer of its partition reads them."""
    seqs: dict[str, list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.key and record.value:
            seqs.setdefault(record.key.decode(), []).append(json.loads(record.value)["data"]["seq"])
    return seqs


def test_murmur2_is_kafkas() -> None:
    for length in [*range(0, 70), 36, 36, 36]:
        data = os.urandom(length)
        assert kafka.murmur2(data) == aiokafka_murmur2(data)


async def test_one_round_sends_a_batch_to_every_partition(
    effects_db: asyncpg.Pool, postgres_dsn: str, fresh_schema: str, kafka_bootstrap: str, topic: str
) -> None:
    """2 MB over 3 partitions: more than one producer batch in all, less than one per
    partition, so a single round publishes every row (in per-key order, on the
    partition Kafka's default partitioner picks)."""
    staged = [make_event(topic, f"k{n % 60}", n, blob=BLOB) for n in range(1800)]
    await _stage(effects_db, staged)
    probe = await TopicProbe(kafka_bootstrap, topic).start()
    relay = OutboxRelay(postgres_dsn, fresh_schema, kafka_bootstrap)
    try:
        async with _leader_side(postgres_dsn, fresh_schema, kafka_bootstrap) as (conn, producer):
            partitions = sorted(await producer.partitions_for(topic))
            assert await relay._publish_round(conn, producer) == len(staged)
        assert await effects_db.fetchval("SELECT count(*) FROM outbox") == 0
        records = await probe.records()
    finally:
        await probe.stop()
    assert _by_key(records) == {f"k{k}": list(range(k, 1800, 60)) for k in range(60)}
    for record in records:
        assert record.key is not None
        assert record.partition == kafka.partition_for(record.key, partitions)


async def test_a_full_partition_defers_only_its_own_later_rows(
    effects_db: asyncpg.Pool, postgres_dsn: str, fresh_schema: str, kafka_bootstrap: str, topic: str
) -> None:
    """1.5 MB for one key (more than one batch) staged before small rows of keys on the
    other partitions: the first round sends the hot key's head and every other row;
    the hot key's tail waits for the next round, in order."""
    async with _leader_side(postgres_dsn, fresh_schema, kafka_bootstrap) as (conn, producer):
        partitions = sorted(await producer.partitions_for(topic))
        hot_partition = kafka.partition_for(b"hot", partitions)
        others = [f"o{n}" for n in range(40)]
        others = [k for k in others if kafka.partition_for(k.encode(), partitions) != hot_partition]
        hot = [make_event(topic, "hot", n, blob=BLOB) for n in range(1500)]
        await _stage(effects_db, [*hot, *(make_event(topic, k, 0) for k in others)])
        probe = await TopicProbe(kafka_bootstrap, topic).start()
        relay = OutboxRelay(postgres_dsn, fresh_schema, kafka_bootstrap)
        try:
            await relay._publish_round(conn, producer)
            left = await effects_db.fetch("SELECT key, payload FROM outbox ORDER BY id")
            assert left, "1.5 MB of one key cannot fit one batch"
            assert {r["key"] for r in left} == {"hot"}
            tail = [json.loads(r["payload"])["data"]["seq"] for r in left]
            assert tail == list(range(1500 - len(left), 1500))
            while await relay._publish_round(conn, producer):
                pass
            records = await probe.records()
        finally:
            await probe.stop()
    assert _by_key(records) == {"hot": list(range(1500)), **{k: [0] for k in others}}
