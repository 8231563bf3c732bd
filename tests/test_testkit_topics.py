"""TopicReader: returns what was published after it started, typed, and its
`assert_none` fails when an event does arrive (it cannot pass by reading nothing)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from plugboard_contracts.envelope import CloudEvent
from plugboard_servicekit.testing import TopicReader
from pydantic import BaseModel

pytestmark = pytest.mark.integration


class Ping(BaseModel):
    n: int


@pytest.fixture
def topic() -> str:
    return f"testkit.{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def publish(producer: AIOKafkaProducer, topic: str, n: int, subject: str = "s-1") -> None:
    event = CloudEvent[dict[str, Any]](
        source="testkit", type=topic, subject=subject, orgid="org-t", data={"n": n}
    )
    await producer.send_and_wait(topic, event.to_json_bytes(), key=subject.encode())


async def test_events_returns_only_what_came_after_start_typed(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    async with TopicReader(kafka_bootstrap, topic) as before:
        await publish(producer, topic, 1)  # before the second reader's position
        await before.events(count=1, timeout=10)
        async with TopicReader(kafka_bootstrap, topic) as reader:
            await publish(producer, topic, 2, subject="s-2")
            await publish(producer, topic, 3, subject="s-3")
            events = await reader.events(Ping, count=2, timeout=10, settle=0.3)
            assert sorted(event.data.n for event in events) == [2, 3]
            assert all(isinstance(event.data, Ping) for event in events)
            only = await reader.events(Ping, where=lambda event: event.subject == "s-3")
            assert [event.data.n for event in only] == [3]


async def test_events_times_out_naming_what_arrived(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    async with TopicReader(kafka_bootstrap, topic) as reader:
        await publish(producer, topic, 1)
        with pytest.raises(AssertionError, match="1 of 2 event"):
            await reader.events(count=2, timeout=1.5)


async def test_assert_none_passes_on_silence_and_ignores_older_events(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    await publish(producer, topic, 0)  # published before the reader: not its concern
    async with TopicReader(kafka_bootstrap, topic) as reader:
        await reader.assert_none(timeout=0.5)


async def test_assert_none_fails_when_an_event_arrives(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    async with TopicReader(kafka_bootstrap, topic) as reader:
        await publish(producer, topic, 7, subject="late-one")
        with pytest.raises(AssertionError, match="late-one"):
            await reader.assert_none(timeout=0.2)  # shorter than delivery: caught up anyway
        await reader.mark()
        await reader.assert_none(timeout=0.2, where=lambda event: event.subject == "other")


async def test_a_record_that_is_not_the_type_is_reported(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    async with TopicReader(kafka_bootstrap, topic) as reader:
        await producer.send_and_wait(topic, b'{"not": "a cloudevent"}')
        with pytest.raises(AssertionError, match="is not CloudEvent"):
            await reader.events(Ping, timeout=5)
