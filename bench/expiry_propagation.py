"""Benchmark: credential expiry to ``installation.health_changed``, end to end.

The real vault and the real installation service, each its own process started as
``plugboard dev`` starts it (sweeper, outbox relays, consumers), on embedded PostgreSQL
and Tansu; this process only seeds and collects (on 2 cores a collector sharing the
services' event loop would slow them and be slowed by them). The vault holds
1,001 credentials that all expire at the same instant ``expiresAt``: 1,000 each back
one installation, one is shared by 10,000 installations (10,000 groups, each with a
connection using it). At ``expiresAt`` the vault's sweeper deletes them and publishes
``credential.expired``; installation marks connections ``bad_credentials`` and
installations ``unhealthy`` set-based and publishes ``installation.health_changed``.

Measured per installation: the time from ``expiresAt`` to the moment its
``installation.health_changed`` is read from the topic (p50, p99, max), and events/s
over the whole burst, next to the load average (the machine is shared) and the CPU
seconds each service process spent from ``expiresAt`` to the last receipt. Target:
p99 < 2 s. Prints one JSON object.

Usage: ``uv run python bench/expiry_propagation.py [--singles 1000 --shared 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from _wrk import cpu_seconds
from aiokafka import AIOKafkaConsumer, TopicPartition
from plugboard_servicekit import db, embedded, kafka
from plugboard_servicekit.auth import generate_keypair
from plugboard_servicekit.logging import configure_logging
from plugboard_servicekit.testing.processes import ServiceProcesses, start_service_processes

ORG = "org-bench"
SERVICES = ("credential-vault", "installation")
INSTALLATION_SCHEMA = "installation"
LEAD_SECONDS = 20.0
"""Credentials are created this long before they expire (creation of 1,001 takes a few s)."""

SEED = """
WITH project AS (
    INSERT INTO orgs (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING
), p AS (
    INSERT INTO projects (id, org_id, name, app_name)
    VALUES ('00000000-0000-7000-8000-000000000001', $1, 'bench', 'Bench') RETURNING id
), integ AS (
    INSERT INTO integrations (id, org_id, project_id, name, provider)
    SELECT '00000000-0000-7000-8000-000000000002', $1, id, 'sync', 'hubspot' FROM p
    RETURNING id, project_id
), rev AS (
    INSERT INTO revisions (id, org_id, integration_id, spec_version, content)
    SELECT '00000000-0000-7000-8000-000000000003', $1, id, '1.0.0',
        '{"specVersion": "1.0.0", "proxy": {"enabled": true}}' FROM integ RETURNING id
), items AS (
    SELECT n, cred
    FROM unnest($2::uuid[]) WITH ORDINALITY AS t (cred, n)
), grp AS (
    INSERT INTO groups (project_id, group_ref, org_id, group_name)
    SELECT i.project_id, 'g' || n, $1, 'G' || n FROM items CROSS JOIN integ i
), cons AS (
    INSERT INTO consumers (project_id, consumer_ref, org_id, consumer_name)
    SELECT i.project_id, 'c' || n, $1, 'C' || n FROM items CROSS JOIN integ i
)
SELECT (SELECT id FROM integ), (SELECT project_id FROM integ), (SELECT id FROM rev)
"""
SEED_CONNECTIONS = """
INSERT INTO connections (id, org_id, project_id, provider, group_ref, consumer_ref, auth_type,
    status, credential_id)
SELECT gen_random_uuid(), $1, $2, 'hubspot', 'g' || n, 'c' || n, 'apiKey', 'working', cred
FROM unnest($3::uuid[]) WITH ORDINALITY AS t (cred, n)
"""
SEED_INSTALLATIONS = """
WITH inst AS (
    INSERT INTO installations (id, org_id, project_id, integration_id, connection_id, group_ref,
        consumer_ref, created_by)
    SELECT gen_random_uuid(), $1, $2, $3, c.id, c.group_ref, c.consumer_ref, 'builder:bench'
    FROM connections c WHERE c.project_id = $2 RETURNING id
)
INSERT INTO installation_configs (id, installation_id, revision_id, content, created_by)
SELECT gen_random_uuid(), id, $4, '{}', 'builder:bench' FROM inst
"""


async def create_credentials(
    vault: httpx.AsyncClient, token: str, count: int, expires_at: datetime
) -> list[UUID]:
    """``count`` vault credentials expiring at ``expires_at``, 50 requests at a time."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "type": "string",
        "data": {"value": "bench-secret"},
        "expiresAt": expires_at.isoformat(),
    }

    async def one(n: int) -> UUID:
        response = await vault.post(
            "/v1/credentials", headers=headers, json={**body, "name": f"bench-{n}"}
        )
        response.raise_for_status()
        return UUID(response.json()["id"])

    made: list[UUID] = []
    for start in range(0, count, 50):
        made += await asyncio.gather(*(one(n) for n in range(start, min(count, start + 50))))
    return made


async def seed(pool: asyncpg.Pool, singles: list[UUID], shared: UUID, shared_count: int) -> None:
    """Projects, groups, consumers, connections and installations in bulk SQL."""
    credentials = singles + [shared] * shared_count
    async with pool.acquire() as conn, conn.transaction():
        integration, project, revision = await conn.fetchrow(SEED, ORG, credentials)
        await conn.execute(SEED_CONNECTIONS, ORG, project, credentials)
        await conn.execute(SEED_INSTALLATIONS, ORG, project, integration, revision)


