"""Benchmark: connector-registry reads next to a bare endpoint in the same run, and the
two document imports, on embedded PostgreSQL and Tansu.

* reads: ``GET /v1/providers/{name}`` (token check, org table lookup, built-in entry)
  and ``GET /v1/connectors/{id}`` (connector, versions and configs: three statements,
  validation messages computed) on the real service (``python -m connector_registry``)
  at ``LOG_LEVEL=INFO``, next to the bare FastAPI endpoint ``bench/vault.py`` uses (one
  asyncpg primary-key SELECT), served the same way. Load: ``wrk``, 50 connections, in
  interleaved rounds; throughput ratio to the bare endpoint, target >= 0.6.
* imports: Nango's providers.yaml (981 providers) and GitHub's 13 MB OpenAPI document
  posted to a fresh service process; seconds each and the process's peak RSS (VmHWM)
  before and after each.

Prints one JSON object. Usage: ``uv run python bench/registry.py [--runs 3 --seconds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from fastapi import FastAPI
from plugboard_cli.keys import ensure_service_keys
from plugboard_servicekit import db, embedded
from plugboard_servicekit.auth import generate_keypair, mint_token

SCHEMA = "registry"
SEEDED = 200
TARGET = 0.6
DATA = Path(__file__).parents[1] / "services" / "connector-registry" / "tests" / "data"
SCOPES = ["connectors:read", "connectors:write", "providers:read", "providers:write"]
PROVIDERS = ["salesforce", "zendeskSupport", "hubspot", "stripe", "atlassian", "slack",
             "github", "notion", "asana", "shopify"]  # fmt: skip


def bare_app(dsn: str) -> FastAPI:
    """The baseline of bench/vault.py: one pooled asyncpg primary-key SELECT per request."""
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pools.append(await db.create_pool(dsn, SCHEMA, max_size=10))
        yield
        await pools[0].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/bare/{connector_id}")
    async def bare(connector_id: UUID) -> dict[str, Any]:
        row = await pools[0].fetchrow(
            "SELECT id, name, protocol, version FROM connectors WHERE id = $1", connector_id
        )
        assert row is not None
        return dict(row)

    return app


def seed(url: str, auth: dict[str, str]) -> list[str]:
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        ids = []
        for n in range(SEEDED):
            scheme = {"id": "key", "schemeType": "api-key", "name": "X-Key", "in": "header"}
            body = {"name": f"bench-{n}", "baseUrl": "https://api.example.com",
                    "authSchemeConfigs": [scheme]}  # fmt: skip
            response = client.post("/v1/connectors", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


def _ratio(samples: dict[str, list[dict[str, Any]]], name: str) -> dict[str, float]:
    pairs = zip(samples[name], samples["bare_select"], strict=True)
    values = [a["requests_per_second"] / b["requests_per_second"] for a, b in pairs]
    return {"median": round(statistics.median(values), 3),
            "min": round(min(values), 3), "max": round(max(values), 3)}  # fmt: skip


def reads(env: dict[str, str], token: str, runs: int, seconds: float) -> dict[str, Any]:
    service_env = env | {"LOG_LEVEL": "INFO"}
    with (
        serve(["-m", "connector_registry"], service_env, "REGISTRY_HTTP_PORT") as (svc, url),
        serve([__file__, "--bare-server"], env) as (bare, bare_url),
    ):
        wait_ready(url, "/readyz")
        wait_ready(bare_url, "/docs")
        auth = {"Authorization": f"Bearer {token}"}
        ids = seed(url, auth)
        targets = [
            Target("provider", url, lua_script("GET", [f"/v1/providers/{p}" for p in PROVIDERS],
                                               auth), svc.pid),
            Target("connector", url, lua_script("GET", [f"/v1/connectors/{i}" for i in ids],
                                                auth), svc.pid),
            Target("bare_select", bare_url, lua_script("GET", [f"/bare/{i}" for i in ids], {}),
                   bare.pid),
        ]  # fmt: skip
        samples = interleaved(targets, runs, seconds)
        rss = peak_rss_mb(svc.pid)
    ratios = {name: _ratio(samples, name) for name in ("provider", "connector")}
    return {
        "connections": 50, "runs": runs, "seconds_per_run": seconds, "log_level": "INFO",
        **{name: summarise(samples[name]) for name in ("provider", "connector", "bare_select")},
        "provider_vs_bare": ratios["provider"], "connector_vs_bare": ratios["connector"],
        "target": TARGET,
        "met": {name: ratios[name]["median"] >= TARGET for name in ratios},
        "service_peak_rss_mb_after_reads": rss,
    }  # fmt: skip


def _post(url: str, auth: dict[str, str], path: str, body: bytes) -> tuple[float, Any]:
    started = time.perf_counter()
    response = httpx.post(url + path, content=body, headers=auth, timeout=120)
    elapsed = round(time.perf_counter() - started, 2)
    response.raise_for_status()
    return elapsed, response.json()


def imports(env: dict[str, str], token: str) -> dict[str, Any]:
    nango = gzip.decompress((DATA / "nango-providers.yaml.gz").read_bytes())
    github = gzip.decompress((DATA / "github-api.github.com.json.gz").read_bytes())
    auth = {"Authorization": f"Bearer {token}"}
    with serve(["-m", "connector_registry"], env, "REGISTRY_HTTP_PORT") as (svc, url):
        wait_ready(url, "/readyz")
        started_rss = peak_rss_mb(svc.pid)
        nango_s, result = _post(url, auth, "/v1/providers:import?format=nango", nango)
        after_nango = peak_rss_mb(svc.pid)
        github_s, imported = _post(url, auth, "/v1/connectors:import-openapi?name=gh", github)
        after_github = peak_rss_mb(svc.pid)
    return {
        "nango": {"bytes": len(nango), "seconds": nango_s, "imported": result["imported"],
                  "skipped": len(result["skipped"]), "peak_rss_mb": after_nango},
        "openapi_github": {"bytes": len(github), "seconds": github_s,
                           "paths": imported["paths"], "peak_rss_mb": after_github},
        "service_peak_rss_mb_at_start": started_rss,
    }  # fmt: skip


def main(runs: int, seconds: float) -> dict[str, Any]:
    ensure_wrk()
    workdir = embedded.server_tempdir("plugboard-registry-bench-")
    postgres = embedded.start_postgres(workdir / "pg")
    broker = embedded.start_tansu()
    try:
        dsn = asyncio.run(db.provision(postgres.dsn, SCHEMA, SCHEMA))
        private_key, public_key = generate_keypair()
        env = {
            "DATABASE_URL": dsn,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "PLUGBOARD_JWT_PUBLIC_KEY": public_key,
            "PLUGBOARD_SERVICE_KEYS_DIR": str(ensure_service_keys(workdir / "service-keys")),
            "LOG_LEVEL": "WARNING",
        }
        token = mint_token(private_key, sub="bench", org="org-bench", scopes=SCOPES)
        read_figures = reads(env, token, runs, seconds)
        import_figures = imports(env, token)
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"benchmark": "connector-registry", "cpus": os.cpu_count(), **read_figures,
            "imports": import_figures}  # fmt: skip


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="connector-registry benchmark")
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk run")
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
        print(json.dumps(main(args.runs, args.seconds), indent=2))
