"""A database outage is not the events' fault: the consumer waits and applies them
once the database is back, and dead-letters nothing.

The dead-letter topic is read from the offsets taken before the events were sent,
up to a sentinel produced at the check, so "nothing dead-lettered" is a reading."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugboard_servicekit import db, embedded, kafka

from .conftest import (
    EFFECTS_MIGRATIONS,
    TopicProbe,
    consumer_for,
    failed_attempts,
    make_event,
    wait_until,
)

pytestmark = pytest.mark.integration


async def test_database_outage_delays_but_never_dead_letters(
    kafka_bootstrap: str, topic: str, server_tmp_path: Path
) -> None:
    postgres = embedded.start_postgres(server_tmp_path / "pg")
    schema = "outage"
    try:
        await db.migrate(postgres.dsn, schema, [EFFECTS_MIGRATIONS])
        pool = await db.create_pool(postgres.dsn, schema, min_size=0, max_size=4)
        consumer = consumer_for(
            pool, kafka_bootstrap, topic, max_attempts=2, backoff_base=0.01, backoff_max=0.5
        )
        await consumer.start()
        dead_letters = await TopicProbe(kafka_bootstrap, f"{topic}.dlq").start()
        try:
            postgres.stop()  # a real outage: the server is gone
            events = [make_event(topic, "aggregate-outage", seq) for seq in range(5)]
            producer = await kafka.create_producer(kafka_bootstrap)
            try:
                for event in events:
                    await producer.send_and_wait(
                        topic, event.model_dump_json().encode(), key=event.subject.encode()
                    )
            finally:
                await producer.stop()
            await wait_until(lambda: failed_attempts(topic) >= 4 * 2)  # 4x max_attempts
            assert await dead_letters.records() == []

            postgres = embedded.start_postgres(server_tmp_path / "pg")  # same data, same socket

            async def all_applied() -> bool:
                return await pool.fetchval("SELECT count(*) FROM effects") == len(events)

            await wait_until(all_applied, timeout=60)
            seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM effects ORDER BY id")]
            assert seqs == [0, 1, 2, 3, 4]
            assert await dead_letters.records() == []
        finally:
            await dead_letters.stop()
            await consumer.stop()
            await pool.close()
    finally:
        postgres.stop()
