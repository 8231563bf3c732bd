"""Outbox -> Kafka -> inbox on the real broker: every event once, in order per key,
through relay restarts and a broker that stops answering for a while."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from plugboard_servicekit import kafka, outbox
from plugboard_servicekit.db import Connection
from plugboard_servicekit.outbox import OutboxRelay
from plugboard_servicekit.subscriptions import Event

from .conftest import consumer_for, make_event, record_effect, wait_until

pytestmark = pytest.mark.integration
KEYS = [f"aggregate-{n}" for n in range(12)]
CANARY = "canary-5ecr3t-in-an-exception"


async def stage(pool: asyncpg.Pool, topic: str, seqs: range) -> None:
    """Stage events the way a service does: in transactions, several per key."""
    for start in range(seqs.start, seqs.stop, 100):
        async with pool.acquire() as conn, conn.transaction():
            chunk = range(start, min(start + 100, seqs.stop))
            await outbox.add_many(conn, [make_event(topic, KEYS[s % len(KEYS)], s) for s in chunk])


async def effect_count(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM effects")


async def assert_once_in_order(pool: asyncpg.Pool, total: int) -> None:
    rows = await pool.fetch("SELECT event_id, key, seq FROM effects ORDER BY id")
    assert len(rows) == total
    assert len({row["event_id"] for row in rows}) == total
    assert sorted(row["seq"] for row in rows) == list(range(total))
    by_key: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_key[row["key"]].append(row["seq"])
    for key, seqs in by_key.items():
        assert seqs == sorted(seqs), f"events of {key} applied out of order"


async def test_every_event_once_in_order_through_relay_restart_and_broker_stall(
    effects_db: asyncpg.Pool,
    postgres_dsn: str,
    fresh_schema: str,
    kafka_bootstrap: str,
    broker_process,
    topic: str,
) -> None:
    consumer = consumer_for(effects_db, kafka_bootstrap, topic)
    await consumer.start()
    relay = OutboxRelay(postgres_dsn, fresh_schema, kafka_bootstrap, batch_size=200)
    relay_options = {"batch_size": 200, "request_timeout_ms": 1500, "retry_backoff": 0.2}
    try:
        await stage(effects_db, topic, range(0, 1500))
        relay.start()
        await wait_until(lambda: _at_least(effects_db, 200))
        await relay.stop()  # stopped mid-stream
        await stage(effects_db, topic, range(1500, 3000))
        relay = OutboxRelay(postgres_dsn, fresh_schema, kafka_bootstrap, **relay_options)
        relay.start()
        await wait_until(lambda: _at_least(effects_db, 1600))
        broker_process.pause()  # unreachable, in-memory data kept
        await stage(effects_db, topic, range(3000, 4000))
        await asyncio.sleep(5)  # > the relay's request timeout: sends fail, relay restarts
        broker_process.resume()
        await wait_until(lambda: _at_least(effects_db, 4000), timeout=90)
        await asyncio.sleep(1)  # a late duplicate would show up here
        await assert_once_in_order(effects_db, 4000)
        assert await effects_db.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        broker_process.resume()
        await relay.stop()
        await consumer.stop()


async def _at_least(pool: asyncpg.Pool, count: int) -> bool:
    return await effect_count(pool) >= count


async def test_duplicate_delivery_has_one_effect(
    effects_db: asyncpg.Pool, kafka_bootstrap: str, topic: str
) -> None:
    event = make_event(topic, "aggregate-dup", 0)
    sentinel = make_event(topic, "aggregate-dup", 1)
    producer = await kafka.create_producer(kafka_bootstrap)
    try:
        for message in (event, event, sentinel, event):
            await producer.send_and_wait(
                topic, message.model_dump_json().encode(), key=message.subject.encode()
            )
    finally:
        await producer.stop()
    consumer = consumer_for(effects_db, kafka_bootstrap, topic)
    await consumer.start()
    try:
        await wait_until(lambda: _at_least(effects_db, 2))
        await asyncio.sleep(1)
        rows = await effects_db.fetch("SELECT event_id, seq FROM effects ORDER BY id")
        assert [(r["event_id"], r["seq"]) for r in rows] == [(event.id, 0), (sentinel.id, 1)]
    finally:
        await consumer.stop()


async def test_poison_message_is_dead_lettered_and_partition_keeps_flowing(
    effects_db: asyncpg.Pool, kafka_bootstrap: str, topic: str
) -> None:
    async def handler(_: None, conn: Connection, event: Event) -> None:
        if event.data.get("poison"):
            raise RuntimeError(f"cannot apply this one: {CANARY}")
        await record_effect(None, conn, event)

    key = "aggregate-poison"  # one key: one partition, so later messages queue behind it
    messages = [
        make_event(topic, key, 0).model_dump_json().encode(),
        make_event(topic, key, 1, poison=True).model_dump_json().encode(),
        b"{not json at all",
        make_event(topic, key, 2).model_dump_json().encode(),
        make_event(topic, key, 3).model_dump_json().encode(),
    ]
    producer = await kafka.create_producer(kafka_bootstrap)
    try:
        for value in messages:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()
    consumer = consumer_for(
        effects_db, kafka_bootstrap, topic, handler=handler, max_attempts=3, backoff_base=0.01
    )
    await consumer.start()
    try:
        await wait_until(lambda: _at_least(effects_db, 3))
        seqs = [r["seq"] for r in await effects_db.fetch("SELECT seq FROM effects ORDER BY id")]
        assert seqs == [0, 2, 3]
        dead = await read_topic(kafka_bootstrap, f"{topic}.dlq", expected=2)
    finally:
        await consumer.stop()
    assert [m.value for m in dead] == [messages[1], messages[2]]
    poison_headers = dict(dead[0].headers)
    assert poison_headers["x-attempts"] == b"3"
    assert poison_headers["x-error"] == b"RuntimeError"
    assert all(CANARY.encode() not in value for m in dead for _, value in m.headers)
    assert poison_headers["x-original-topic"] == topic.encode()
    assert dict(dead[1].headers)["x-attempts"] == b"1"  # malformed: no point retrying


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list:
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await reader.start()
    found = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < expected and asyncio.get_running_loop().time() < deadline:
            batches = await reader.getmany(timeout_ms=500)
            for records in batches.values():
                found.extend(records)
    finally:
        await reader.stop()
    return sorted(found, key=lambda m: (m.partition, m.offset))
