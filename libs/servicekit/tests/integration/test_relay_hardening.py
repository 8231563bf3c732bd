"""The relay's failure modes: a row the broker can never accept is parked and only
its key waits; lag gauges move during a backlog; the leader's connection notices a
dead peer (TCP keepalive, user timeout)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from plugboard_servicekit import db, outbox
from plugboard_servicekit.outbox import OutboxRelay
from prometheus_client import REGISTRY

from .conftest import TopicProbe, make_event, wait_until

pytestmark = pytest.mark.integration
TOO_LARGE = 1_200_000  # over the producer's max_request_size (1 MiB)


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def _outbox_keys(pool: asyncpg.Pool) -> list[str]:
    return [r["key"] for r in await pool.fetch("SELECT key FROM outbox ORDER BY id")]


def _published(records: list[ConsumerRecord]) -> list[tuple[str, int]]:
    """(key, seq) of each record, in the order a consumer of its partition sees them."""
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    return [
        (r.key.decode(), json.loads(r.value)["data"]["seq"]) for r in ordered if r.key and r.value
    ]


async def test_unsendable_row_is_parked_and_only_its_key_waits(
    effects_db: asyncpg.Pool, postgres_dsn: str, fresh_schema: str, kafka_bootstrap: str, topic: str
) -> None:
    big = make_event(topic, "K", 1, blob="x" * TOO_LARGE)
    staged = [make_event(topic, "K", 0), *(make_event(topic, f"o{n}", 10 + n) for n in range(5))]
    staged += [
        big,
        make_event(topic, "K", 2),
        *(make_event(topic, f"o{n}", 20 + n) for n in range(5)),
    ]
    async with effects_db.acquire() as conn, conn.transaction():
        await outbox.add_many(conn, staged)
    probe = await TopicProbe(kafka_bootstrap, topic).start()
    relay = OutboxRelay(postgres_dsn, fresh_schema, kafka_bootstrap, poll_interval=0.1)
    relay.start()
    try:

        async def only_k_waits() -> bool:  # K's seq 2 waits behind the parked row
            return await _parked(effects_db, 1) and await _outbox_keys(effects_db) == ["K"]

        await wait_until(only_k_waits)
        published = _published(await probe.records())
        behind = {("K", 1), ("K", 2)}
        assert sorted(published) == sorted(
            (e.subject, e.data["seq"]) for e in staged if (e.subject, e.data["seq"]) not in behind
        )  # every other row once, those after the parked one included
        for key in {key for key, _ in published}:
            seqs = [seq for k, seq in published if k == key]
            assert seqs == sorted(seqs)
        reason = await effects_db.fetchval("SELECT reason FROM outbox_dead_letters")
        assert reason.startswith("MessageSizeTooLargeError")
        labels = {"service": fresh_schema, "topic": topic}
        assert _gauge("plugboard_outbox_dead_letters_total", **labels) == 1

        parked_id = await effects_db.fetchval("SELECT id FROM outbox_dead_letters")
        async with effects_db.acquire() as conn:
            assert await outbox.requeue_dead_letter(conn, parked_id)  # still too large
        await wait_until(lambda: _gauge("plugboard_outbox_dead_letters_total", **labels) == 2)
        assert await _outbox_keys(effects_db) == ["K"]
        async with effects_db.acquire() as conn:
            assert await outbox.discard_dead_letter(conn, parked_id)
            assert not await outbox.discard_dead_letter(conn, parked_id)
        await wait_until(lambda: _outbox_empty(effects_db))
        assert _published(await probe.records()) == [("K", 2)]
    finally:
        await relay.stop()
        await probe.stop()


async def _parked(pool: asyncpg.Pool, count: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM outbox_dead_letters") == count


async def _outbox_empty(pool: asyncpg.Pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_lag_gauges_move_during_a_backlog(
    effects_db: asyncpg.Pool, postgres_dsn: str, fresh_schema: str, kafka_bootstrap: str, topic: str
) -> None:
    """Another replica holds the leader lock and publishes nothing: the backlog grows
    and this replica's gauges follow it, then drop once it leads."""
    holder = await db.connect(postgres_dsn, fresh_schema)
    await holder.execute(
        "SELECT pg_advisory_lock($1)", db.advisory_key(f"outbox-relay:{fresh_schema}")
    )
    relay = OutboxRelay(
        postgres_dsn, fresh_schema, kafka_bootstrap, poll_interval=0.1, lag_interval=0.05
    )
    relay.start()
    pending = lambda: _gauge("plugboard_outbox_pending", service=fresh_schema)  # noqa: E731
    age = lambda: _gauge("plugboard_outbox_oldest_age_seconds", service=fresh_schema)  # noqa: E731
    try:
        for count, total in ((50, 50), (25, 75)):
            async with effects_db.acquire() as conn, conn.transaction():
                await outbox.add_many(conn, [make_event(topic, "k", n) for n in range(count)])
            await wait_until(lambda total=total: pending() == total)
        first_age = age()
        assert first_age is not None
        assert first_age > 0
        await wait_until(lambda: (age() or 0) > first_age)  # the oldest row keeps ageing
        assert not relay.is_leader
        await holder.close()  # the other replica is gone
        await wait_until(lambda: pending() == 0 and age() == 0)
    finally:
        await relay.stop()
        if not holder.is_closed():
            await holder.close()


@asynccontextmanager
async def tcp_proxy(dsn: str) -> AsyncIterator[str]:
    """A TCP front for the server (the embedded one listens on a Unix socket only), so
    the relay's connection is a real TCP socket; returns the DSN through it."""
    parts = urlsplit(dsn)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    port = parts.port or 5432

    async def upstream() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if host.startswith("/"):
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host, port)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await upstream()
        await asyncio.gather(
            pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    proxy_port = server.sockets[0].getsockname()[1]
    user = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    netloc = f"{user}@127.0.0.1:{proxy_port}" if user else f"127.0.0.1:{proxy_port}"
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    finally:
        server.close()


async def test_leader_connection_sets_tcp_keepalive_and_user_timeout(
    effects_db: asyncpg.Pool, postgres_dsn: str, fresh_schema: str, kafka_bootstrap: str
) -> None:
    keepalive = db.Keepalive(idle_seconds=7, interval_seconds=3, count=4, user_timeout_ms=21000)
    async with tcp_proxy(postgres_dsn) as dsn:
        relay = OutboxRelay(dsn, fresh_schema, kafka_bootstrap, keepalive=keepalive)
        relay.start()
        try:
            await wait_until(lambda: relay.leader_connection is not None)
            assert relay.leader_connection is not None
            sock = db.connection_socket(relay.leader_connection)
            assert sock is not None
            assert sock.family == socket.AF_INET
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 3
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 21000
        finally:
            await relay.stop()
        other = await db.connect(dsn, fresh_schema)  # without keepalive: defaults untouched
        try:
            plain = db.connection_socket(other)
            assert plain is not None
            assert plain.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 0
        finally:
            await other.close()
