"""Versions over the real broker: one topic per event type, a real consumer, an
aggregate's events published newest first, then every event once more (same ids
and republished ids); the end state is the newest one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
import pytest
from plugboard_contracts.envelope import CloudEvent
from plugboard_servicekit import kafka, versions
from plugboard_servicekit.consumer import EventConsumer
from plugboard_servicekit.db import Connection
from plugboard_servicekit.subscriptions import on, on_batch
from pydantic import BaseModel, ConfigDict

from .conftest import consumed, wait_until

pytestmark = pytest.mark.integration


class Thing(BaseModel):
    model_config = ConfigDict(extra="ignore")  # tolerant reader, as catalogue payloads

    thing_id: str
    version: int
    name: str | None = None


async def _upsert(conn: Connection, thing: Thing) -> None:
    await conn.execute(
        "INSERT INTO things (id, name, version) VALUES ($1, $2, $3) ON CONFLICT (id)"
        " DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version",
        thing.thing_id,
        thing.name,
        thing.version,
    )


async def on_created(_: None, conn: Connection, event: CloudEvent[Thing]) -> None:
    if await versions.advance(conn, "thing", event.data.thing_id, event.data.version):
        await _upsert(conn, event.data)


async def on_updated(_: None, conn: Connection, events: Sequence[CloudEvent[Thing]]) -> None:
    """A batch handler: one advance_many for the partition's events."""
    items = [(e.data.thing_id, e.data.version, False) for e in events]
    advanced = await versions.advance_many(conn, "thing", items)
    newest: dict[str, Thing] = {}
    for event in events:
        current = newest.get(event.data.thing_id)
        if current is None or event.data.version > current.version:
            newest[event.data.thing_id] = event.data
    for thing_id in advanced:
        await _upsert(conn, newest[thing_id])


async def on_deleted(_: None, conn: Connection, event: CloudEvent[Thing]) -> None:
    data = event.data
    if await versions.advance(conn, "thing", data.thing_id, data.version, deleted=True):
        await conn.execute("DELETE FROM things WHERE id = $1", data.thing_id)


def _event(topic: str, thing: str, version: int) -> CloudEvent[Thing]:
    data = Thing(thing_id=thing, version=version, name=f"{thing}-v{version}")
    return CloudEvent[Thing](source="tests", type=topic, subject=thing, orgid="o", data=data)


async def test_reverse_order_and_twice_over_ends_in_the_newest_state(
    effects_db: asyncpg.Pool, kafka_bootstrap: str
) -> None:
    base = f"test.{uuid.uuid4().hex[:10]}.thing"
    created, updated, deleted = f"{base}.created", f"{base}.updated", f"{base}.deleted"
    topics = [created, updated, deleted]
    await kafka.ensure_topics(kafka_bootstrap, [*topics, *(f"{t}.dlq" for t in topics)], 3)
    await effects_db.execute("CREATE TABLE things (id text PRIMARY KEY, name text, version int)")
    subscriptions = [
        on(created, on_created, payload=Thing),
        on_batch(updated, on_updated, payload=Thing),
        on(deleted, on_deleted, payload=Thing),
    ]
    consumer = EventConsumer(
        effects_db,
        kafka_bootstrap,
        f"g-{uuid.uuid4().hex[:8]}",
        None,
        subscriptions,
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
    )
    gone = [_event(created, "a", 1), _event(updated, "a", 2), _event(deleted, "a", 3)]
    kept = [_event(created, "b", 1), _event(updated, "b", 2), _event(updated, "b", 3)]
    sent = 0

    async def send(event: CloudEvent[Thing]) -> None:
        """Publish one event and wait until the consumer finished with it, so the
        consumer sees exactly this order."""
        nonlocal sent
        value = event.model_dump_json(by_alias=True).encode()
        await producer.send_and_wait(event.type, value, key=event.subject.encode())
        sent += 1
        await wait_until(lambda: _finished(topics) == sent)

    producer = await kafka.create_producer(kafka_bootstrap)
    await consumer.start()
    try:
        for event in [*reversed(gone), *reversed(kept)]:
            await send(event)
        for event in [*gone, *kept]:  # redelivered (same ids) and republished (new ids)
            for copy in (event, event.model_copy(update={"id": uuid.uuid4()})):
                value = copy.model_dump_json(by_alias=True).encode()
                await producer.send_and_wait(copy.type, value, key=copy.subject.encode())
        await wait_until(lambda: _finished(topics) == sent + 2 * (len(gone) + len(kept)))
    finally:
        await producer.stop()
        await consumer.stop()
    rows = await effects_db.fetch("SELECT id, name, version FROM things")
    assert [tuple(r) for r in rows] == [("b", "b-v3", 3)]
    tombstone = await effects_db.fetchrow(
        "SELECT version, deleted FROM aggregate_versions WHERE aggregate_id = 'a'"
    )
    assert tuple(tombstone or ()) == (3, True)
    assert sum(consumed(t, "duplicate") for t in topics) == len(gone) + len(kept)


def _finished(topics: list[str]) -> float:
    return sum(consumed(t, o) for t in topics for o in ("processed", "duplicate"))
