"""Benchmark: credential-vault reveal throughput and the expiry sweeper, each next to
a bare baseline in the same run, on embedded PostgreSQL and Tansu.

* reveal: ``POST /v1/credentials/{id}:reveal`` (token check, read + audit write in one
  statement, AES-GCM decrypt) on the real service (``python -m credential_vault``, a
  subprocess) at ``LOG_LEVEL=INFO``, the level the configmap and docker-compose ship;
  next to a bare FastAPI endpoint doing one asyncpg primary-key SELECT, served the same
  way. Load: ``wrk`` (50 connections, one thread, its own process, a Lua script for the
  header and the rotating ids), in interleaved rounds. Reported for both: server CPU
  per request (``/proc/<pid>/stat``) and throughput, each a median with its range;
  ``reveal_cpu_vs_bare`` (target <= 2) and ``reveal_vs_bare`` throughput (target >= 0.6).
* sweeper: expire 100,000 credentials with the service's sweeper (delete + audit +
  ``credential.expired`` events in the outbox), next to one bare
  ``DELETE ... RETURNING`` of as many rows. Target: >= 30% of the bare rate.
* the service's peak RSS (VmHWM) after the reveal load.

Prints one JSON object. Usage: ``uv run python bench/vault.py [--runs 5 --seconds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import uvicorn
from _wrk import (  # bench/ is the script's directory, first on sys.path
    Target,
    ensure_wrk,
    interleaved,
    lua_script,
    peak_rss_mb,
    serve,
    summarise,
    wait_ready,
)
from credential_vault.crypto import Envelope
from credential_vault.datakeys import current_data_key
from credential_vault.keyring import KeyStore, generate_keyring_file
from credential_vault.settings import VaultSettings
from credential_vault.sweeper import sweep_expired
from fastapi import FastAPI
from plugboard_contracts.ids import uuid7
from plugboard_servicekit import db, embedded
from plugboard_servicekit.auth import generate_keypair, mint_token
from plugboard_servicekit.logging import configure_logging

SCHEMA = "vault"
SEEDED = 500
ORGS = 10
SCOPES = ["credentials:read", "credentials:write", "credentials:reveal"]
REVEAL_CPU_TARGET = 2.0
REVEAL_THROUGHPUT_TARGET = 0.6
_COPY_COLUMNS = (
    "id", "org_id", "name", "type", "version", "fields_set", "errors", "expires_at",
    "dek_version", "kek_version", "ciphertext",
)  # fmt: skip


# ------------------------------------------------------------------ servers


def bare_app(dsn: str) -> FastAPI:
    """The baseline: one pooled asyncpg primary-key SELECT per request, nothing else."""
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pools.append(await db.create_pool(dsn, SCHEMA, max_size=10))
        yield
        await pools[0].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/bare/{credential_id}")
    async def bare(credential_id: UUID) -> dict[str, Any]:
        row = await pools[0].fetchrow(
            "SELECT id, name, type, version FROM credentials WHERE id = $1", credential_id
        )
        assert row is not None
        return dict(row)

    return app


# ------------------------------------------------------------------- reveal


def seed_via_api(url: str, headers: dict[str, str]) -> list[str]:
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        ids = []
        for n in range(SEEDED):
            body = {"name": f"bench-{n}", "type": "basic-auth",
                    "data": {"username": f"user-{n}", "password": f"secret-{n}"}}  # fmt: skip
            response = client.post("/v1/credentials", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


def _ratios(runs: dict[str, list[dict[str, Any]]], key: str) -> dict[str, float]:
    """Per-round ratio reveal / bare of one figure, as median + range (3 decimals)."""
    pairs = zip(runs["reveal"], runs["bare_select"], strict=True)
    values = [a[key] / b[key] for a, b in pairs]
    return {"median": round(statistics.median(values), 3),
            "min": round(min(values), 3), "max": round(max(values), 3)}  # fmt: skip


def reveal_bench(env: dict[str, str], token: str, runs: int, seconds: float) -> dict[str, Any]:
    vault_env = env | {"LOG_LEVEL": "INFO"}
    with (
        serve(["-m", "credential_vault"], vault_env, "VAULT_HTTP_PORT") as (vault, vault_url),
        serve([__file__, "--bare-server"], env) as (bare, bare_url),
    ):
        wait_ready(vault_url, "/readyz")
        wait_ready(bare_url, "/docs")
        auth = {"Authorization": f"Bearer {token}"}
        ids = seed_via_api(vault_url, auth)
        targets = [
            Target("reveal", vault_url,
                   lua_script("POST", [f"/v1/credentials/{i}:reveal" for i in ids], auth),
                   vault.pid),
            Target("bare_select", bare_url,
                   lua_script("GET", [f"/bare/{i}" for i in ids], {}), bare.pid),
        ]  # fmt: skip
        samples = interleaved(targets, runs, seconds)
        rss = peak_rss_mb(vault.pid)
    cpu = _ratios(samples, "cpu_us_per_request")
    throughput = _ratios(samples, "requests_per_second")
    return {
        "connections": 50,
        "runs": runs,
        "seconds_per_run": seconds,
        "log_level": "INFO",
        "reveal": summarise(samples["reveal"]),
        "bare_select": summarise(samples["bare_select"]),
        "reveal_cpu_vs_bare": cpu,
        "reveal_vs_bare": throughput,
        "targets": {
            "reveal_cpu_vs_bare": REVEAL_CPU_TARGET,
            "reveal_vs_bare": REVEAL_THROUGHPUT_TARGET,
        },
        "met": {
            "reveal_cpu_vs_bare": cpu["median"] <= REVEAL_CPU_TARGET,
            "reveal_vs_bare": throughput["median"] >= REVEAL_THROUGHPUT_TARGET,
        },
        "service_peak_rss_mb": rss,
    }


# ------------------------------------------------------------------ sweeper


async def seed_expired(pool: asyncpg.Pool, envelope: Envelope, count: int) -> None:
    """``count`` expired credentials over ``ORGS`` orgs, really encrypted, via COPY."""
    expired = datetime.now(UTC) - timedelta(seconds=1)
    async with pool.acquire() as conn:
        async with conn.transaction():
            keys = {
                f"org-{n}": await current_data_key(conn, envelope, f"org-{n}") for n in range(ORGS)
            }
        records = []
        for n in range(count):
            org, cid = f"org-{n % ORGS}", uuid7()
            sealed = envelope.seal_credential(keys[org], org, cid, 1, b'{"value":"x"}')
            records.append((cid, org, f"c{n}", "string", 1, ["value"], [], expired,
                            sealed.dek_version, sealed.kek_version, sealed.ciphertext))  # fmt: skip
        await conn.copy_records_to_table("credentials", records=records, columns=_COPY_COLUMNS)
        await conn.execute("VACUUM ANALYZE credentials")


async def timed(work: Callable[[], Any]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def sweeper_bench(dsn: str, keyring: Path, count: int) -> dict[str, Any]:
    keys = KeyStore(keyring, None)
    keys.load()
    envelope = Envelope(keys)
    settings = VaultSettings()
    batch, concurrency = settings.sweep_batch_size, settings.sweep_concurrency
    pool = await db.create_pool(dsn, SCHEMA, max_size=4)
    try:
        await seed_expired(pool, envelope, count)
        bare = await timed(lambda: pool.fetch(
            "DELETE FROM credentials WHERE expires_at <= now() RETURNING id"))  # fmt: skip
        await seed_expired(pool, envelope, count)
        swept = await timed(lambda: sweep_expired(pool, batch, concurrency))
        events = await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE topic = 'credential.expired'"
        )
    finally:
        await pool.close()
    ratio = bare / swept
    return {
        "credentials": count,
        "batch_size": batch,
        "concurrency": concurrency,
        "sweeper": {"seconds": round(swept, 2), "per_second": round(count / swept)},
        "bare_delete_returning": {"seconds": round(bare, 2), "per_second": round(count / bare)},
        "events_staged": events,
        "sweeper_vs_bare": round(ratio, 3),
        "target": 0.3,
        "met": ratio >= 0.3 and events == count,
    }


# --------------------------------------------------------------------- main


def main(runs: int, seconds: float, expire: int) -> dict[str, Any]:
    configure_logging("bench", "WARNING", stream=sys.stderr)  # stdout is the JSON report
    ensure_wrk()
    workdir = embedded.server_tempdir("plugboard-vault-bench-")
    postgres = embedded.start_postgres(workdir / "pg")
    broker = embedded.start_tansu()
    try:
        dsn = asyncio.run(db.provision(postgres.dsn, SCHEMA, SCHEMA))
        keyring = workdir / "keyring.json"
        generate_keyring_file(keyring)
        private_key, public_key = generate_keypair()
        env = {
            "DATABASE_URL": dsn,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "PLUGBOARD_JWT_PUBLIC_KEY": public_key,
            "VAULT_KEYRING_FILE": str(keyring),
            "LOG_LEVEL": "WARNING",  # the bare server's; the vault runs at INFO
        }
        token = mint_token(private_key, sub="bench", org="org-bench", scopes=SCOPES)
        reveal = reveal_bench(env, token, runs, seconds)
        sweeper = asyncio.run(sweeper_bench(dsn, keyring, expire))
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"benchmark": "credential-vault", "cpus": os.cpu_count(), **reveal, "expiry": sweeper}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="credential-vault benchmark")
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--expire", type=int, default=100_000, help="credentials to expire")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    args = _args()
    if args.bare_server:
        app = bare_app(os.environ["DATABASE_URL"])
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    else:
        print(json.dumps(main(args.runs, args.seconds, args.expire), indent=2))
