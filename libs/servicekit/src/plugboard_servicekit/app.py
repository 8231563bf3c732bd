"""The service app factory: one FastAPI app per service with the same runtime shape.

A service declares what is its own in a `ServiceSpec` (schema, migrations, routers,
event handlers, background tasks, readiness checks); the factory wires the rest:
logging, tracing, the pool, migrations, the outbox relay, the consumer, problem
responses, auth key, `/healthz`, `/readyz` and `/metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from plugboard_contracts.topics import all_topic_names

from plugboard_servicekit import db, kafka, telemetry
from plugboard_servicekit.auth import load_public_key
from plugboard_servicekit.consumer import BatchHandler, EventConsumer, Handler
from plugboard_servicekit.logging import configure_logging, get_logger
from plugboard_servicekit.metrics import metrics_response
from plugboard_servicekit.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from plugboard_servicekit.outbox import OutboxRelay
from plugboard_servicekit.problems import install_problem_handlers, problem_response
from plugboard_servicekit.settings import ServiceSettings
from plugboard_servicekit.tasks import cancel_and_wait, close_within

log = get_logger(__name__)

ReadinessCheck = Callable[["Runtime"], Awaitable[str | None]]
"""Returns None when ready, or a short reason why not."""
BackgroundTask = Callable[["Runtime"], Coroutine[Any, Any, None]]
_MESSAGING = "plugboard.messaging"
_FAILED_TASKS = "plugboard.failed_tasks"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    schema: str
    migrations: Path
    routers: Sequence[APIRouter] = ()
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    batch_handlers: Mapping[str, BatchHandler] = field(default_factory=dict)
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


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_runtime(request: Request) -> Runtime:
    """Dependency; async so FastAPI does not hop to a worker thread per request."""
    return runtime_of(request)


async def get_pool(request: Request) -> asyncpg.Pool:
    return runtime_of(request).pool


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
    """Start in dependency order; whatever started is stopped in reverse, even when a
    later step fails or a stop step raises."""
    tracer_provider = telemetry.configure_tracing(spec.name, settings.otlp_endpoint)
    if settings.auto_migrate:
        await db.migrate(settings.database_url, spec.schema, [spec.migrations])
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(tracer_provider.force_flush)
        pool = await db.create_pool(
            settings.database_url, spec.schema, max_size=settings.db_pool_size
        )
        stack.push_async_callback(close_within, pool.close())
        runtime = Runtime(spec=spec, settings=settings, pool=pool, state={_MESSAGING: "starting"})
        app.state.runtime = runtime
        relay = OutboxRelay(settings.database_url, spec.schema, settings.kafka_bootstrap_servers)
        stack.push_async_callback(relay.stop)
        consumer = _consumer_for(runtime)
        if consumer is not None:
            stack.push_async_callback(consumer.stop)
        if spec.on_startup is not None:
            await spec.on_startup(runtime)
        _supervise(runtime, stack, "messaging", _connect_messaging(runtime, relay, consumer))
        for task in spec.background:
            _supervise(runtime, stack, task.__name__, task(runtime))
        log.info("service_started", service=spec.name)
        yield
    log.info("service_stopped", service=spec.name)


def _supervise(
    runtime: Runtime, stack: contextlib.AsyncExitStack, name: str, work: Coroutine[Any, Any, None]
) -> None:
    """Run a background task; if it dies, log it and make `/readyz` say so, rather than
    letting a sweeper or the messaging start-up fail unseen."""

    def on_done(task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = type(task.exception()).__name__
        log.error("background_task_failed", task=name, error=error)
        runtime.state[_FAILED_TASKS][name] = f"failed: {error}"

    runtime.state.setdefault(_FAILED_TASKS, {})
    task = asyncio.create_task(work, name=name)
    task.add_done_callback(on_done)
    stack.push_async_callback(cancel_and_wait, task)


def _consumer_for(runtime: Runtime) -> EventConsumer | None:
    if not runtime.spec.handlers and not runtime.spec.batch_handlers:
        return None
    settings = runtime.settings
    return EventConsumer(
        runtime.pool,
        settings.kafka_bootstrap_servers,
        group_id=runtime.spec.name,
        handlers=runtime.spec.handlers,
        batch_handlers=runtime.spec.batch_handlers,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )


async def _readiness(runtime: Runtime, jwt_public_key: str | None) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        await runtime.pool.fetchval("SELECT 1", timeout=1.0)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported as not ready, not raised
        checks["database"] = f"unreachable: {type(exc).__name__}"
    reachable = await kafka.broker_reachable(runtime.settings.kafka_bootstrap_servers)
    checks["broker"] = "ok" if reachable else "unreachable"
    checks["messaging"] = runtime.state[_MESSAGING]
    checks["jwt_key"] = _jwt_key_check(jwt_public_key)
    checks.update(runtime.state[_FAILED_TASKS])
    for check in runtime.spec.readiness:
        try:
            checks[check.__name__] = await check(runtime) or "ok"
        except Exception as exc:  # noqa: BLE001 - a failing check means not ready
            checks[check.__name__] = f"failed: {type(exc).__name__}"
    return checks


def _jwt_key_check(pem: str | None) -> str:
    """Without a valid verifying key every protected route would answer 503."""
    if pem is None:
        return "missing: set PLUGBOARD_JWT_PUBLIC_KEY or PLUGBOARD_JWT_PUBLIC_KEY_FILE"
    try:
        load_public_key(pem)
    except ValueError as exc:
        return f"invalid: {type(exc).__name__}"
    return "ok"


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
        checks = await _readiness(runtime, request.app.state.jwt_public_key)
        if all(value == "ok" for value in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        return _not_ready(checks)

    @router.get("/metrics")
    async def metrics() -> Response:
        return metrics_response()

    return router


def _not_ready(checks: dict[str, str]) -> JSONResponse:
    return problem_response(503, "Service not ready", checks=checks)


def create_service_app(spec: ServiceSpec, settings: ServiceSettings) -> FastAPI:
    """Build the service's ASGI app; nothing connects until the lifespan starts.

    Logging is configured here, not in the lifespan, so the server's own start-up
    lines already go through the JSON formatter and its redaction."""
    configure_logging(spec.name, settings.log_level)

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


def service_app_factory(
    spec: ServiceSpec, settings_type: type[ServiceSettings]
) -> Callable[[], FastAPI]:
    """A uvicorn `--factory` target; settings are read from the environment when called."""

    def create_app() -> FastAPI:
        return create_service_app(spec, settings_type())

    return create_app


def serve(spec: ServiceSpec, settings_type: type[ServiceSettings]) -> None:
    """Run one service process on ``<PREFIX>HTTP_HOST:<PREFIX>HTTP_PORT`` (``python -m
    <package>``). uvicorn's access log and logging set-up stay off: the service writes
    its own JSON access line, without query strings."""
    settings = settings_type()
    app = create_service_app(spec, settings)
    uvicorn.run(
        app, host=settings.http_host, port=settings.http_port, access_log=False, log_config=None
    )
