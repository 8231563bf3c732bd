"""kill -9 one of two broker processes in the middle of a refresh storm: every
credential ends fresh, none is refreshed twice, the endpoint never sees a reuse.

The kill lands while the victim holds leases on claimed rows, some of its
requests parked at the provider (not processed yet) and others waiting for a
slot. What the test cannot survive, and no design can with a strict rotating
provider, is a kill after the provider rotated but before the vault stored the new
tokens (the documented crash window); the test waits until every processed
refresh is stored before the kill, then releases the parked requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from broker_helpers import headers, new_org
from broker_rotating import RotatingEndpoint, rotating_settings, serve_rotating
from oauth_broker import repository as repo
from oauth_broker.configs import config_key
from plugboard_servicekit import db
from plugboard_servicekit.embedded import free_port
from plugboard_servicekit.testing import ServiceProcesses, wait_until

pytestmark = pytest.mark.integration
CREDENTIALS = 120


@contextlib.contextmanager
def broker_process(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    full = {**os.environ, **env, "OAUTH_HTTP_PORT": str(port)}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "oauth_broker"], env=full, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
        try:
            yield proc, f"http://127.0.0.1:{port}"
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def seed(
    vault: ServiceProcesses,
    jwt_keys: tuple[str, str],
    conn: asyncpg.Pool,
    endpoint: RotatingEndpoint,
    org: str,
) -> list[UUID]:
    """Credentials in the vault with expired tokens, and the broker's schedule rows for
    them (what tokens:import or the credential events would have written)."""
    connector = uuid4()
    key = config_key(connector, "oauth")
    settings = rotating_settings(endpoint).model_dump(mode="json")
    await repo.upsert_config(conn, key, org, "rotating", 1, settings)
    ids: list[UUID] = []
    async with httpx.AsyncClient(base_url=vault.url("credential-vault")) as client:
        for i in range(CREDENTIALS):
            data = {"accessToken": f"old-{i}", "refreshToken": endpoint.grant(f"c{i}"),
                    "accessTokenExpiresAt": "2020-01-01T00:00:00Z"}  # fmt: skip
            created = await client.post(
                "/v1/credentials", json={"name": f"c{i}", "type": "oauth2-token", "data": data},
                headers=headers(jwt_keys, org, "credentials:write"),
            )  # fmt: skip
            assert created.status_code == 201, created.text
            ids.append(UUID(created.json()["id"]))
    past = datetime(2020, 1, 1, tzinfo=UTC)
    for cid in ids:  # one row per statement: the consumer upserts the same rows meanwhile
        await conn.execute(repo.UPSERT_TOKEN, cid, org, key, 1, True, past, past, past,
                           "authorization_code", None)  # fmt: skip
    return ids


@pytest.mark.timeout(240)
async def test_kill_minus_nine_mid_storm_loses_nothing_and_refreshes_once(
    postgres_dsn: str,
    kafka_bootstrap: str,
    jwt_keys: tuple[str, str],
    vault_process: ServiceProcesses,
    tmp_path: Path,
) -> None:
    dsn = await db.provision(postgres_dsn, "oauth", "oauth")
    env = {
        "DATABASE_URL": dsn, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "PLUGBOARD_JWT_PUBLIC_KEY": jwt_keys[1],
        "PLUGBOARD_SERVICE_KEYS_DIR": str(vault_process.service_keys_dir),
        "PLUGBOARD_VAULT_URL": vault_process.url("credential-vault"),
        "OAUTH_EGRESS_ALLOW": "127.0.0.1", "OAUTH_LEASE_SECONDS": "3",
        "OAUTH_SCHEDULER_INTERVAL_SECONDS": "0.2", "OAUTH_TOKEN_ENDPOINT_CONCURRENCY": "8",
        "KAFKA_SESSION_TIMEOUT_MS": "2000", "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "LOG_LEVEL": "INFO",
    }  # fmt: skip
    org = new_org()
    async with serve_rotating(RotatingEndpoint(latency=0.02)) as endpoint:
        with broker_process(env, tmp_path / "a.log") as (victim, url_a), \
                broker_process(env, tmp_path / "b.log") as (_, url_b):  # fmt: skip
            await wait_until(lambda: ready(url_a), 60)
            await wait_until(lambda: ready(url_b), 60)
            conn = await db.create_pool(dsn, "oauth", max_size=2)
            ids: list[UUID] = []
            try:
                ids = await seed(vault_process, jwt_keys, conn, endpoint, org)
                leased_at_kill = await _storm_and_kill(conn, endpoint, victim, org)

                async def all_fresh() -> bool:
                    return await conn.fetchval(
                        "SELECT count(*) FROM tokens WHERE org_id = $1 AND refreshes = 1"
                        " AND status = 'active' AND due_at > now()", org,
                    ) == len(ids)  # fmt: skip

                try:
                    await wait_until(all_fresh, 40)
                except AssertionError:
                    rows = await conn.fetch(
                        "SELECT status, refreshes, last_error, due_at > now() AS later,"
                        " lease_until > now() AS leased, count(*) FROM tokens WHERE org_id = $1"
                        " GROUP BY 1, 2, 3, 4, 5", org,
                    )  # fmt: skip
                    stats = (endpoint.reuses, endpoint.dropped, endpoint.requests)
                    raise AssertionError(f"{[dict(r) for r in rows]} {stats}") from None
                refreshed = endpoint.refreshes()
                assert sorted(set(refreshed.values())) == [1]  # each exactly once
                assert endpoint.reuses == 0
                assert leased_at_kill > 0  # the kill really hit a storm with leases out
            finally:
                for cid in ids:  # one row each: the brokers' consumers still write rows
                    await conn.execute("DELETE FROM tokens WHERE credential_id = $1", cid)
                await conn.close()


async def _storm_and_kill(
    conn: asyncpg.Pool,
    endpoint: RotatingEndpoint,
    victim: subprocess.Popen[bytes],
    org: str,
) -> int:
    """Kill the victim once a third is done and every processed refresh is stored;
    returns how many rows were leased (claimed, in flight) at that moment."""

    async def third_done() -> bool:
        return sum(endpoint.refreshes().values()) >= CREDENTIALS // 3

    await wait_until(third_done, 15)
    endpoint.gate.clear()

    async def stored_all_processed() -> bool:
        stored = await conn.fetchval(
            "SELECT coalesce(sum(refreshes), 0) FROM tokens WHERE org_id = $1", org
        )
        return stored == sum(endpoint.refreshes().values()) and endpoint.parked > 0

    await wait_until(stored_all_processed, 30)
    leased = await conn.fetchval(
        "SELECT count(*) FROM tokens WHERE org_id = $1 AND lease_until > now()", org
    )
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    await asyncio.sleep(0.5)  # let the server see the victim's connections close
    endpoint.gate.set()
    return leased
