"""Idempotent event consumption: inbox, bounded retries, dead-letter topic.

Each partition's batch is applied in one database transaction together with the
inbox rows of its event ids, then exactly that partition's next offset is
committed. When a batch fails, its records are retried one by one with backoff so
a poison message is isolated, dead-lettered to `<topic>.dlq` after `max_attempts`,
and the partition moves on. Offsets are committed only after the effect (and the
dead letter) is durable: at-least-once delivery, exactly-once effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from opentelemetry import trace
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.topics import dlq_topic
from pydantic import ValidationError

from plugboard_servicekit import kafka, metrics, telemetry
from plugboard_servicekit.db import Connection
from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.tasks import cancel_and_wait, close_within

Event = CloudEvent[dict[str, Any]]
_EVENT_MODEL = Event  # parametrise once: subscripting per message is costly
Handler = Callable[[Connection, Event], Awaitable[None]]
BatchHandler = Callable[[Connection, Sequence[Event]], Awaitable[None]]
"""Applies a partition's new events at once (set-based SQL); same transaction rules."""

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
"""Our database being unreachable: never a reason to dead-letter an event."""

log = get_logger(__name__)
tracer = trace.get_tracer(__name__)
_MAX_ERROR_HEADER = 500


class EventConsumer:
    """Runs handlers for a set of topics under one consumer group."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bootstrap_servers: str,
        group_id: str,
        handlers: Mapping[str, Handler],
        *,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        max_attempts: int = 5,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        session_timeout_ms: int = 10000,
        heartbeat_interval_ms: int = 3000,
        inbox_retention: timedelta = timedelta(days=7),
    ) -> None:
        self._pool = pool
        self._bootstrap = bootstrap_servers
        self._handlers = dict(handlers)
        self._batch_handlers = dict(batch_handlers or {})
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._new_consumer = lambda: kafka.create_consumer(
            bootstrap_servers,
            group_id,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
        )
        self._consumer: AIOKafkaConsumer = self._new_consumer()
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._inbox_retention = inbox_retention
        self._next_prune = 0.0

    async def start(self) -> None:
        """Join the group and start consuming in the background; may be retried."""
        await self.stop()
        self._consumer = self._new_consumer()
        self._producer = await kafka.create_producer(self._bootstrap)
        self._consumer.subscribe([*self._handlers, *self._batch_handlers])
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="event-consumer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await close_within(self._consumer.stop())
        if self._producer is not None:
            await close_within(self._producer.stop())
            self._producer = None

    async def _run(self) -> None:
        """Poll forever; an unexpected error is logged and the loop goes on, because
        a dead consumer task would silently stop the service's event flow."""
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
                await asyncio.gather(*(self._process(tp, recs) for tp, recs in batches.items()))
                await self._prune_inbox()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; uncommitted records come back
                log.error("consumer_loop_error", error=type(exc).__name__)
                await asyncio.sleep(self._backoff_max)

    async def _prune_inbox(self) -> None:
        """Forget event ids older than the retention (longer than any redelivery can
        lag: Kafka's own retention), at most once an hour."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + 3600
        try:
            await self._pool.execute(
                "DELETE FROM inbox WHERE processed_at < now() - $1::interval",
                self._inbox_retention,
            )
        except Exception as exc:  # noqa: BLE001 - retried at the next prune
            log.warning("inbox_prune_failed", error=type(exc).__name__)

    async def _process(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        try:
            try:
                await self._apply(records)
            except Exception:  # noqa: BLE001 - isolate the failing record below
                for record in records:
                    await self._apply_with_retries(record)
        except Exception as exc:  # noqa: BLE001 - database or broker down: read again later
            log.warning("partition_batch_failed", topic=tp.topic, error=type(exc).__name__)
            with contextlib.suppress(IllegalStateError):  # revoked meanwhile: new owner reads
                self._consumer.seek(tp, records[0].offset)
            await asyncio.sleep(self._backoff_max)
            return
        await self._commit(tp, records[-1].offset + 1)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        """Commit this partition's exact position; after a rebalance the new owner
        re-reads from the last commit and the inbox skips what was applied."""
        try:
            await self._consumer.commit({tp: offset})
        except (CommitFailedError, KafkaError) as exc:
            log.warning("offset_commit_failed", topic=tp.topic, error=type(exc).__name__)

    async def _apply(self, records: Sequence[ConsumerRecord]) -> None:
        """Apply records in one transaction; the inbox drops already-seen ids."""
        events = [(record, _parse(record)) for record in records]
        topic = records[0].topic
        async with self._pool.acquire() as conn, conn.transaction():
            fresh_ids = await _record_in_inbox(conn, [ev.id for _, ev in events], topic)
            fresh: list[tuple[ConsumerRecord, Event]] = []
            for record, event in events:
                if event.id in fresh_ids:
                    fresh_ids.discard(event.id)  # a duplicate inside the same batch
                    fresh.append((record, event))
            if topic in self._batch_handlers:
                if fresh:
                    await self._batch_handlers[topic](conn, [event for _, event in fresh])
            else:
                for record, event in fresh:
                    await self._handle_one(conn, record, event)
        metrics.EVENTS_CONSUMED.labels(topic=topic, outcome="processed").inc(len(fresh))
        metrics.EVENTS_CONSUMED.labels(topic=topic, outcome="duplicate").inc(
            len(events) - len(fresh)
        )

    async def _handle_one(self, conn: Connection, record: ConsumerRecord, event: Event):
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=telemetry.extract_context(record.headers),
            kind=trace.SpanKind.CONSUMER,
        ):
            await self._handlers[record.topic](conn, event)

    async def _apply_with_retries(self, record: ConsumerRecord) -> None:
        """Retry one record; dead-letter it when the record itself is at fault. An
        outage of our own database is not the record's fault: it propagates, and the
        partition is read again later."""
        error: Exception | None = None
        attempts = 0
        while attempts < self._max_attempts:
            attempts += 1
            try:
                await self._apply([record])
                return
            except TRANSIENT_ERRORS:
                raise
            except (ValidationError, ValueError) as exc:
                error = exc  # a malformed envelope never gets better
                break
            except Exception as exc:  # noqa: BLE001 - retried, then dead-lettered
                error = exc
                metrics.EVENTS_FAILED.labels(topic=record.topic).inc()
                if attempts < self._max_attempts:
                    await asyncio.sleep(min(self._backoff_max, self._backoff_base * 2**attempts))
        assert error is not None
        await self._dead_letter(record, error, attempts)

    async def _dead_letter(self, record: ConsumerRecord, error: Exception, attempts: int) -> None:
        assert self._producer is not None
        description = describe_error(error)[:_MAX_ERROR_HEADER]
        headers = [
            *(record.headers or ()),
            ("x-error", description.encode()),
            ("x-attempts", str(attempts).encode()),
            ("x-original-topic", record.topic.encode()),
            ("x-original-partition", str(record.partition).encode()),
            ("x-original-offset", str(record.offset).encode()),
        ]
        await self._producer.send_and_wait(
            dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
        )
        metrics.EVENTS_CONSUMED.labels(topic=record.topic, outcome="dead_lettered").inc()
        log.error(
            "event_dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            error=type(error).__name__,
        )


def describe_error(error: Exception) -> str:
    """What went wrong, for the dead-letter header: the error type and, for invalid
    data, where and which rule; never the message text, which can quote the data."""
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['type']}"
            for item in error.errors()
        )
        return f"ValidationError: {problems}"
    return type(error).__name__


def _parse(record: ConsumerRecord) -> Event:
    if record.value is None:
        raise ValueError("empty message value")
    return _EVENT_MODEL.model_validate_json(record.value)


async def _record_in_inbox(conn: Connection, event_ids: Sequence[UUID], topic: str) -> set[UUID]:
    rows = await conn.fetch(
        "INSERT INTO inbox (event_id, topic)"
        " SELECT id, $2 FROM unnest($1::uuid[]) AS id ON CONFLICT DO NOTHING"
        " RETURNING event_id",
        event_ids,
        topic,
    )
    return {row["event_id"] for row in rows}
