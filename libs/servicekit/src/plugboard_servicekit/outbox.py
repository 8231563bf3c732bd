"""Transactional outbox: write events with the state they announce, publish them after.

`add` runs inside the caller's transaction, so an event exists exactly when its
state change committed. `OutboxRelay` is the only publisher: one leader per schema
(advisory lock) sends rows in id order through an idempotent producer, deletes what
Kafka acknowledged, and on any failure starts over from the oldest unsent row, so a
broker outage or a relay restart can duplicate (the inbox absorbs that) but never
lose or reorder events of one key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from plugboard_contracts.envelope import CloudEvent

from plugboard_servicekit import kafka, metrics, telemetry
from plugboard_servicekit.db import Connection, advisory_key, connect
from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.tasks import cancel_and_wait, close_within

log = get_logger(__name__)

_TRACE_HEADERS = ("traceparent", "tracestate")
"""What `add` stores in `headers` (W3C trace context) and the relay sends along."""
ROUND_BYTES = kafka.MAX_BATCH_BYTES * 9 // 10  # headroom for record framing
_COLUMNS = ("event_id", "topic", "key", "payload", "headers")
_INSERT = "INSERT INTO outbox (event_id, topic, key, payload, headers) VALUES ($1, $2, $3, $4, $5)"


def _row(event: CloudEvent[Any], headers: dict[str, str]) -> tuple[Any, ...]:
    payload = event.model_dump_json(by_alias=True).encode()
    return (event.id, event.type, event.subject, payload, headers)


def _require_transaction(conn: Connection) -> None:
    if not conn.is_in_transaction():
        raise RuntimeError("outbox events must be added inside the state change's transaction")


async def add(conn: Connection, event: CloudEvent[Any]) -> None:
    """Stage one event in the caller's transaction (topic = type, key = subject).

    Write (and so lock) the aggregate's row before adding its event: ids are taken
    at insert, and the lock is what makes id order the commit order of one key."""
    _require_transaction(conn)
    await conn.execute(_INSERT, *_row(event, telemetry.inject_traceparent()))


async def add_many(conn: Connection, events: Sequence[CloudEvent[Any]]) -> None:
    """Stage many events at once (bulk effects such as the expiry sweep)."""
    _require_transaction(conn)
    headers = telemetry.inject_traceparent()
    await conn.copy_records_to_table(
        "outbox", records=[_row(event, headers) for event in events], columns=_COLUMNS
    )


class OutboxRelay:
    """Publishes one schema's outbox to Kafka; safe to run in every replica."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        bootstrap_servers: str,
        *,
        batch_size: int = 2000,
        poll_interval: float = 1.0,
        retry_backoff: float = 0.5,
        request_timeout_ms: int = 15000,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._bootstrap = bootstrap_servers
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retry_backoff = retry_backoff
        self._request_timeout_ms = request_timeout_ms
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay:{self._schema}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        """Reconnect forever: a database or broker outage only delays publishing."""
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the relay must outlive any outage
                log.warning("outbox_relay_error", schema=self._schema, error=type(exc).__name__)
                self.is_leader = False
                await asyncio.sleep(self._retry_backoff)

    async def _lead(self) -> None:
        conn = await connect(self._dsn, self._schema)
        producer: AIOKafkaProducer | None = None
        try:
            await self._become_leader(conn)
            await conn.add_listener(f"{self._schema}_outbox", self._on_notify)
            producer = await kafka.create_producer(
                self._bootstrap, request_timeout_ms=self._request_timeout_ms
            )
            while True:
                self._wake.clear()  # a NOTIFY from now on means new rows after this read
                if not await self._publish_batch(conn, producer):
                    await self._report_lag(conn)
                    await self._wait_for_work()
        finally:
            self.is_leader = False
            if producer is not None:
                await close_within(producer.stop())
            await close_within(asyncio.shield(conn.close()))

    async def _become_leader(self, conn: asyncpg.Connection) -> None:
        """Only one relay per schema publishes, or two could interleave a key's events."""
        lock = advisory_key(f"outbox-relay:{self._schema}")
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock):
            await asyncio.sleep(self._poll_interval)
        self.is_leader = True
        log.info("outbox_relay_leader", schema=self._schema)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def _publish_batch(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        rows = await conn.fetch(
            "SELECT id, topic, key, payload, headers->>'traceparent' AS traceparent,"
            " headers->>'tracestate' AS tracestate FROM outbox ORDER BY id LIMIT $1",
            self._batch_size,
        )
        if not rows:
            return 0
        rows = _one_batch_per_partition(rows)
        futures = [
            await producer.send(
                row["topic"],
                value=row["payload"],
                key=row["key"].encode(),
                headers=[(name, row[name].encode()) for name in _TRACE_HEADERS if row[name]],
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        await conn.execute(
            "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
        )
        for topic, count in Counter(row["topic"] for row in rows).items():
            metrics.EVENTS_PUBLISHED.labels(topic=topic).inc(count)
        return len(rows)

    async def _report_lag(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)"
            " FROM outbox"
        )
        assert row is not None  # an aggregate always returns one row
        metrics.OUTBOX_PENDING.labels(service=self._schema).set(row[0])
        metrics.OUTBOX_OLDEST_AGE_SECONDS.labels(service=self._schema).set(float(row[1]))


def _one_batch_per_partition(rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
    """Keep a round within one producer batch per partition (the rows' bytes fit one
    batch), so a partition's round is delivered or failed as a whole. A failed round
    is sent again from its first row: a retry can duplicate, never reorder a key,
    even on a broker without idempotent producers."""
    total = 0
    for count, row in enumerate(rows):
        total += len(row["payload"]) + len(row["key"]) + 64
        if total > ROUND_BYTES and count > 0:
            return rows[:count]
    return rows
