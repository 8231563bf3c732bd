"""Refresh storm and access-token hot path of the oauth-broker (JSON on stdout).

Storm: N oauth2-token credentials (default 10,000) in the real vault, all due at once,
two broker processes, a rotating token endpoint (a refresh token works once, reuse
revokes the family) with 20 ms latency and a concurrency cap of 50. Reports the
completion time next to the ideal N x 20 ms / 50, refreshes per second, duplicates
seen by the endpoint and credentials left stale.

Hot path: wrk (50 connections) on POST /v1/oauth/credentials/{id}/access-token for
fresh tokens, against a bare FastAPI + asyncpg endpoint reading the same table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import uvicorn
from _wrk import Target, descendants_cpu, interleaved, lua_script, serve, summarise, wait_ready
from fastapi import FastAPI
from plugboard_servicekit import db, embedded
from plugboard_servicekit.auth import generate_keypair, mint_token
from plugboard_servicekit.testing.processes import start_service_processes
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services/oauth-broker/tests"))
from broker_rotating import RotatingEndpoint, serve_rotating  # pyright: ignore[reportMissingImports]

LATENCY, CAP = 0.02, 50
ORG = "bench-org"


def bare_app(dsn: str) -> FastAPI:
    app = FastAPI()
    state: dict[str, asyncpg.Pool] = {}

    @app.on_event("startup")
    async def start() -> None:
        state["pool"] = await db.create_pool(dsn, "oauth", max_size=10)

    @app.post("/bare/{credential_id}")
    async def bare(credential_id: UUID) -> dict[str, Any]:
        row = await state["pool"].fetchrow(
            "SELECT credential_id, access_expires_at FROM tokens WHERE credential_id = $1",
            credential_id,
        )
        return {"id": str(row["credential_id"]), "expiresAt": str(row["access_expires_at"])}

    return app


async def seed(vault_url: str, token: str, pool: asyncpg.Pool, endpoint: RotatingEndpoint,
               count: int) -> list[UUID]:  # fmt: skip
    """Credentials in the vault and the broker's rows for them, due far in the future."""
    key = f"config:{uuid4()}:oauth"
    settings = {"grantType": "authorization_code", "tokenUrl": f"{endpoint.url}/token",
                "clientId": "bench", "tokenEndpointAuthMethod": "client_secret_post"}  # fmt: skip
    await pool.execute(
        "INSERT INTO oauth_configs (config_key, org_id, version, settings) VALUES ($1,$2,1,$3)",
        key, ORG, settings,
    )  # fmt: skip
    ids: list[UUID] = []
    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=vault_url, timeout=30) as client:

        async def one(i: int) -> None:
            data = {"accessToken": f"old-{i}", "refreshToken": endpoint.grant(f"c{i}"),
                    "accessTokenExpiresAt": "2020-01-01T00:00:00Z"}  # fmt: skip
            async with gate:
                r = await client.post("/v1/credentials", json={
                    "name": f"c{i}", "type": "oauth2-token", "data": data},
                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            r.raise_for_status()
            cid = UUID(r.json()["id"])
            ids.append(cid)
            await pool.execute(
                "INSERT INTO tokens (credential_id, org_id, config_key, vault_version,"
                " has_refresh_token, issued_at, due_at, grant_type) VALUES"
                " ($1, $2, $3, 1, true, now(), now() + interval '1 day', 'authorization_code')"
                " ON CONFLICT (credential_id) DO UPDATE SET config_key = excluded.config_key,"
                " due_at = excluded.due_at", cid, ORG, key,
            )  # fmt: skip

        await asyncio.gather(*(one(i) for i in range(count)))
    return ids


async def analyze(admin_dsn: str) -> None:
    """Planner statistics for the tables the seeding just filled, as autovacuum would
    have gathered on any live system (and as pgbench does after loading): without them
    Postgres guesses that an org has one credential and scans the whole org's index
    range for each batch of ids, which is no steady state anyone runs in."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def grouped_call_items(broker_urls: list[str]) -> dict[str, float]:
    """Mean items per grouped call, per operation, over the brokers (their /metrics):
    how full the shared vault writes, lease statements and config reads ran."""
    sums: dict[str, list[float]] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for url in broker_urls:
            text = (await client.get(f"{url}/metrics")).text
            for family in text_string_to_metric_families(text):
                if family.name != "plugboard_grouped_call_items":
                    continue
                for sample in family.samples:
                    index = {"_sum": 0, "_count": 1}.get(sample.name.removeprefix(family.name))
                    if index is not None:
                        sums.setdefault(sample.labels["operation"], [0.0, 0.0])[index] += (
                            sample.value
                        )
    return {op: round(total / calls, 1) for op, (total, calls) in sorted(sums.items()) if calls}


async def storm(pool: asyncpg.Pool, endpoint: RotatingEndpoint, count: int,
                idle: frozenset[int], broker_urls: list[str]) -> dict[str, Any]:  # fmt: skip
    """The storm, with the CPU it cost: the stack's (brokers, vault, Postgres, Tansu:
    every process below this one but the ``idle`` bare server) and this process's (the
    token endpoint and the polling), per refresh. On 2 shared cores the stack's CPU
    per refresh is its capacity figure; the endpoint's share is the provider's."""
    # wait for the brokers' consumers to have seen every credential.created
    while await pool.fetchval("SELECT count(*) FROM inbox") < count:
        await asyncio.sleep(0.5)
    stack_before, endpoint_cpu = descendants_cpu(os.getpid(), idle), time.process_time()
    started = time.monotonic()
    await pool.execute("UPDATE tokens SET due_at = now() WHERE org_id = $1", ORG)
    print(f"storm: {count} credentials due now", file=sys.stderr, flush=True)
    while True:
        fresh = await pool.fetchval(
            "SELECT count(*) FROM tokens WHERE org_id = $1 AND refreshes >= 1", ORG
        )
        if fresh >= count or time.monotonic() - started > 600:
            break
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    stack_by_kind = {kind: cpu - stack_before.get(kind, 0.0)
                     for kind, cpu in descendants_cpu(os.getpid(), idle).items()}  # fmt: skip
    stack_cpu = sum(stack_by_kind.values())
    endpoint_cpu = time.process_time() - endpoint_cpu
    refreshed = endpoint.refreshes()
    duplicates = endpoint.reuses + sum(max(0, n - 1) for n in refreshed.values())
    stale = count - await pool.fetchval(
        "SELECT count(*) FROM tokens WHERE org_id = $1 AND refreshes = 1 AND status = 'active'"
        " AND due_at > now()", ORG,
    )  # fmt: skip
    ideal = count * LATENCY / CAP
    return {
        "credentials": count, "replicas": 2, "endpoint_latency_ms": LATENCY * 1000,
        "endpoint_cap": CAP, "completion_seconds": round(elapsed, 2),
        "ideal_seconds": round(ideal, 2), "ratio_to_ideal": round(elapsed / ideal, 2),
        "refreshes_per_second": round(count / elapsed, 1), "duplicates": duplicates,
        "stale": stale, "endpoint_peak_concurrency": endpoint.peak,
        "throttled_by_endpoint": endpoint.requests["throttled"],
        "stack_cpu_ms_per_refresh": round(stack_cpu * 1000 / count, 3),
        "stack_cpu_ms_per_refresh_by_process": {
            kind: round(cpu * 1000 / count, 3) for kind, cpu in sorted(stack_by_kind.items())
        },
        "stack_cores": round(stack_cpu / elapsed, 2),
        "endpoint_cpu_ms_per_refresh": round(endpoint_cpu * 1000 / count, 3),
        "grouped_call_items_mean": await grouped_call_items(broker_urls),
        "target_met": elapsed <= 2 * ideal and duplicates == 0 and stale == 0,
    }  # fmt: skip


def hot_path(broker: tuple[Any, str], bare: tuple[Any, str], ids: list[UUID], token: str,
             runs: int, seconds: float) -> dict[str, Any]:  # fmt: skip
    auth = {"Authorization": f"Bearer {token}"}
    paths = [f"/v1/oauth/credentials/{i}/access-token" for i in ids]
    targets = [
        Target("access_token", broker[1], lua_script("POST", paths, auth), broker[0].pid),
        Target("bare", bare[1], lua_script("POST", [f"/bare/{i}" for i in ids], {}), bare[0].pid),
    ]
    samples = interleaved(targets, runs, seconds)
    ratio = [a["requests_per_second"] / max(b["requests_per_second"], 1)
             for a, b in zip(samples["access_token"], samples["bare"], strict=True)]  # fmt: skip
    median = sorted(ratio)[len(ratio) // 2]
    return {"connections": 50, "access_token": summarise(samples["access_token"]),
            "bare_fastapi_asyncpg": summarise(samples["bare"]),
            "ratio": round(median, 2), "target_met": median >= 0.5}  # fmt: skip


async def main(count: int, runs: int, seconds: float) -> dict[str, Any]:
    work = embedded.server_tempdir("bench-storm-")
    postgres = embedded.start_postgres(work / "pg")
    broker = embedded.start_tansu()
    keys = generate_keypair()
    try:
        vault_only = ["credential-vault"]
        with start_service_processes(postgres.dsn, broker.bootstrap, state_dir=work / "stack",
                                     jwt_keys=keys, services=vault_only) as stack:  # fmt: skip
            dsn = await db.provision(postgres.dsn, "oauth", "oauth")
            env = {
                "DATABASE_URL": dsn, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "PLUGBOARD_JWT_PUBLIC_KEY": keys[1],
                "PLUGBOARD_SERVICE_KEYS_DIR": str(stack.service_keys_dir),
                "PLUGBOARD_VAULT_URL": stack.url("credential-vault"),
                "OAUTH_EGRESS_ALLOW": "127.0.0.1", "OAUTH_TOKEN_ENDPOINT_CONCURRENCY": "25",
                "OAUTH_SCHEDULER_BATCH": "100", "OAUTH_SCHEDULER_INTERVAL_SECONDS": "0.1",
                "KAFKA_SESSION_TIMEOUT_MS": "2000", "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
                "LOG_LEVEL": "WARNING",
            }  # fmt: skip
            token = mint_token(keys[0], sub="bench", org=ORG,
                               scopes=["credentials:write", "oauth:tokens"])  # fmt: skip
            async with serve_rotating(RotatingEndpoint(latency=LATENCY, cap=CAP)) as endpoint:
                with serve(["-m", "oauth_broker"], env, "OAUTH_HTTP_PORT") as first, \
                        serve(["-m", "oauth_broker"], env, "OAUTH_HTTP_PORT") as second, \
                        serve([__file__, "--bare-server", dsn], {}) as bare:  # fmt: skip
                    await asyncio.to_thread(wait_ready, first[1], "/readyz")
                    pool = await db.create_pool(dsn, "oauth", max_size=4)
                    try:
                        ids = await seed(
                            stack.url("credential-vault"), token, pool, endpoint, count
                        )
                        await analyze(postgres.dsn)
                        idle = frozenset({bare[0].pid})
                        urls = [first[1], second[1]]
                        storm_report = await storm(pool, endpoint, count, idle, urls)
                    finally:
                        await pool.close()
                    await asyncio.to_thread(wait_ready, bare[1], "/docs")
                    hot = await asyncio.to_thread(hot_path, first, bare, ids[:500], token, runs,
                                                  seconds)  # fmt: skip
        return {"refresh_storm": storm_report, "hot_path": hot}
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--credentials", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--bare-server", metavar="DSN")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    return parser.parse_args()


if __name__ == "__main__":
    args = _args()
    if args.bare_server:
        uvicorn.run(bare_app(args.bare_server), host=args.host, port=args.port,
                    log_level="warning", access_log=False)  # fmt: skip
    else:
        tempfile.tempdir = None
        print(json.dumps(asyncio.run(main(args.credentials, args.runs, args.seconds)), indent=2))
