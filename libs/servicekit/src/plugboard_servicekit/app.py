"""The service app factory: one FastAPI app per service with the same runtime shape.

A service declares what is its own in a ``ServiceSpec``: schema, migrations, settings
type, and its composition root ``dependencies``, an async context manager that builds
the service's typed deps object once (use cases, HTTP clients, caches) from the
``Runtime`` servicekit built (settings, pool, identity) and closes it on shutdown.
Routes (``http.authorize``), event handlers, background tasks and readiness checks all
receive that same object. The factory wires the rest: logging, tracing, migrations,
the pool, the outbox relay, the consumer, problem responses, token verification,
``/healthz``, ``/readyz`` and ``/metrics``.

Readiness means this process can serve its HTTP API: database reachable, platform
key usable, own signing key present when it calls other services, no background
task died, the service's own checks pass. The broker's state is reported in the
``/readyz`` body and in ``plugboard_broker_up``, never as a 503: writes go to the
outbox, which drains when the broker is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from plugboard_contracts.topics import all_topic_names

from plugboard_servicekit import db, http, kafka, metrics, revocations, telemetry, tuning
from plugboard_servicekit.auth import TokenVerifier, load_public_key
from plugboard_servicekit.consumer import EventConsumer
from plugboard_servicekit.identity import ServiceIdentity
from plugboard_servicekit.logging import configure_logging, get_logger
from plugboard_servicekit.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from plugboard_servicekit.outbox import OutboxRelay
from plugboard_servicekit.problems import install_problem_handlers, problem_response
from plugboard_servicekit.settings import ServiceSettings
from plugboard_servicekit.subscriptions import Subscription
from plugboard_servicekit.tasks import cancel_and_wait, close_within

log = get_logger(__name__)

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
DepsT = TypeVar("DepsT")
_MESSAGING_STEP_SECONDS = 15.0
"""Bound on one attempt to create topics / join the group: a stalled broker accepts
TCP connections and then never answers."""
_FROZEN = False
"""Whether the start-up heap was frozen already (once per process, however many apps)."""
KEEPALIVE_SECONDS = 75
"""How long a service keeps an idle client connection open (see ``serve``)."""


@dataclass
class MessagingState:
    """The broker as this process sees it: reported, never a reason to stop serving."""

    status: str = "starting"
    """``starting`` until the topics exist and the relay and consumer started; ``running``."""
    broker: str = "unknown"
    """``up`` or ``down`` from the last probe (a real Kafka request, not a TCP connect)."""


@dataclass(frozen=True)
class Runtime(Generic[SettingsT]):
    """What servicekit built before the service's deps; ``dependencies`` gets it."""

    spec: ServiceSpec[SettingsT, Any]
    settings: SettingsT
    pool: asyncpg.Pool
    identity: ServiceIdentity
    messaging: MessagingState


@dataclass(frozen=True)
class ServiceSpec(Generic[SettingsT, DepsT]):
    name: str
    schema: str
    migrations: Path
    settings_type: type[SettingsT]
    dependencies: Callable[[Runtime[SettingsT]], AbstractAsyncContextManager[DepsT]]
    routers: Sequence[APIRouter] = ()
    subscriptions: Sequence[Subscription[DepsT]] = ()
    background: Sequence[Callable[[DepsT], Coroutine[Any, Any, None]]] = ()
    readiness: Sequence[Callable[[DepsT], Awaitable[str | None]]] = ()
    """Each returns None when ready, or a short reason; named by ``__name__`` in /readyz."""
    reports: Sequence[Callable[[DepsT], str | None]] = ()
    """Shown under ``reported`` in /readyz (None: nothing to say), never gating: a state
    worth an operator's eye that must not take every replica out of service at once
    (the vault keeps serving with its old key ring when a new ring file is refused)."""
    trusted_services: frozenset[str] = frozenset()
    """Services whose service tokens this one accepts (platform tokens always work)."""
    version: str = "0.1.0"


@asynccontextmanager
async def runtime_dependencies(runtime: Runtime[Any]) -> AsyncIterator[Runtime[Any]]:
    """For a service with nothing of its own yet: its deps object is the runtime."""
    yield runtime


@dataclass
class _Running(Generic[DepsT]):
    runtime: Runtime[Any]
    deps: DepsT
    failed_tasks: dict[str, str] = field(default_factory=dict)
    revocation_watcher: revocations.RevocationWatcher | None = None


def runtime_of(app: FastAPI) -> Runtime[Any]:
    """The running service's runtime (tests, operators' tools); after start-up only."""
    return app.state.plugboard_running.runtime


def dependencies_of(app: FastAPI) -> Any:
    """The running service's deps object; after start-up only."""
    return app.state.plugboard_running.deps


