"""Benchmark: outbox insert -> relay -> Kafka -> inbox consumer effect, next to raw
aiokafka produce+consume through the same broker in the same run.

Prints one JSON object. Target: the outbox pipeline reaches at least 50% of the raw
broker throughput. Usage: `uv run python bench/outbox_relay.py [--events 20000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.ids import uuid7
from plugboard_servicekit import db, embedded, kafka, outbox
from plugboard_servicekit.consumer import EventConsumer
from plugboard_servicekit.db import Connection
from plugboard_servicekit.logging import configure_logging
from plugboard_servicekit.outbox import OutboxRelay
from plugboard_servicekit.subscriptions import on, on_batch

EFFECTS_SQL = """
CREATE TABLE effects (
    event_id   uuid PRIMARY KEY,
    seq        int NOT NULL,
    applied_at double precision NOT NULL DEFAULT EXTRACT(EPOCH FROM clock_timestamp())
);
"""
KEYS = 64
CHUNK = 500


def make_event(topic: str, seq: int) -> CloudEvent[dict[str, Any]]:
    return CloudEvent[dict[str, Any]](
        id=uuid7(),
        source="bench",
        type=topic,
        subject=f"aggregate-{seq % KEYS}",
        time=datetime.now(UTC),
        dataschema=None,
        orgid="org-bench",
        data={"seq": seq},
    )


async def record_effect(_: None, conn: Connection, event: CloudEvent[dict[str, Any]]) -> None:
    """A per-event handler: one statement per event."""
    await conn.execute(
        "INSERT INTO effects (event_id, seq) VALUES ($1, $2)", event.id, event.data["seq"]
    )


async def record_effects(
    _: None, conn: Connection, events: Sequence[CloudEvent[dict[str, Any]]]
) -> None:
    """A batch handler: one set-based statement per partition batch."""
    await conn.execute(
        "INSERT INTO effects (event_id, seq) SELECT * FROM unnest($1::uuid[], $2::int[])",
        [event.id for event in events],
        [event.data["seq"] for event in events],
    )


async def raw_broker(bootstrap: str, events: int) -> dict[str, float]:
    """Produce `events` CloudEvents (acks=all) and consume and parse them back: the same
    per-event serialisation work as the pipeline, without database or outbox."""
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(bootstrap, [topic])
    staged = [make_event(topic, n) for n in range(events)]
    consumer = kafka.create_consumer(
        bootstrap,
        f"bench-{uuid.uuid4().hex[:8]}",
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
    )
    consumer.subscribe([topic])
    await consumer.start()
    producer = await kafka.create_producer(bootstrap)
    started = time.perf_counter()
    futures = [
        await producer.send(
            topic, ev.model_dump_json(by_alias=True).encode(), key=ev.subject.encode()
        )
        for ev in staged
    ]
    await asyncio.gather(*futures)
    received = 0
    while received < events:
        batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
        for records in batches.values():
            received += len(
                [CloudEvent[dict[str, Any]].model_validate_json(r.value or b"") for r in records]
            )
    elapsed = time.perf_counter() - started
    await producer.stop()
    await consumer.stop()
    return {"seconds": round(elapsed, 3), "events_per_second": round(events / elapsed, 1)}


async def outbox_pipeline(
    dsn: str, bootstrap: str, events: int, migrations: Path, *, batch: bool
) -> dict[str, Any]:
    """Stage events in transactions of 500, relay them, apply them with the inbox."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    topic = f"bench.outbox.{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(bootstrap, [topic, f"{topic}.dlq"])
    await db.migrate(dsn, schema, [migrations])
    pool = await db.create_pool(dsn, schema, max_size=10)
    subscription = on_batch(topic, record_effects) if batch else on(topic, record_effect)
    consumer = EventConsumer(
        pool,
        bootstrap,
        f"bench-{schema}",
        None,
        [subscription],
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
    )
    await consumer.start()
    relay = OutboxRelay(dsn, schema, bootstrap)
    relay.start()
    staged = [make_event(topic, n) for n in range(events)]
    committed_at: list[float] = []
    started = time.perf_counter()
    for start in range(0, events, CHUNK):
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add_many(conn, staged[start : start + CHUNK])
        committed_at.append(time.time())
    while await pool.fetchval("SELECT count(*) FROM effects") < events:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    rows = await pool.fetch("SELECT seq, applied_at FROM effects")
    await relay.stop()
    await consumer.stop()
    await pool.close()
    latencies = sorted(r["applied_at"] - committed_at[r["seq"] // CHUNK] for r in rows)
    return {
        "seconds": round(elapsed, 3),
        "events_per_second": round(events / elapsed, 1),
        "commit_to_effect_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "commit_to_effect_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
    }


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of the repeats: the least disturbed by other work on the machine."""
    return max(runs, key=lambda run: run["events_per_second"])


async def main(events: int, repeat: int) -> dict[str, Any]:
    configure_logging("bench", "WARNING", stream=sys.stderr)  # stdout is the JSON report
    workdir = embedded.server_tempdir("plugboard-bench-")
    migrations = workdir / "migrations"
    migrations.mkdir()
    (migrations / "0001_effects.sql").write_text(EFFECTS_SQL)
    postgres = embedded.start_postgres(workdir / "pg")
    broker = embedded.start_tansu()
    try:
        raw = best([await raw_broker(broker.bootstrap, events) for _ in range(repeat)])
        pipeline = best(
            [
                await outbox_pipeline(
                    postgres.dsn, broker.bootstrap, events, migrations, batch=True
                )
                for _ in range(repeat)
            ]
        )
        per_event = await outbox_pipeline(
            postgres.dsn, broker.bootstrap, events, migrations, batch=False
        )
    finally:
        broker.stop()
        postgres.stop()
    ratio = pipeline["events_per_second"] / raw["events_per_second"]
    return {
        "benchmark": "outbox_relay",
        "events": events,
        "repeats": repeat,
        "raw_aiokafka_produce_consume": raw,
        "outbox_to_inbox_effect_batch_handler": pipeline,
        "outbox_to_inbox_effect_per_event_handler": per_event,
        "ratio": round(ratio, 3),
        "target_ratio": 0.5,
        "meets_target": ratio >= 0.5,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.events, args.repeat)), indent=2))
