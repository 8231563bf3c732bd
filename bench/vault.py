"""Benchmark: credential-vault reveal throughput and the expiry sweeper, each next to
a bare baseline in the same run, on embedded PostgreSQL and Tansu.

* reveal: ``POST /v1/credentials/{id}:reveal`` (JWT check, read + audit write in one
  statement, AES-GCM decrypt) on the real app under uvicorn (a subprocess), 50
  concurrent httpx clients; next to a bare FastAPI endpoint doing one asyncpg
  primary-key SELECT, served the same way. Target: >= 60% of the bare throughput.
* sweeper: expire 100,000 credentials with the service's sweeper (delete + audit +
  ``credential.expired`` events in the outbox), next to one bare
  ``DELETE ... RETURNING`` of as many rows. Target: >= 30% of the bare rate.
* the service's peak RSS (VmHWM) after the reveal load, and the server CPU time per
  request of both HTTP endpoints (which shows whether the client or the server limits).

Prints one JSON object. Usage: ``uv run python bench/vault.py [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import uvicorn
from credential_vault.crypto import Envelope
from credential_vault.datakeys import current_data_key
from credential_vault.keyring import KeyStore, generate_keyring_file
from credential_vault.settings import VaultSettings
from credential_vault.sweeper import sweep_expired
from fastapi import FastAPI
from plugboard_contracts.ids import uuid7
from plugboard_servicekit import db, embedded
from plugboard_servicekit.auth import generate_keypair, mint_token

SCHEMA = "vault"
CLIENTS = 50
SEEDED = 500
ORGS = 10
SCOPES = ["credentials:read", "credentials:write", "credentials:reveal"]
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


@contextlib.contextmanager
def serve(args: list[str], env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A uvicorn subprocess (its own process group, killed with us); yields (proc, base URL)."""
    port = embedded.free_port()
    command = [sys.executable, *args, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        command,
        env=os.environ | env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=embedded.die_with_parent(signal.SIGTERM),
    )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        embedded.stop_process_group(proc, signal.SIGTERM, 10.0)


async def wait_ready(url: str, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url + path)).status_code < 500:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url}{path} not ready")


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the highest resident set size the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM")


# ------------------------------------------------------------------- reveal


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    method: str,
    url_of: Callable[[int], str],
    headers: dict[str, str],
    seconds: float,
    server_pid: int,
) -> dict[str, Any]:
    """``CLIENTS`` concurrent request loops for ``seconds`` (after a warm-up).

    Each loop has its own client and keep-alive connection: one httpx pool shared by
    50 tasks spends more CPU on pool bookkeeping than on requests.
    """

    async def worker(client: httpx.AsyncClient, first: int, until: float, out: list[float]) -> int:
        errors, n = 0, first
        while time.perf_counter() < until:
            start = time.perf_counter()
            response = await client.request(method, url_of(n))
            out.append(time.perf_counter() - start)
            errors += response.status_code != 200
            n += CLIENTS
        return errors

    async def run(
        clients: list[httpx.AsyncClient], duration: float
    ) -> tuple[list[float], int, float]:
        latencies: list[float] = []
        start = time.perf_counter()
        loops = (worker(c, i, start + duration, latencies) for i, c in enumerate(clients))
        errors = await asyncio.gather(*loops)
        return latencies, sum(errors), time.perf_counter() - start

    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(timeout=30, headers=headers))
            for _ in range(CLIENTS)
        ]
        await run(clients, min(3.0, seconds / 3))
        cpu_before = cpu_seconds(server_pid)
        latencies, errors, elapsed = await run(clients, seconds)
        server_cpu = cpu_seconds(server_pid) - cpu_before
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "server_cpu_ms_per_request": round(server_cpu * 1000 / len(latencies), 3),
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p99_ms": round(quantiles[98] * 1000, 2),
    }


async def seed_via_api(url: str, headers: dict[str, str]) -> list[str]:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        ids = []
        for n in range(SEEDED):
            body = {"name": f"bench-{n}", "type": "basic-auth",
                    "data": {"username": f"user-{n}", "password": f"secret-{n}"}}  # fmt: skip
            response = await client.post("/v1/credentials", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


async def reveal_bench(env: dict[str, str], token: str, seconds: float) -> dict[str, Any]:
    app = ["-m", "uvicorn", "credential_vault.app:create_app", "--factory", "--no-access-log"]
    bare = [__file__, "--bare-server"]
    with serve(app, env) as (vault, vault_url), serve(bare, env) as (bare_proc, bare_url):
        await wait_ready(vault_url, "/readyz")
        await wait_ready(bare_url, "/docs")
        auth = {"Authorization": f"Bearer {token}"}
        ids = await seed_via_api(vault_url, auth)
        baseline = await load(
            "GET", lambda n: f"{bare_url}/bare/{ids[n % SEEDED]}", {}, seconds, bare_proc.pid
        )
        reveal = await load(
            "POST",
            lambda n: f"{vault_url}/v1/credentials/{ids[n % SEEDED]}:reveal",
            auth,
            seconds,
            vault.pid,
        )
        rss = peak_rss_mb(vault.pid)
    ratio = reveal["requests_per_second"] / baseline["requests_per_second"]
    return {
        "clients": CLIENTS,
        "reveal": reveal,
        "bare_select": baseline,
        "reveal_vs_bare": round(ratio, 3),
        "target": 0.6,
        "met": ratio >= 0.6,
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


async def main(seconds: float, expire: int) -> dict[str, Any]:
    workdir = embedded.server_tempdir("plugboard-vault-bench-")
    postgres = embedded.start_postgres(workdir / "pg")
    broker = embedded.start_tansu()
    try:
        dsn = await db.provision(postgres.dsn, SCHEMA, SCHEMA)
        keyring = workdir / "keyring.json"
        generate_keyring_file(keyring)
        private_key, public_key = generate_keypair()
        env = {
            "DATABASE_URL": dsn,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "PLUGBOARD_JWT_PUBLIC_KEY": public_key,
            "VAULT_KEYRING_FILE": str(keyring),
            "LOG_LEVEL": "WARNING",
        }
        token = mint_token(private_key, sub="bench", org="org-bench", scopes=SCOPES)
        reveal = await reveal_bench(env, token, seconds)
        sweeper = await sweeper_bench(dsn, keyring, expire)
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"benchmark": "credential-vault", "cpus": os.cpu_count(), **reveal, "expiry": sweeper}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="credential-vault benchmark")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per load")
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
        print(json.dumps(asyncio.run(main(args.seconds, args.expire)), indent=2))
