"""Idempotent event consumption: typed handlers, inbox, skips, retries, dead letters.

A service subscribes with `on(topic, handler)` / `on_batch(topic, handler)`
(`subscriptions`); the
handler gets the service's deps, a connection inside the consumer's transaction
and the event already validated against the topic's catalogue payload (tolerant:
unknown fields are ignored by the payload models).

Each partition is worked on by its own task while the poll loop keeps polling
(the partition is paused meanwhile), so one partition's retries never stall the
others nor the group's heartbeat and poll interval. A partition's batch is applied
in one transaction with the inbox rows of its event ids, then exactly that
partition's next offset is committed. When a batch fails, its records are applied
one by one so a poison message is isolated:
- a permanent `DomainError` (NotFound, Invalid, ...) is recorded as skipped (inbox
  row, log line, metric) because retrying cannot fix it;
- our own database's state (`db.is_transient`: unreachable, read-only, deadlock,
  disk full, cancelled) is never the event's fault: the batch is retried with
  backoff until the database is healthy, nothing is dead-lettered;
- anything else is retried `max_attempts` times, then sent to `<topic>.dlq`.
Revoked partitions stop their work at once (rebalance listener); the new owner
reads from the last commit and the inbox drops what was already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from opentelemetry import trace
from plugboard_contracts.envelope import CloudEvent
from pydantic import ValidationError

from plugboard_servicekit import kafka, metrics, telemetry
from plugboard_servicekit.db import Connection, is_transient
from plugboard_servicekit.errors import DomainError
from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.subscriptions import DepsT, Subscription
from plugboard_servicekit.tasks import cancel_and_wait, close_within

log = get_logger(__name__)
tracer = trace.get_tracer(__name__)
_MAX_ERROR_HEADER = 500


@dataclass(frozen=True)
class _Route(Generic[DepsT]):
    subscription: Subscription[DepsT]
    model: type[CloudEvent[Any]]


Parsed = tuple[ConsumerRecord, CloudEvent[Any] | Exception]


class EventConsumer(Generic[DepsT]):
    """Runs a service's subscriptions under one consumer group."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bootstrap_servers: str,
        group_id: str,
        deps: DepsT,
        subscriptions: Sequence[Subscription[DepsT]],
        *,
        max_attempts: int = 5,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        session_timeout_ms: int = 10000,
        heartbeat_interval_ms: int = 3000,
        inbox_retention: timedelta = timedelta(days=7),
    ) -> None:
        self._pool = pool
        self._bootstrap = bootstrap_servers
        self._deps = deps
        self._routes = _routes(subscriptions)
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
        self._workers: dict[TopicPartition, asyncio.Task[None]] = {}
        self._inbox_retention = inbox_retention
        self._next_prune = 0.0

    @property
    def topics(self) -> list[str]:
        return list(self._routes)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member owns now (readiness bodies, tests)."""
        return set(self._consumer.assignment())

    async def start(self) -> None:
        """Join the group and start consuming in the background; may be retried."""
        await self.stop()
        self._consumer = self._new_consumer()
        self._producer = await kafka.create_producer(self._bootstrap)
        self._consumer.subscribe(list(self._routes), listener=_StopRevoked(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="event-consumer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.stop_partitions(list(self._workers))
        await _close_kafka_consumer(self._consumer)
        if self._producer is not None:
            await close_within(self._producer.stop())
            self._producer = None

    async def stop_partitions(self, partitions: Sequence[TopicPartition]) -> int:
        """Cancel the work on these partitions (revoked, or shutting down); their
        uncommitted records are read again by whoever owns them next."""
        tasks = [task for tp in partitions if (task := self._workers.pop(tp, None))]
        for task in tasks:
            await cancel_and_wait(task)
        return len(tasks)

    async def _run(self) -> None:
        """Poll forever and hand each partition's records to its own task; an
        unexpected error is logged and the loop goes on, because a dead consumer
        task would silently stop the service's event flow."""
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, records in batches.items():
                    self._dispatch(tp, records)
                await self._prune_inbox()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; uncommitted records come back
                log.error("consumer_loop_error", error=type(exc).__name__)
                await asyncio.sleep(self._backoff_max)

    def _dispatch(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Pause the partition while its task works, so the poll loop fetches no more
        of it and never waits for it."""
        self._consumer.pause(tp)
        previous = self._workers.get(tp)
        self._workers[tp] = asyncio.create_task(
            self._work(tp, records, previous), name=f"consume:{tp.topic}:{tp.partition}"
        )

    async def _work(
        self,
        tp: TopicPartition,
        records: list[ConsumerRecord],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Settle the records (retrying while our database is sick), commit, resume."""
        if previous is not None and not previous.done():
            with contextlib.suppress(Exception):
                await previous
        delay = self._backoff_base
        while True:
            try:
                await self._process(self._routes[tp.topic], records)
                break
            except Exception as exc:  # noqa: BLE001 - our database or broker: try again later
                metrics.EVENTS_FAILED.labels(topic=tp.topic).inc()
                log.warning(
                    "partition_batch_failed",
                    topic=tp.topic,
                    partition=tp.partition,
                    error=type(exc).__name__,
                )
                await asyncio.sleep(delay)
                delay = min(self._backoff_max, delay * 2)
        await self._commit(tp, records[-1].offset + 1)
        if self._workers.get(tp) is asyncio.current_task():
            del self._workers[tp]
            with contextlib.suppress(KafkaError):  # revoked meanwhile: nothing to resume
                self._consumer.resume(tp)

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

    async def _process(self, route: _Route[DepsT], records: Sequence[ConsumerRecord]) -> None:
        """The whole batch in one transaction; on failure, record by record."""
        parsed: list[Parsed] = [(record, _parse(route, record)) for record in records]
        events = [(record, ev) for record, ev in parsed if isinstance(ev, CloudEvent)]
        if len(events) == len(parsed):
            try:
                await self._apply(route, events)
                return
            except Exception as exc:  # isolate the failing record below (unless transient)
                if is_transient(exc):
                    raise
        for item in parsed:
            await self._settle(route, item)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        """Commit this partition's exact position; after a rebalance the new owner
        re-reads from the last commit and the inbox skips what was applied."""
        try:
            await self._consumer.commit({tp: offset})
        except KafkaError as exc:
            log.warning("offset_commit_failed", topic=tp.topic, error=type(exc).__name__)

    async def _apply(
        self, route: _Route[DepsT], events: Sequence[tuple[ConsumerRecord, CloudEvent[Any]]]
    ) -> None:
        """Apply events in one transaction; the inbox drops already-seen ids."""
        topic = route.subscription.topic
        async with self._pool.acquire() as conn, conn.transaction():
            fresh_ids = await _record_in_inbox(conn, [ev.id for _, ev in events], topic)
            fresh: list[tuple[ConsumerRecord, CloudEvent[Any]]] = []
            for record, event in events:
                if event.id in fresh_ids:
                    fresh_ids.discard(event.id)  # a duplicate inside the same batch
                    fresh.append((record, event))
            if fresh:
                await self._handle(conn, route, fresh)
        metrics.EVENTS_CONSUMED.labels(topic=topic, outcome="processed").inc(len(fresh))
        metrics.EVENTS_CONSUMED.labels(topic=topic, outcome="duplicate").inc(
            len(events) - len(fresh)
        )

    async def _handle(
        self,
        conn: Connection,
        route: _Route[DepsT],
        fresh: Sequence[tuple[ConsumerRecord, CloudEvent[Any]]],
    ) -> None:
        subscription = route.subscription
        if subscription.handle_batch is not None:
            await subscription.handle_batch(self._deps, conn, [event for _, event in fresh])
            return
        assert subscription.handle is not None
        for record, event in fresh:
            with tracer.start_as_current_span(
                f"{record.topic} process",
                context=telemetry.extract_context(record.headers),
                kind=trace.SpanKind.CONSUMER,
            ):
                await subscription.handle(self._deps, conn, event)

    async def _settle(self, route: _Route[DepsT], item: Parsed) -> None:
        """Apply one record: skip what can never apply, retry what might, dead-letter
        what the record itself is at fault for. An outage of our own database is not
        the record's fault: it propagates, and the batch is tried again later."""
        record, event = item
        if not isinstance(event, CloudEvent):
            await self._dead_letter(record, event, 1)  # a malformed envelope never gets better
            return
        attempts = 0
        while True:
            attempts += 1
            try:
                await self._apply(route, [(record, event)])
                return
            except Exception as exc:  # transient re-raised, permanent skipped, others retried
                if is_transient(exc):
                    raise
                if isinstance(exc, DomainError) and exc.permanent:
                    await self._skip(route, record, event, exc)
                    return
                error = exc
            metrics.EVENTS_FAILED.labels(topic=record.topic).inc()
            if attempts >= self._max_attempts:
                await self._dead_letter(record, error, attempts)
                return
            await asyncio.sleep(min(self._backoff_max, self._backoff_base * 2**attempts))

    async def _skip(
        self, route: _Route[DepsT], record: ConsumerRecord, event: CloudEvent[Any], error: Exception
    ) -> None:
        """Record a permanently refused event as handled: its inbox row without the
        handler's (rolled back) effect, so a redelivery is a duplicate."""
        async with self._pool.acquire() as conn, conn.transaction():
            await _record_in_inbox(conn, [event.id], route.subscription.topic)
        metrics.EVENTS_CONSUMED.labels(topic=record.topic, outcome="skipped").inc()
        log.warning(
            "event_skipped",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_id=str(event.id),
            error=type(error).__name__,
        )

    async def _dead_letter(self, record: ConsumerRecord, error: Exception, attempts: int) -> None:
        assert self._producer is not None
        description = describe_error(error)[:_MAX_ERROR_HEADER]
        await kafka.dead_letter(self._producer, record, description, attempts)
        metrics.EVENTS_CONSUMED.labels(topic=record.topic, outcome="dead_lettered").inc()
        log.error(
            "event_dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            error=type(error).__name__,
        )


class _StopRevoked(ConsumerRebalanceListener):
    """Stops the work on revoked partitions before the group moves them: a task that
    went on retrying would race the new owner and could commit over its progress."""

    def __init__(self, owner: EventConsumer[Any]) -> None:
        self._owner = owner

    async def on_partitions_revoked(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, revoked: Sequence[TopicPartition]
    ) -> None:  # aiokafka awaits a coroutine listener before the group moves on
        stopped = await self._owner.stop_partitions(list(revoked))
        if stopped:
            log.info("partitions_revoked", partitions=len(revoked), stopped_work=stopped)

    async def on_partitions_assigned(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, assigned: Sequence[TopicPartition]
    ) -> None:
        """Nothing to do: fetching starts at the committed offsets."""


async def _close_kafka_consumer(consumer: AIOKafkaConsumer) -> None:
    """aiokafka's fetcher awaits the fetch requests it has just cancelled (one sleeping
    in its retry backoff while the broker is gone), so their CancelledError reaches us;
    only a cancellation of this task itself may go on up."""
    try:
        await close_within(consumer.stop())
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("consumer_close_interrupted")


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


def _routes(subscriptions: Sequence[Subscription[DepsT]]) -> dict[str, _Route[DepsT]]:
    routes: dict[str, _Route[DepsT]] = {}
    for subscription in subscriptions:
        if subscription.topic in routes:
            raise ValueError(f"{subscription.topic} is subscribed twice")
        routes[subscription.topic] = _Route(subscription, subscription.event_model())
    return routes


def _parse(route: _Route[Any], record: ConsumerRecord) -> CloudEvent[Any] | Exception:
    """The validated event, or why it is not one (ValidationError, empty value)."""
    if record.value is None:
        return ValueError("empty message value")
    try:
        return route.model.model_validate_json(record.value)
    except ValidationError as exc:
        return exc


async def _record_in_inbox(conn: Connection, event_ids: Sequence[UUID], topic: str) -> set[UUID]:
    rows = await conn.fetch(
        "INSERT INTO inbox (event_id, topic)"
        " SELECT id, $2 FROM unnest($1::uuid[]) AS id ON CONFLICT DO NOTHING"
        " RETURNING event_id",
        event_ids,
        topic,
    )
    return {row["event_id"] for row in rows}
