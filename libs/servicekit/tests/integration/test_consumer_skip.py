"""Skip vs retry vs dead letter: a permanent domain error is recorded as skipped at
the first attempt (inbox row, metric, no effect, no dead letter); a non-permanent
one (Unavailable) is retried and dead-lettered like any other failure."""

from __future__ import annotations

from collections import Counter
from typing import Any

import asyncpg
import pytest
from plugboard_contracts.envelope import CloudEvent
from plugboard_servicekit.db import Connection
from plugboard_servicekit.errors import NotFound, Unavailable

from .conftest import (
    TopicProbe,
    consumed,
    consumer_for,
    make_event,
    produce,
    record_effect,
    wait_until,
)

pytestmark = pytest.mark.integration


async def test_permanent_errors_are_skipped_and_transient_ones_retried(
    effects_db: asyncpg.Pool, kafka_bootstrap: str, topic: str
) -> None:
    calls: Counter[int] = Counter()

    async def handler(_: None, conn: Connection, event: CloudEvent[dict[str, Any]]) -> None:
        calls[event.data["seq"]] += 1
        await record_effect(None, conn, event)  # rolled back when it raises below
        if event.data.get("missing"):
            raise NotFound("no such credential")
        if event.data.get("later"):
            raise Unavailable("dependency down", retry_after=1)

    key = "agg-skip"  # one partition: the later events queue behind the failing ones
    missing = make_event(topic, key, 1, missing=True)
    later = make_event(topic, key, 2, later=True)
    events = [make_event(topic, key, 0), missing, later, make_event(topic, key, 3)]
    consumer = consumer_for(
        effects_db, kafka_bootstrap, topic, handler=handler, max_attempts=3, backoff_base=0.01
    )
    dead_letters = await TopicProbe(kafka_bootstrap, f"{topic}.dlq").start()
    await consumer.start()
    try:
        await produce(kafka_bootstrap, topic, events)

        async def settled() -> bool:
            return await effects_db.fetchval("SELECT count(*) FROM effects") == 2 and bool(
                consumed(topic, "dead_lettered")
            )

        await wait_until(settled)
        seqs = [r["seq"] for r in await effects_db.fetch("SELECT seq FROM effects ORDER BY id")]
        assert seqs == [0, 3]
        dead = await dead_letters.records()
    finally:
        await dead_letters.stop()
        await consumer.stop()
    assert calls[1] == 1 + 1  # the failed batch, then once alone: never retried
    assert calls[2] - 3 in (0, 1)  # max_attempts alone (+1 if a batch reached it first)
    assert consumed(topic, "skipped") == 1
    assert [record.value for record in dead] == [later.model_dump_json().encode()]
    assert dict(dead[0].headers)["x-error"] == b"Unavailable"
    inbox = {r["event_id"] for r in await effects_db.fetch("SELECT event_id FROM inbox")}
    assert missing.id in inbox  # a redelivery is a duplicate, not a second try
    assert later.id not in inbox
