"""Partitions are worked on independently: one partition's retries never hold up
another's records, and a rebalance stops the work on revoked partitions at once.

Proved by ordering, not by timing: records sent to other partitions after the
poison started failing are applied while it still fails (the old all-partition
gather could not fetch them until the poison was settled)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from plugboard_contracts.envelope import CloudEvent
from plugboard_servicekit.consumer import EventConsumer
from plugboard_servicekit.db import Connection
from plugboard_servicekit.subscriptions import Handler, on

from .conftest import consumer_for, make_event, produce, record_effect, wait_until

pytestmark = pytest.mark.integration
Event = CloudEvent[dict[str, Any]]


async def _seqs(pool: asyncpg.Pool) -> list[int]:
    return [r["seq"] for r in await pool.fetch("SELECT seq FROM effects ORDER BY id")]


async def test_a_failing_partition_does_not_stall_the_others(
    effects_db: asyncpg.Pool, kafka_bootstrap: str, topic: str
) -> None:
    release = asyncio.Event()
    attempts = 0

    async def handler(_: None, conn: Connection, event: Event) -> None:
        nonlocal attempts
        if event.data.get("poison") and not release.is_set():
            attempts += 1
            raise RuntimeError("not yet")
        await record_effect(None, conn, event)

    consumer = consumer_for(
        effects_db,
        kafka_bootstrap,
        topic,
        handler=handler,
        max_attempts=1_000_000,  # retried "forever" until released
        backoff_base=0.01,
        backoff_max=0.02,
    )
    await consumer.start()
    try:
        poison = make_event(topic, "stuck", 1000, poison=True)
        behind = make_event(topic, "stuck", 1001)  # same partition: must wait for it
        await produce(kafka_bootstrap, topic, [poison, behind], partition=0)
        await wait_until(lambda: attempts >= 3)
        others = [make_event(topic, f"free-{n}", n) for n in range(20)]
        await produce(kafka_bootstrap, topic, others[:10], partition=1)
        await produce(kafka_bootstrap, topic, others[10:], partition=2)

        async def others_applied() -> bool:
            return len(await _seqs(effects_db)) == 20

        await wait_until(others_applied)
        still_failing = attempts
        assert sorted(await _seqs(effects_db)) == list(range(20))  # nothing of partition 0
        release.set()

        async def all_applied() -> bool:
            return len(await _seqs(effects_db)) == 22

        await wait_until(all_applied)
        assert (await _seqs(effects_db))[-2:] == [1000, 1001]  # partition 0 kept its order
        assert still_failing >= 3
    finally:
        await consumer.stop()


async def test_revoked_partitions_stop_their_work(
    effects_db: asyncpg.Pool, kafka_bootstrap: str, topic: str
) -> None:
    """Member A hangs on every partition; when B joins, A's work on the revoked
    partitions is cancelled (not left running to race B), B applies them once."""
    entered: list[int] = []
    cancelled: list[int] = []

    async def hang(_: None, conn: Connection, event: Event) -> None:
        entered.append(event.data["seq"])
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(event.data["seq"])
            raise

    group = f"g-{uuid.uuid4().hex[:8]}"

    def member(handler: Handler[None]) -> EventConsumer[None]:
        return EventConsumer(
            effects_db,
            kafka_bootstrap,
            group,
            None,
            [on(topic, handler)],
            session_timeout_ms=2000,
            heartbeat_interval_ms=300,
        )

    a, b = member(hang), member(record_effect)
    for n in range(3):  # one record per partition, seq = its partition
        await produce(kafka_bootstrap, topic, [make_event(topic, f"p{n}", n)], partition=n)
    await a.start()
    try:
        await wait_until(lambda: len(a.assignment()) == 3 and len(set(entered)) >= 3)
        assert cancelled == []
        await b.start()
        await wait_until(lambda: bool(b.assignment()) and len(a.assignment()) < 3)
        moved = {tp.partition for tp in b.assignment()}

        async def b_applied_its_share() -> bool:
            rows = await effects_db.fetch("SELECT seq FROM effects")
            return {r["seq"] for r in rows} == moved

        await wait_until(b_applied_its_share)
        assert set(cancelled) >= moved  # A stopped that work instead of racing B
        await a.stop()

        async def all_applied_once() -> bool:
            return sorted(await _seqs(effects_db)) == [0, 1, 2]

        await wait_until(all_applied_once)
    finally:
        await a.stop()
        await b.stop()