async def collect(
    bootstrap: str, topic: str, expected: int, timeout: float, marker: bytes
) -> list[float]:
    """Receipt times (epoch s) of the events on ``topic`` (holding ``marker``) read from now."""
    await kafka.ensure_topics(bootstrap, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    await consumer.topics()
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    received: list[float] = []
    deadline = time.monotonic() + timeout
    try:
        while len(received) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            now = time.time()
            for records in batches.values():
                received += [now for record in records if record.value and marker in record.value]
    finally:
        await consumer.stop()
    return received


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(singles: int, shared: int) -> dict[str, Any]:
    configure_logging("bench", "WARNING", stream=sys.stderr)  # stdout is the JSON report
    workdir = embedded.server_tempdir("plugboard-bench-expiry-")
    postgres = embedded.start_postgres(workdir / "pg")
    broker = embedded.start_tansu()
    try:
        with start_service_processes(
            postgres.dsn,
            broker.bootstrap,
            state_dir=workdir / "stack",
            jwt_keys=generate_keypair(),
            extra_env={"LOG_LEVEL": "WARNING"},
            services=SERVICES,
        ) as stack:
            pool = await db.create_pool(postgres.dsn, INSTALLATION_SCHEMA, max_size=2)
            try:
                cpu = functools.partial(_cpu, stack, postgres.pid, broker.pid)
                return await run(stack, pool, cpu, singles, shared)
            finally:
                await pool.close()
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _server_cpu(root: int) -> float:
    """CPU seconds of a process and its live children (PostgreSQL's postmaster and its
    backends, each in a process group of its own), with the children they reaped."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        if root in (pid, int(fields[1])):
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def _cpu(stack: ServiceProcesses, postgres_pid: int, broker_pid: int) -> dict[str, float]:
    """CPU seconds so far of each service, PostgreSQL, Tansu and this collector."""
    used = {name: cpu_seconds(stack.process(name).pid) for name in SERVICES}
    used["postgres"] = _server_cpu(postgres_pid)
    used["tansu"] = cpu_seconds(broker_pid)
    used["bench_collector"] = cpu_seconds(os.getpid())
    return used


async def run(
    stack: ServiceProcesses,
    pool: asyncpg.Pool,
    cpu: Callable[[], dict[str, float]],
    singles: int,
    shared: int,
) -> dict[str, Any]:
    token = stack.token(ORG, ["credentials:write"], sub="bench")
    expires_at = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
    async with httpx.AsyncClient(base_url=stack.url("credential-vault"), timeout=30) as vault:
        made = await create_credentials(vault, token, singles + 1, expires_at)
    await seed(pool, made[:singles], made[singles], shared)
    expected = singles + shared
    wait = (expires_at - datetime.now(UTC)).total_seconds()
    if wait < 2:
        raise SystemExit("seeding took too long; raise LEAD_SECONDS")
    bootstrap = stack.bootstrap
    idle_cpu: dict[str, float] = {}

    async def mark_expiry() -> None:
        await asyncio.sleep(wait)
        idle_cpu.update(cpu())

    expired, received, _ = await asyncio.gather(
        collect(bootstrap, "credential.expired", singles + 1, wait + 60, b'"expired"'),
        collect(bootstrap, "installation.health_changed", expected, wait + 60, b'"unhealthy"'),
        mark_expiry(),
    )
    busy_cpu = cpu()
    load = os.getloadavg()
    applied = await pool.fetchval("SELECT EXTRACT(EPOCH FROM max(updated_at)) FROM installations")
    vault_side = [t - expires_at.timestamp() for t in expired]
    latencies = [t - expires_at.timestamp() for t in received]
    last = max(latencies) if latencies else 0.0
    p99 = percentile(latencies, 0.99) if latencies else float("nan")
    return {
        "benchmark": "expiry_propagation",
        "credentials_expiring": singles + 1,
        "installations": expected,
        "shared_credential_installations": shared,
        "health_changed_received": len(received),
        "expiry_to_health_changed_seconds": {
            "p50": round(statistics.median(latencies), 3) if latencies else None,
            "p99": round(p99, 3),
            "max": round(max(latencies), 3) if latencies else None,
        },
        "stages_seconds_after_expiry": {
            "credential_expired_on_topic_p50": round(statistics.median(vault_side), 3)
            if vault_side
            else None,
            "credential_expired_on_topic_max": round(max(vault_side), 3) if vault_side else None,
            "last_installation_marked_unhealthy": round(float(applied) - expires_at.timestamp(), 3),
        },
        "events_per_second": round(len(received) / last, 1) if last > 0 else None,
        "events_per_second_note": "health_changed events received / (last receipt - expiresAt)",
        "cpu_seconds_from_expiry_to_last_receipt": {
            name: round(busy_cpu[name] - idle_cpu.get(name, busy_cpu[name]), 2) for name in busy_cpu
        },
        "load_average_1_5_15": [round(value, 2) for value in load],
        "target_p99_seconds": 2.0,
        "meets_target": len(received) == expected and p99 < 2.0,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--singles", type=int, default=1000)
    parser.add_argument("--shared", type=int, default=10000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.singles, args.shared)), indent=2))