async def _connect_messaging(
    running: _Running[Any], relay: OutboxRelay, consumer: EventConsumer[Any] | None
) -> None:
    """Create the topic catalogue, then start publishing and consuming, retrying until
    the broker answers. Topics come first so that no publish auto-creates one with the
    wrong partition count; until then writes wait in the outbox."""
    runtime = running.runtime
    bootstrap = runtime.settings.kafka_bootstrap_servers
    while True:
        try:
            async with asyncio.timeout(_MESSAGING_STEP_SECONDS):
                await kafka.ensure_topics(bootstrap, all_topic_names())
            if consumer is not None:
                async with asyncio.timeout(_MESSAGING_STEP_SECONDS):
                    await consumer.start()
            break
        except Exception as exc:  # noqa: BLE001 - retried until the broker is back
            log.warning("messaging_start_failed", error=type(exc).__name__)
            await asyncio.sleep(2)
    relay.start()
    runtime.messaging.status = "running"
    metrics.MESSAGING_RUNNING.labels(service=runtime.spec.name).set(1)


async def _watch_broker(runtime: Runtime[Any]) -> None:
    """Probe the broker on a timer for /readyz and ``plugboard_broker_up``."""
    settings = runtime.settings
    gauge = metrics.BROKER_UP.labels(service=runtime.spec.name)
    while True:
        up = await kafka.broker_answers(settings.kafka_bootstrap_servers, timeout=2.0)
        if (runtime.messaging.broker == "up") != up:
            log.info("broker_state", broker="up" if up else "down")
        runtime.messaging.broker = "up" if up else "down"
        gauge.set(1 if up else 0)
        await asyncio.sleep(settings.broker_probe_seconds)


@asynccontextmanager
async def _running(
    app: FastAPI,
    spec: ServiceSpec[Any, Any],
    settings: ServiceSettings,
    identity: ServiceIdentity,
) -> AsyncIterator[None]:
    """Start in dependency order; whatever started is stopped in reverse, even when a
    later step fails or a stop step raises. The deps close after the consumer, relay
    and background tasks that use them have stopped."""
    tracer_provider = telemetry.configure_tracing(spec.name, settings.otlp_endpoint)
    if settings.auto_migrate:
        await db.migrate(settings.database_url, spec.schema, [spec.migrations])
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(tracer_provider.force_flush)
        pool = await db.create_pool(
            settings.database_url, spec.schema, max_size=settings.db_pool_size
        )
        stack.push_async_callback(close_within, pool.close())
        metrics.MESSAGING_RUNNING.labels(service=spec.name).set(0)
        runtime = Runtime(spec, settings, pool, identity, MessagingState())
        deps = await stack.enter_async_context(spec.dependencies(runtime))
        running = _Running(runtime, deps)
        app.state.plugboard_running = running
        relay = OutboxRelay(settings.database_url, spec.schema, settings.kafka_bootstrap_servers)
        stack.push_async_callback(relay.stop)
        consumer = _consumer_for(runtime, deps)
        stack.push_async_callback(consumer.stop)
        running.revocation_watcher = revocations.RevocationWatcher(
            settings.database_url, spec.schema, pool, http.context_of(app).verifier
        )
        await running.revocation_watcher.start()
        stack.push_async_callback(running.revocation_watcher.stop)
        _supervise(running, stack, "broker", _watch_broker(runtime))
        _supervise(running, stack, "messaging", _connect_messaging(running, relay, consumer))
        for task in spec.background:
            _supervise(running, stack, task.__name__, task(deps))
        http.context_of(app).deps = deps
        stack.callback(setattr, http.context_of(app), "deps", None)
        _freeze_once()
        log.info("service_started", service=spec.name)
        yield
    log.info("service_stopped", service=spec.name)


def _freeze_once() -> None:
    """Freeze the start-up heap once per process: a test process starting many apps
    must not freeze each one's leftovers for good."""
    global _FROZEN
    if not _FROZEN:
        _FROZEN = True
        tuning.freeze_startup_heap()


