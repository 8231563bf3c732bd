"""Benchmark: the server CPU of the shared HTTP path, next to a bare FastAPI route.

Every service answers through servicekit (request middleware, access line, metrics,
problem handlers, body limit, token check), so its cost per request is paid by every
route of every service. Measured, each served by uvicorn in its own process, under
``wrk`` (50 connections, one thread, its own process):

* ``bare_fastapi``: ``FastAPI()`` with one ``GET`` returning a small JSON object;
* ``servicekit_route``: the same route in a real servicekit service app
  (``create_service_app``, on embedded PostgreSQL and Tansu) at ``LOG_LEVEL=INFO``;
* ``servicekit_authenticated``: the same, behind ``authorize("bench:read")`` with a
  valid EdDSA token (the verified-token cache is warm after the first request);
* ``servicekit_route_warning``: ``servicekit_route`` at ``LOG_LEVEL=WARNING``, whose
  difference to ``servicekit_route`` is the access line's cost in place.

Figures are server CPU per request (``/proc/<pid>/stat``), medians of interleaved runs
with their range; overheads are medians of the per-round differences to the bare route.
Targets (issue 12): authenticated route <= 200 us over bare, access line <= 50 us.

Prints one JSON object. Usage: ``uv run python bench/http_path.py [--runs 5 --seconds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TextIO

import structlog
import uvicorn
from _asgi_cpu import Case, cpu_us
from _wrk import (  # bench/ is the script's directory, first on sys.path
    Target,
    ensure_wrk,
    interleaved,
    lua_script,
    rss_mb,
    serve,
    spread,
    summarise,
    wait_ready,
)
from fastapi import APIRouter, FastAPI
from plugboard_servicekit import db, embedded
from plugboard_servicekit.app import (
    Runtime,
    ServiceSpec,
    create_service_app,
    runtime_dependencies,
)
from plugboard_servicekit.app import serve as serve_spec
from plugboard_servicekit.auth import generate_keypair, mint_token
from plugboard_servicekit.http import Call, authorize
from plugboard_servicekit.logging import configure_logging, log_access
from plugboard_servicekit.settings import ServiceSettings, service_settings_config
from plugboard_servicekit.telemetry import NATIVE_TELEMETRY_OFF

SCHEMA = "bench_http"
AUTHENTICATED_TARGET_US = 200.0
ACCESS_LINE_TARGET_US = 50.0


# ------------------------------------------------------------------ servers


def bare_app(**options: Any) -> FastAPI:
    app = FastAPI(**options)

    @app.get("/v1/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


class BenchSettings(ServiceSettings):
    model_config = service_settings_config("BENCH_")


ReadCall = Annotated[Call[Runtime[BenchSettings]], authorize("bench:read")]
router = APIRouter()


@router.get("/v1/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}


@router.get("/v1/whoami")
async def whoami(call: ReadCall) -> dict[str, str]:
    return {"sub": call.caller.sub}


def bench_spec(migrations: Path) -> ServiceSpec[BenchSettings, Runtime[BenchSettings]]:
    return ServiceSpec[BenchSettings, Runtime[BenchSettings]](
        name="bench-http",
        schema=SCHEMA,
        migrations=migrations,
        settings_type=BenchSettings,
        dependencies=runtime_dependencies,
        routers=[router],
    )


# ------------------------------------------------------------------- measure


def access_line_us(rounds: int = 5, lines: int = 20_000) -> dict[str, float]:
    """In-process CPU of one access line at INFO (JSON to /dev/null), as in a request."""
    with open(os.devnull, "w") as sink:
        configure_logging("bench", "INFO", stream=sink)
        structlog.contextvars.bind_contextvars(
            request_id="0192f4b8c7a94c6e9d1f2a3b4c5d6e7f",
            correlation_id="0192f4b8c7a94c6e9d1f2a3b4c5d6e7f",
            trace_id="ab" * 16,
            span_id="cd" * 8,
        )
        path = "/v1/credentials/0192f4b8-c7a9-7c6e-9d1f-2a3b4c5d6e7f:reveal"
        samples = []
        for _ in range(rounds):
            start = time.process_time()  # CPU, as the HTTP figures: not the machine's load
            for _ in range(lines):
                log_access("POST", path, 200, 1.23)
            samples.append((time.process_time() - start) * 1e6 / lines)
        structlog.contextvars.clear_contextvars()
    return spread(samples)


def overhead(runs: dict[str, list[dict[str, Any]]], name: str, base: str) -> dict[str, float]:
    """Median (and range) of the per-round CPU differences between two targets."""
    pairs = zip(runs[name], runs[base], strict=True)
    return spread([a["cpu_us_per_request"] - b["cpu_us_per_request"] for a, b in pairs])


def _targets(
    bare_url: str, bare_pid: int, kit: Sequence[tuple[str, int]], token: str
) -> list[Target]:
    (info_url, info_pid), (warn_url, warn_pid) = kit
    plain = lua_script("GET", ["/v1/ping"], {})
    authed = lua_script("GET", ["/v1/whoami"], {"Authorization": f"Bearer {token}"})
    return [
        Target("bare_fastapi", bare_url, plain, bare_pid),
        Target("servicekit_route", info_url, plain, info_pid),
        Target("servicekit_authenticated", info_url, authed, info_pid),
        Target("servicekit_route_warning", warn_url, plain, warn_pid),
    ]


def measure(env: dict[str, str], token: str, runs: int, seconds: float) -> dict[str, Any]:
    kit = [__file__, "--serve", "servicekit"]
    with (
        serve([__file__, "--serve", "bare"], env) as (bare, bare_url),
        serve(kit, env | {"LOG_LEVEL": "INFO"}, "BENCH_HTTP_PORT") as (info, info_url),
        serve(kit, env | {"LOG_LEVEL": "WARNING"}, "BENCH_HTTP_PORT") as (warn, warn_url),
    ):
        for url, path in ((bare_url, "/v1/ping"), (info_url, "/readyz"), (warn_url, "/readyz")):
            wait_ready(url, path)
        targets = _targets(bare_url, bare.pid, [(info_url, info.pid), (warn_url, warn.pid)], token)
        samples = interleaved(targets, runs, seconds)
        rss = rss_mb(info.pid)
    per_target = {name: summarise(runs_of) for name, runs_of in samples.items()}
    authenticated = overhead(samples, "servicekit_authenticated", "bare_fastapi")
    access = overhead(samples, "servicekit_route", "servicekit_route_warning")
    access_in_process = access_line_us()
    return {
        "cpu_us_per_request": {k: v["cpu_us_per_request"] for k, v in per_target.items()},
        "overhead_us_over_bare": {
            "servicekit_route": overhead(samples, "servicekit_route", "bare_fastapi"),
            "servicekit_authenticated": authenticated,
        },
        "access_line_us": {"in_place_info_minus_warning": access, "in_process": access_in_process},
        "targets": {
            "authenticated_overhead_us": AUTHENTICATED_TARGET_US,
            "access_line_us": ACCESS_LINE_TARGET_US,
        },
        "met": {
            "authenticated_overhead": authenticated["median"] <= AUTHENTICATED_TARGET_US,
            "access_line": access_in_process["median"] <= ACCESS_LINE_TARGET_US,
        },
        "servicekit_rss_mb_after_load": rss,
        "details": per_target,
    }


async def in_process(env: dict[str, str], token: str, sink: TextIO) -> dict[str, Any]:
    """The same three routes driven in this process (``_asgi_cpu``): a steadier figure
    than wrk's on a loaded machine. The service runs its real lifespan (database,
    broker); FastAPI's own telemetry is off in the bare app as it is in its own
    process, where no tracer provider exists."""
    settings = BenchSettings(
        database_url=env["DATABASE_URL"], kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        jwt_public_key=env["PLUGBOARD_JWT_PUBLIC_KEY"], log_level="INFO",
    )  # fmt: skip
    app = create_service_app(bench_spec(Path(env["BENCH_MIGRATIONS"])), settings)
    configure_logging("bench-http", "INFO", stream=sink)  # access lines on, not on stdout
    async with app.router.lifespan_context(app):
        cases = [
            Case("bare_fastapi", bare_app(telemetry=NATIVE_TELEMETRY_OFF), "/v1/ping", {}),
            Case("servicekit_route", app, "/v1/ping", {}),
            Case("servicekit_authenticated", app, "/v1/whoami",
                 {"Authorization": f"Bearer {token}"}),
        ]  # fmt: skip
        cpu = await cpu_us(cases)
    configure_logging("bench", "WARNING", stream=sys.stderr)
    bare = cpu["bare_fastapi"]["median"]
    return {
        "cpu_us_per_request": cpu,
        "overhead_us_over_bare": {
            name: round(cpu[name]["median"] - bare, 1)
            for name in ("servicekit_route", "servicekit_authenticated")
        },
    }


def main(runs: int, seconds: float) -> dict[str, Any]:
    configure_logging("bench", "WARNING", stream=sys.stderr)  # stdout is the JSON report
    ensure_wrk()
    workdir = embedded.server_tempdir("plugboard-http-bench-")
    postgres = embedded.start_postgres(workdir / "pg")
    broker = embedded.start_tansu()
    try:
        dsn = asyncio.run(db.provision(postgres.dsn, SCHEMA, SCHEMA))
        private_key, public_key = generate_keypair()
        env = {
            "DATABASE_URL": dsn,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "PLUGBOARD_JWT_PUBLIC_KEY": public_key,
            "BENCH_MIGRATIONS": str(workdir / "migrations"),
        }
        (workdir / "migrations").mkdir()
        token = mint_token(private_key, sub="bench", org="org-bench", scopes=["bench:read"])
        result = measure(env, token, runs, seconds)
        with open(os.devnull, "w") as sink:
            result["in_process_asgi"] = asyncio.run(in_process(env, token, sink))
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "benchmark": "http-path",
        "cpus": os.cpu_count(),
        "connections": 50,
        "runs": runs,
        "seconds_per_run": seconds,
        **result,
    }


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="servicekit HTTP path benchmark")
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--serve", choices=["bare", "servicekit"], help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    args = _args()
    if args.serve == "bare":
        uvicorn.run(bare_app(), host=args.host, port=args.port, log_level="warning",
                    access_log=False)  # fmt: skip
    elif args.serve == "servicekit":
        serve_spec(bench_spec(Path(os.environ["BENCH_MIGRATIONS"])))
    else:
        print(json.dumps(main(args.runs, args.seconds), indent=2))
