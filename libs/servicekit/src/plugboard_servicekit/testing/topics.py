"""`TopicReader`: what a test's action published on a topic, and proof that nothing was.

The reader takes every partition's end offset when it starts, before the action, and
reads from there. So `events` cannot return an older test's events, and
`assert_none` cannot pass by having read nothing: after its wait it keeps reading
until it has caught up with the offsets the broker reports at that moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from plugboard_contracts.envelope import CloudEvent
from pydantic import ValidationError

from plugboard_servicekit import kafka

T = TypeVar("T")
_CATCH_UP_SECONDS = 15.0


class TopicReader:
    """Reads one topic from the position taken at `start()` (or the last `mark()`)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._values: list[bytes] = []

    async def start(self) -> Self:
        """Create the topic if missing (6 partitions, as provisioning does) and take the
        position to read from."""
        await kafka.ensure_topics(self.bootstrap, [self.topic])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        self._consumer = consumer
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:  # metadata not fetched yet
            await consumer.topics()  # fetches fresh metadata
            partitions = consumer.partitions_for_topic(self.topic) or set()
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(self._partitions)
        await self.mark()
        return self

    async def mark(self) -> None:
        """Forget what was read; read from the current end of every partition on."""
        ends = await self._started().end_offsets(self._partitions)
        for partition in self._partitions:
            self._started().seek(partition, ends[partition])
        self._values.clear()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("TopicReader not started: use `async with` or `await start()`")
        return self._consumer

    async def _poll(self, timeout_ms: int = 100) -> None:
        batches = await self._started().getmany(timeout_ms=timeout_ms)
        for records in batches.values():
            self._values += [record.value for record in records if record.value is not None]

    def _matching(
        self, type_: type[T], where: Callable[[CloudEvent[T]], bool] | None
    ) -> list[CloudEvent[T]]:
        model = CloudEvent[type_]  # type: ignore[valid-type]
        found: list[CloudEvent[T]] = []
        for value in self._values:
            try:
                event = model.from_json_bytes(value)
            except ValidationError as exc:
                message = f"a record on {self.topic} is not {model.__name__}: {exc}"
                raise AssertionError(message) from exc
            if where is None or where(event):
                found.append(event)
        return found

    async def events(
        self,
        type_: type[T] = dict[str, Any],  # type: ignore[assignment]
        count: int = 1,
        timeout: float = 30.0,
        *,
        where: Callable[[CloudEvent[T]], bool] | None = None,
        settle: float = 0.0,
    ) -> list[CloudEvent[T]]:
        """The events (payload parsed as `type_`, filtered by `where`) once at least
        `count` arrived, after reading `settle` seconds more so duplicates show too.
        AssertionError naming what did arrive after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(found := self._matching(type_, where)) < count:
            if loop.time() >= deadline:
                raise AssertionError(
                    f"{len(found)} of {count} event(s) on {self.topic} after {timeout:g}s "
                    f"({len(self._values)} record(s) read): {[e.subject for e in found]}"
                )
            await self._poll()
        settle_until = loop.time() + settle
        while loop.time() < settle_until:
            await self._poll()
        return self._matching(type_, where)

    async def assert_none(
        self,
        timeout: float = 2.0,
        *,
        where: Callable[[CloudEvent[dict[str, Any]]], bool] | None = None,
    ) -> None:
        """Wait `timeout` seconds, catch up with the partitions' current ends, then fail
        if any (matching) event arrived since the position was taken."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await self._poll()
        await self._catch_up()
        found = self._matching(dict[str, Any], where)
        if found:
            described = [f"{event.type} {event.subject}" for event in found]
            raise AssertionError(f"expected no event on {self.topic}, got {described}")

    async def _catch_up(self) -> None:
        """Read until our position reaches the end offsets the broker reports now."""
        consumer = self._started()
        ends = await consumer.end_offsets(self._partitions)
        deadline = asyncio.get_running_loop().time() + _CATCH_UP_SECONDS
        for partition in self._partitions:
            while await consumer.position(partition) < ends[partition]:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"could not read {self.topic} up to its end offsets")
                await self._poll()