def _supervise(
    running: _Running[Any],
    stack: contextlib.AsyncExitStack,
    name: str,
    work: Coroutine[Any, Any, None],
) -> None:
    """Run a background task; if it dies, log it and make `/readyz` say so, rather than
    letting a sweeper or the messaging start-up fail unseen."""

    def on_done(task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = type(task.exception()).__name__
        log.error("background_task_failed", task=name, error=error)
        running.failed_tasks[name] = f"failed: {error}"

    task = asyncio.create_task(work, name=name)
    task.add_done_callback(on_done)
    stack.push_async_callback(cancel_and_wait, task)


def _consumer_for(runtime: Runtime[Any], deps: Any) -> EventConsumer[Any]:
    """Every service consumes, if only the built-in ``api_key.revoked``."""
    settings = runtime.settings
    return EventConsumer(
        runtime.pool,
        settings.kafka_bootstrap_servers,
        settings.kafka_group_prefix + runtime.spec.name,
        deps,
        revocations.with_builtin(runtime.spec.subscriptions),
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )


async def _checks(running: _Running[Any]) -> dict[str, str]:
    """What gates readiness: can this process serve its HTTP API."""
    runtime = running.runtime
    checks: dict[str, str] = {}
    try:
        await runtime.pool.fetchval("SELECT 1", timeout=1.0)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported as not ready, not raised
        checks["database"] = f"unreachable: {type(exc).__name__}"
    checks["jwt_key"] = _jwt_key_check(runtime.settings.jwt_public_key_pem)
    signing = runtime.identity.signing_status()
    if signing is not None:
        checks["service_key"] = signing
    checks.update(running.failed_tasks)
    for check in runtime.spec.readiness:
        try:
            checks[check.__name__] = await check(running.deps) or "ok"
        except Exception as exc:  # noqa: BLE001 - a failing check means not ready
            checks[check.__name__] = f"failed: {type(exc).__name__}"
    return checks


def _reported(running: _Running[Any]) -> dict[str, str]:
    """Reported in the body, never gating: the outbox absorbs a broker outage, and a
    missing caller key only refuses that caller's calls."""
    runtime = running.runtime
    reported = {"broker": runtime.messaging.broker, "messaging": runtime.messaging.status}
    watcher = running.revocation_watcher
    if watcher is not None and (note := watcher.status()) is not None:
        reported["revocations"] = note
    if runtime.spec.trusted_services:
        reported["trusted_service_keys"] = runtime.identity.peers_status(
            runtime.spec.trusted_services
        )
    for report in runtime.spec.reports:
        try:
            note = report(running.deps)
        except Exception as exc:  # noqa: BLE001 - a report never breaks readiness
            note = f"failed: {type(exc).__name__}"
        if note is not None:
            reported[report.__name__] = note
    return reported


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
        running: _Running[Any] | None = getattr(request.app.state, "plugboard_running", None)
        if running is None:
            return problem_response(503, "Service not ready", checks={"startup": "in progress"})
        checks = await _checks(running)
        reported = _reported(running)
        if all(value == "ok" for value in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks, "reported": reported})
        return problem_response(503, "Service not ready", checks=checks, reported=reported)

    @router.get("/metrics")
    async def metrics_endpoint() -> Response:
        return metrics.metrics_response()

    return router


def create_service_app(spec: ServiceSpec[SettingsT, Any], settings: SettingsT) -> FastAPI:
    """Build the service's ASGI app; nothing connects until the lifespan starts.

    Logging is configured here, not in the lifespan, so the server's own start-up
    lines already go through the JSON formatter and its redaction."""
    configure_logging(spec.name, settings.log_level)
    identity = ServiceIdentity.load(spec.name, settings.service_keys_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _running(app, spec, settings, identity):
            yield

    app = FastAPI(
        title=spec.name,
        version=spec.version,
        lifespan=lifespan,
        telemetry=telemetry.NATIVE_TELEMETRY_OFF,
    )
    verifier = TokenVerifier(
        settings.jwt_public_key_pem,
        audience=spec.name,
        trusted_services=spec.trusted_services,
        peer_keys=identity.peer_key,
    )
    http.bind(app, verifier)
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, service=spec.name)
    for router in (_health_router(), *spec.routers):
        _mount(app, router)
    telemetry.instrument_app(app, settings.otlp_endpoint)
    return app


def _mount(app: FastAPI, router: APIRouter) -> None:
    """Add the router's routes to the app's own router rather than including it: FastAPI
    0.16x matches an included router as a nested branch, one more dispatch per request
    (15-30 us of a trivial route's ~100). Each route already carries its router's
    prefix, tags, dependencies, route class and ``include_in_schema``."""
    app.router.routes.extend(router.routes)


def service_app_factory(spec: ServiceSpec[Any, Any]) -> Callable[[], FastAPI]:
    """A uvicorn ``--factory`` target; settings are read from the environment when called."""

    def create_app() -> FastAPI:
        return create_service_app(spec, spec.settings_type())

    return create_app


def serve(spec: ServiceSpec[Any, Any]) -> None:
    """Run one service process on ``<PREFIX>HTTP_HOST:<PREFIX>HTTP_PORT`` (``python -m
    <package>``). uvicorn's access log and logging set-up stay off: the service writes
    its own JSON access line, without query strings.

    Idle connections are kept ``KEEPALIVE_SECONDS``, longer than any client here keeps
    one (httpio 30 s, httpx 5 s): the client always closes first. uvicorn's 5 s default
    raced httpx's 5 s, and a connection the server closed just as a client reused it
    failed that request (a POST cannot be repeated)."""
    settings = spec.settings_type()
    app = create_service_app(spec, settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, access_log=False,
                log_config=None, timeout_keep_alive=KEEPALIVE_SECONDS)  # fmt: skip
