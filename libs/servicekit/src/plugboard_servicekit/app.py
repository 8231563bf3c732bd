"""The service app factory: one FastAPI app per service with the same runtime shape.

A service declares what is its own in a `ServiceSpec` (schema, migrations, routers,
event handlers, background tasks, readiness checks); the factory wires the rest:
logging, tracing, the pool, migrations, the outbox relay, the consumer, problem
responses, auth key, `/healthz`, `/readyz` and `/metrics`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from plugboard_contracts.topics import all_topic_names

from plugboard_servicekit import db, kafka, telemetry
from plugboard_servicekit.consumer import EventConsumer, Handler
from plugboard_servicekit.logging import configure_logging, get_logger
from plugboard_servicekit.metrics import metrics_response
from plugboard_servicekit.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from plugboard_servicekit.outbox import OutboxRelay
from plugboard_servicekit.problems import install_problem_handlers
from plugboard_servicekit.settings import ServiceSettings

log = get_logger(__name__)

ReadinessCheck = Callable[["Runtime"], Awaitable[str | None]]
"""Returns None when ready, or a short reason why not."""
BackgroundTask = Callable[["Runtime"], Coroutine[Any, Any, None]]
_MESSAGING = "plugboard.messaging"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    schema: str
    migrations: Path
    routers: Sequence[APIRouter] = ()
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    on_startup: BackgroundTask | None = None
    background: Sequence[BackgroundTask] = ()
    readiness: Sequence[ReadinessCheck] = ()
    version: str = "0.1.0"


@dataclass
class Runtime:
    """Everything a running service holds; routes reach it through `get_runtime`."""

    spec: ServiceSpec
    settings: ServiceSettings
    pool: asyncpg.Pool
    state: dict[str, Any] = field(default_factory=dict)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.runtime.pool


async def _connect_messaging(
    runtime: Runtime, relay: OutboxRelay, consumer: EventConsumer | None
) -> None:
    """Create the topic catalogue, then start publishing and consuming, retrying until
    the broker answers; `/readyz` says `starting` until then. Topics come first so
    that no publish auto-creates one with the wrong partition count."""
    bootstrap = runtime.settings.kafka_bootstrap_servers
    while True:
        try:
            await kafka.ensure_topics(bootstrap, all_topic_names())
            if consumer is not None:
                await consumer.start()
            break
        except Exception as exc:  # noqa: BLE001 - retried until the broker is back
            log.warning("messaging_start_failed", error=type(exc).__name__)
            await asyncio.sleep(2)
    relay.start()
    runtime.state[_MESSAGING] = "ok"


@asynccontextmanager
async def _running(
    app: FastAPI, spec: ServiceSpec, settings: ServiceSettings
) -> AsyncIterator[None]:
    configure_logging(spec.name, settings.log_level)
    telemetry.configure_tracing(spec.name, settings.otlp_endpoint)
    if settings.auto_migrate:
        await db.migrate(settings.database_url, spec.schema, [spec.migrations])
    pool = await db.create_pool(settings.database_url, spec.schema, max_size=settings.db_pool_size)
    runtime = Runtime(spec=spec, settings=settings, pool=pool, state={_MESSAGING: "starting"})
    app.state.runtime = runtime
    relay = OutboxRelay(settings.database_url, spec.schema, settings.kafka_bootstrap_servers)
    consumer = _consumer_for(runtime)
    if spec.on_startup is not None:
        await spec.on_startup(runtime)
    tasks = [asyncio.create_task(_connect_messaging(runtime, relay, consumer))]
    tasks += [asyncio.create_task(task(runtime)) for task in spec.background]
    log.info("service_started", service=spec.name)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if consumer is not None:
            await consumer.stop()
        await relay.stop()
        await pool.close()
        log.info("service_stopped", service=spec.name)


def _consumer_for(runtime: Runtime) -> EventConsumer | None:
    if not runtime.spec.handlers:
        return None
    settings = runtime.settings
    return EventConsumer(
        runtime.pool,
        settings.kafka_bootstrap_servers,
        group_id=runtime.spec.name,
        handlers=runtime.spec.handlers,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )


async def _readiness(runtime: Runtime) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        await runtime.pool.fetchval("SELECT 1", timeout=1.0)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported as not ready, not raised
        checks["database"] = f"unreachable: {type(exc).__name__}"
    reachable = await kafka.broker_reachable(runtime.settings.kafka_bootstrap_servers)
    checks["broker"] = "ok" if reachable else "unreachable"
    checks["messaging"] = runtime.state[_MESSAGING]
    for check in runtime.spec.readiness:
        checks[check.__name__] = await check(runtime) or "ok"
    return checks


def _health_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        if runtime is None:
            return _not_ready({"startup": "in progress"})
        checks = await _readiness(runtime)
        if all(value == "ok" for value in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        return _not_ready(checks)

    @router.get("/metrics")
    async def metrics() -> Response:
        return metrics_response()

    return router


def _not_ready(checks: dict[str, str]) -> JSONResponse:
    body = {"type": "about:blank", "title": "Service not ready", "status": 503, "checks": checks}
    return JSONResponse(body, status_code=503, media_type="application/problem+json")


def create_service_app(spec: ServiceSpec, settings: ServiceSettings) -> FastAPI:
    """Build the service's ASGI app; nothing connects until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _running(app, spec, settings):
            yield

    app = FastAPI(title=spec.name, version=spec.version, lifespan=lifespan)
    app.state.jwt_public_key = settings.jwt_public_key_pem
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, service=spec.name)
    app.include_router(_health_router())
    for router in spec.routers:
        app.include_router(router)
    telemetry.instrument_app(app)
    return app
