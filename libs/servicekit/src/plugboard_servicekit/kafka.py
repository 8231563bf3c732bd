"""Kafka clients configured the one safe way (see TOOLCHAIN.md: acknowledgement traps).

Producers are idempotent with acks=all; consumers never auto-commit; topics are
created explicitly so their partition count never depends on who touched them first.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownError, UnsupportedVersionError
from plugboard_contracts.topics import dlq_topic

from plugboard_servicekit.logging import get_logger

# An ApiVersions v0 request (api key 18): the smallest a Kafka broker must answer.
_PROBE_CORRELATION_ID = 0x504C4247
_PROBE_CLIENT = b"plugboard-probe"
_PROBE_REQUEST = struct.pack(">hhih", 18, 0, _PROBE_CORRELATION_ID, len(_PROBE_CLIENT))

log = get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36
MAX_BATCH_BYTES = 1024 * 1024
MAX_REQUEST_BYTES = 1024 * 1024
"""The largest record the producer sends (aiokafka's default, set explicitly so the
outbox relay can refuse a larger row before building batches)."""
_NO_IDEMPOTENCE: set[str] = set()
"""Brokers that refused InitProducerId in this process (asked once, not per producer)."""


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``, aiokafka's partitioner),
    a word at a time: the same hash as `aiokafka.partitioner.murmur2`, several times
    faster, since the outbox relay hashes every row's key to build its batches."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[words * 4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition Kafka's default partitioner picks for ``key`` among the topic's
    ``partitions`` (sorted)."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


async def create_producer(bootstrap_servers: str, **overrides: Any) -> AIOKafkaProducer:
    """A started producer that neither loses nor reorders acknowledged messages.

    Idempotent where the broker supports it (Apache Kafka). The embedded Tansu broker
    answers InitProducerId with an error; there we fall back to acks=all without
    idempotence: aiokafka still keeps one batch in flight per partition, so order
    holds, and a retried batch can only duplicate, which every inbox absorbs.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": MAX_BATCH_BYTES,
        "max_request_size": MAX_REQUEST_BYTES,
        "request_timeout_ms": 15000,
    }
    config.update(overrides)
    if bootstrap_servers in _NO_IDEMPOTENCE:
        config["enable_idempotence"] = False
    try:
        return await _started_producer(config)
    except (UnknownError, UnsupportedVersionError) as exc:
        # Raised from InitProducerId after bootstrap succeeded; connection errors are
        # KafkaConnectionError and propagate, so an outage never disables idempotence.
        if not config["enable_idempotence"]:
            raise
        log.warning("idempotent_producer_unsupported", error=type(exc).__name__)
        _NO_IDEMPOTENCE.add(bootstrap_servers)
        return await _started_producer({**config, "enable_idempotence": False})


async def _started_producer(config: dict[str, Any]) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(**config)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


def create_consumer(
    bootstrap_servers: str,
    group_id: str,
    *,
    session_timeout_ms: int = 10000,
    heartbeat_interval_ms: int = 3000,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A consumer that commits only what the caller says it has applied."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": heartbeat_interval_ms,
        "max_poll_records": 500,
    }
    config.update(overrides)
    return AIOKafkaConsumer(**config)


async def dead_letter(
    producer: AIOKafkaProducer, record: ConsumerRecord, description: str, attempts: int
) -> None:
    """Copy a record to `<topic>.dlq` as it was (value, key, headers), with where it
    came from and why (`description`: an error type, never data) in `x-` headers."""
    headers = [
        *(record.headers or ()),
        ("x-error", description.encode()),
        ("x-attempts", str(attempts).encode()),
        ("x-original-topic", record.topic.encode()),
        ("x-original-partition", str(record.partition).encode()),
        ("x-original-offset", str(record.offset).encode()),
    ]
    await producer.send_and_wait(
        dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
    )


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int = 6,
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet; return the ones created now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [name for name in dict.fromkeys(names) if name not in existing]
        if not wanted:
            return []
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication_factor) for name in wanted]
        )
        failed = [
            (topic, code)
            for topic, code, *_ in getattr(response, "topic_errors", [])
            if code not in (0, _TOPIC_ALREADY_EXISTS)
        ]
        if failed:
            raise RuntimeError(f"could not create topics: {failed}")
        return wanted
    finally:
        await admin.close()


async def broker_answers(bootstrap_servers: str, timeout: float = 2.0) -> bool:
    """True when one bootstrap server answers a real Kafka request within ``timeout``.

    A TCP connect alone is not enough: a stalled (e.g. SIGSTOPped) broker's kernel
    still accepts connections into the listen backlog (TOOLCHAIN.md)."""
    request = _PROBE_REQUEST + _PROBE_CLIENT
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, int(port))
                try:
                    writer.write(struct.pack(">i", len(request)) + request)
                    await writer.drain()
                    _, correlation_id = struct.unpack(">ii", await reader.readexactly(8))
                finally:
                    writer.close()
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            continue
        if correlation_id == _PROBE_CORRELATION_ID:
            return True
    return False
