"""Transactional outbox: write events with the state they announce, publish them after.

`add` runs inside the caller's transaction, so an event exists exactly when its
state change committed. `OutboxRelay` is the only publisher: one leader per schema
(advisory lock) sends rows in id order through an idempotent producer, deletes what
Kafka acknowledged, and on any failure starts over from the oldest unsent row, so a
broker outage or a relay restart can duplicate (the inbox absorbs that) but never
lose or reorder events of one key.

A row the broker can never accept (too large, invalid topic) is parked in
`outbox_dead_letters` with the reason and counted; the rows behind it keep
publishing, and only rows with its topic and key wait for it to be requeued or
discarded. Lag gauges (pending rows, oldest age) are refreshed on a timer by every
replica, so they move during a backlog or an outage too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from plugboard_contracts.envelope import CloudEvent

from plugboard_servicekit import kafka, metrics, telemetry
from plugboard_servicekit.db import Connection, Keepalive, advisory_key, connect
from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.tasks import cancel_and_wait, close_within, wait_event

log = get_logger(__name__)

_TRACE_HEADERS = ("traceparent", "tracestate")
"""What `add` stores in `headers` (W3C trace context) and the relay sends along."""
ROUND_BYTES = 8 * kafka.MAX_BATCH_BYTES
"""What one round sends at most, all partitions together (each partition gets one
batch of at most `kafka.MAX_BATCH_BYTES`)."""
_COLUMNS = ("event_id", "topic", "key", "payload", "headers")
_INSERT = "INSERT INTO outbox (event_id, topic, key, payload, headers) VALUES ($1, $2, $3, $4, $5)"
_NEXT_ROWS = (
    "SELECT id, topic, key, payload, headers->>'traceparent' AS traceparent,"
    " headers->>'tracestate' AS tracestate FROM outbox o"
    " WHERE NOT EXISTS (SELECT 1 FROM outbox_dead_letters d"
    "  WHERE d.topic = o.topic AND d.key = o.key)"
    " ORDER BY id LIMIT $1"
)
_DELETE = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
_PARK = (
    "WITH moved AS (DELETE FROM outbox WHERE id = $1 RETURNING *)"
    " INSERT INTO outbox_dead_letters"
    " (id, event_id, topic, key, payload, headers, created_at, reason)"
    " SELECT id, event_id, topic, key, payload, headers, created_at, $2 FROM moved"
)
_REQUEUE = (
    "WITH moved AS (DELETE FROM outbox_dead_letters WHERE id = $1 RETURNING *)"
    " INSERT INTO outbox (id, event_id, topic, key, payload, headers, created_at)"
    " SELECT id, event_id, topic, key, payload, headers, created_at FROM moved RETURNING id"
)
_DISCARD = "DELETE FROM outbox_dead_letters WHERE id = $1 RETURNING id"
_LAG = (
    "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)"
    " FROM outbox"
)
UNSENDABLE_ERRORS: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    CorruptRecordException,
    InvalidTopicError,
    InvalidTimestampError,
    UnsupportedForMessageFormatError,
)
"""The broker refuses this record itself, however often it is sent. Anything else
(timeouts, leader changes, an outage, producer state) is retried from the oldest row."""
_MAX_REASON = 500


def _row(event: CloudEvent[Any], headers: dict[str, str]) -> tuple[Any, ...]:
    payload = event.model_dump_json(by_alias=True).encode()
    return (event.id, event.type, event.subject, payload, headers)


def _headers(row: asyncpg.Record) -> list[tuple[str, bytes | None]]:
    return [(name, row[name].encode()) for name in _TRACE_HEADERS if row[name]]


async def _partition(producer: AIOKafkaProducer, topic: str, key: bytes) -> int:
    return kafka.partition_for(key, sorted(await producer.partitions_for(topic)))


async def _send(producer: AIOKafkaProducer, row: asyncpg.Record) -> Any:
    key = row["key"].encode()
    return await producer.send(
        row["topic"],
        value=row["payload"],
        key=key,
        partition=await _partition(producer, row["topic"], key),
        headers=_headers(row),
    )


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


async def requeue_dead_letter(conn: Connection, outbox_id: int) -> bool:
    """Put a parked row back in the outbox at its old place (after raising a size
    limit, say); the rows of its key that waited follow it. False if not parked."""
    return await conn.fetchval(_REQUEUE, outbox_id) is not None


async def discard_dead_letter(conn: Connection, outbox_id: int) -> bool:
    """Give a parked row up for good; the rows of its key that waited go on."""
    return await conn.fetchval(_DISCARD, outbox_id) is not None


class OutboxRelay:
    """Publishes one schema's outbox to Kafka; safe to run in every replica."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        bootstrap_servers: str,
        *,
        batch_size: int = 10000,
        poll_interval: float = 1.0,
        retry_backoff: float = 0.5,
        request_timeout_ms: int = 15000,
        lag_interval: float = 5.0,
        keepalive: Keepalive | None = None,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._bootstrap = bootstrap_servers
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retry_backoff = retry_backoff
        self._request_timeout_ms = request_timeout_ms
        self._lag_interval = lag_interval
        self._keepalive = keepalive or Keepalive()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._careful_until: int | None = None
        self.is_leader = False
        self.leader_connection: asyncpg.Connection | None = None
        """The connection holding the leader lock while this relay leads (for checks)."""

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"outbox-relay:{self._schema}"),
            asyncio.create_task(self._report_lag(), name=f"outbox-lag:{self._schema}"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []

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
        conn = await connect(self._dsn, self._schema, keepalive=self._keepalive)
        producer: AIOKafkaProducer | None = None
        try:
            await self._become_leader(conn)
            await conn.add_listener(f"{self._schema}_outbox", self._on_notify)
            producer = await kafka.create_producer(
                self._bootstrap, request_timeout_ms=self._request_timeout_ms
            )
            while True:
                self._wake.clear()  # a NOTIFY from now on means new rows after this read
                if not await self._publish_round(conn, producer):
                    await self._wait_for_work()
        finally:
            self.is_leader = False
            self.leader_connection = None
            if producer is not None:
                await close_within(producer.stop())
            await close_within(asyncio.shield(conn.close()))

    async def _become_leader(self, conn: asyncpg.Connection) -> None:
        """Only one relay per schema publishes, or two could interleave a key's events."""
        lock = advisory_key(f"outbox-relay:{self._schema}")
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock):
            await asyncio.sleep(self._poll_interval)
        self.is_leader = True
        self.leader_connection = conn
        log.info("outbox_relay_leader", schema=self._schema)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _wait_for_work(self) -> None:
        await wait_event(self._wake, self._poll_interval)

    async def _publish_round(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        """Send the oldest rows (not waiting behind a parked row of their key); after a
        round with an unsendable row, the rows up to it go one at a time to find it."""
        rows = await conn.fetch(_NEXT_ROWS, self._batch_size)
        if not rows:
            return 0
        careful = self._careful_until
        if careful is not None and rows[0]["id"] <= careful:
            return await self._publish_one_by_one(
                conn, producer, [r for r in rows if r["id"] <= careful]
            )
        self._careful_until = None
        sent, refused = await _send_round(producer, rows)
        await conn.execute(_DELETE, [r["id"] for r in sent])
        _count_published(sent)
        if refused:
            self._careful_until = max(r["id"] for r in refused)
        return len(rows)

    async def _publish_one_by_one(
        self, conn: asyncpg.Connection, producer: AIOKafkaProducer, rows: Sequence[asyncpg.Record]
    ) -> int:
        """Send each row alone: a row refused alone is the unsendable one; park it,
        and hold the rest of its key back."""
        parked: set[tuple[str, str]] = set()
        for row in rows:
            if (row["topic"], row["key"]) in parked:
                continue
            try:
                await (await _send(producer, row))
            except UNSENDABLE_ERRORS as exc:
                await self._park(conn, row, exc)
                parked.add((row["topic"], row["key"]))
                continue
            await conn.execute(_DELETE, [row["id"]])
            _count_published([row])
        return len(rows)

    async def _park(self, conn: asyncpg.Connection, row: asyncpg.Record, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"[:_MAX_REASON]
        await conn.execute(_PARK, row["id"], reason)
        metrics.OUTBOX_DEAD_LETTERS.labels(service=self._schema, topic=row["topic"]).inc()
        log.error(
            "outbox_row_dead_lettered",
            schema=self._schema,
            topic=row["topic"],
            outbox_id=row["id"],
            error=type(error).__name__,
        )

    async def _report_lag(self) -> None:
        """Refresh the lag gauges every `lag_interval`, whatever the publisher is doing
        (stuck on a broker outage, working off a backlog, not the leader)."""
        conn: asyncpg.Connection | None = None
        try:
            while True:
                try:
                    conn = conn or await connect(self._dsn, self._schema)
                    row = await conn.fetchrow(_LAG, timeout=self._lag_interval)
                    assert row is not None  # an aggregate always returns one row
                    metrics.OUTBOX_PENDING.labels(service=self._schema).set(row[0])
                    age = float(row[1])
                    metrics.OUTBOX_OLDEST_AGE_SECONDS.labels(service=self._schema).set(age)
                except Exception as exc:  # noqa: BLE001 - the next tick tries again
                    log.warning("outbox_lag_failed", schema=self._schema, error=type(exc).__name__)
                    if conn is not None:
                        conn.terminate()
                    conn = None
                await asyncio.sleep(self._lag_interval)
        finally:
            if conn is not None:
                await close_within(asyncio.shield(conn.close()))


def _count_published(rows: Sequence[asyncpg.Record]) -> None:
    for topic, count in Counter(row["topic"] for row in rows).items():
        metrics.EVENTS_PUBLISHED.labels(topic=topic).inc(count)


@dataclass
class _Batch:
    """One partition's share of a round: a closed producer batch and its rows."""

    builder: BatchBuilder
    rows: list[asyncpg.Record] = field(default_factory=list)


async def _send_round(
    producer: AIOKafkaProducer, rows: Sequence[asyncpg.Record]
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """The rows acknowledged and the rows refused as unsendable, sending one batch per
    partition: a partition's round is delivered or failed as a whole, so a failed round
    sent again from its first row can duplicate, never reorder a key (even on a broker
    without idempotent producers). A retriable failure raises and the relay starts
    over from the oldest row."""
    batches, refused = await _fill_batches(producer, rows)
    futures = []
    for (topic, partition), batch in batches.items():
        batch.builder.close()  # complete: sent at once, no linger
        futures.append(await producer.send_batch(batch.builder, topic, partition=partition))
    results = await asyncio.gather(*futures, return_exceptions=True)
    sent: list[asyncpg.Record] = []
    for batch, result in zip(batches.values(), results, strict=True):
        if isinstance(result, UNSENDABLE_ERRORS):
            refused += batch.rows  # the whole partition batch was refused
        elif isinstance(result, BaseException):
            raise result
        else:
            sent += batch.rows
    return sent, refused


async def _fill_batches(
    producer: AIOKafkaProducer, rows: Sequence[asyncpg.Record]
) -> tuple[dict[tuple[str, int], _Batch], list[asyncpg.Record]]:
    """The rows in id order, each appended to its partition's batch. A full batch takes
    no later row of its partition this round (they wait for the next, in order); a row
    too large for any request ends the round there and is returned as refused, so no
    later row of its key goes out before it."""
    batches: dict[tuple[str, int], _Batch] = {}
    full: set[tuple[str, int]] = set()
    partitions: dict[str, list[int]] = {}
    total = 0
    for row in rows:
        topic, key, value, headers = (
            row["topic"],
            row["key"].encode(),
            row["payload"],
            _headers(row),
        )
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        if size > kafka.MAX_REQUEST_BYTES:
            return batches, [row]
        total += size
        if total > ROUND_BYTES and batches:
            break
        if topic not in partitions:
            partitions[topic] = sorted(await producer.partitions_for(topic))
        tp = (topic, kafka.partition_for(key, partitions[topic]))
        if tp in full:
            continue
        batch = batches.get(tp) or batches.setdefault(tp, _Batch(producer.create_batch()))
        if batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            full.add(tp)  # the first record always fits, so the batch holds at least one
            continue
        batch.rows.append(row)
    return batches, []
