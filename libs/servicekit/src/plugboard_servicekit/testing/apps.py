"""A service app under test: its real lifespan on a fresh provisioned schema, reached
in-process over the ASGI transport (no port, no uvicorn).

The schema and the consumer group are new for each client (unless a test passes
`schema=` to start a second replica on the same one), so tests share one database
and one broker without seeing each other's rows or partitions.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import httpx
from fastapi import FastAPI

from plugboard_servicekit import db
from plugboard_servicekit.app import (
    Runtime,
    ServiceSpec,
    create_service_app,
    dependencies_of,
    runtime_of,
)
from plugboard_servicekit.settings import ServiceSettings
from plugboard_servicekit.testing.waiting import wait_until

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
DepsT = TypeVar("DepsT")

TEST_KAFKA_TIMINGS = {"kafka_session_timeout_ms": 2000, "kafka_heartbeat_interval_ms": 300}
"""Consumer-group join on Tansu takes about session_timeout/2 (TOOLCHAIN.md)."""


def test_settings(
    spec: ServiceSpec[SettingsT, Any],
    *,
    postgres_dsn: str,
    kafka_bootstrap: str,
    jwt_public_key: str,
    **overrides: Any,
) -> SettingsT:
    """The service's own settings type (`spec.settings_type`) pointed at the session's
    servers, with test timings; `overrides` are its fields (e.g. `keyring_file=`)."""
    values: dict[str, Any] = {
        "database_url": postgres_dsn,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "jwt_public_key": jwt_public_key,
        "log_level": "DEBUG",
        **TEST_KAFKA_TIMINGS,
        **overrides,
    }
    return spec.settings_type(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest


class AppClient(httpx.AsyncClient, Generic[SettingsT, DepsT]):
    """An httpx client bound to one running service app; `deps` and `runtime` reach
    its composition root for what a test cannot see through HTTP."""

    def __init__(
        self, app: FastAPI, spec: ServiceSpec[SettingsT, DepsT], settings: SettingsT, schema: str
    ) -> None:
        super().__init__(transport=httpx.ASGITransport(app=app), base_url=f"http://{spec.name}")
        self.app = app
        self.spec = spec
        self.settings = settings
        self.schema = schema

    @property
    def runtime(self) -> Runtime[SettingsT]:
        return runtime_of(self.app)

    @property
    def deps(self) -> DepsT:
        return dependencies_of(self.app)

    async def ready(self) -> bool:
        return (await self.get("/readyz")).status_code == 200


@asynccontextmanager
async def service_client(
    spec: ServiceSpec[SettingsT, DepsT],
    settings: SettingsT,
    *,
    schema: str | None = None,
    name: str | None = None,
    ready: bool = True,
    timeout: float = 30.0,
) -> AsyncIterator[AppClient[SettingsT, DepsT]]:
    """Run `spec` with `settings` (whose `database_url` is the admin DSN) on `schema`,
    a fresh one by default: its role and schema are provisioned, the app connects as
    that role and migrates at start-up, as a deployment does. Waits for /readyz 200
    unless `ready=False`; the lifespan ends (everything stopped) with the block.

    The app runs as `<spec.name>-<schema>`; its name is also its service identity: pass
    `name=spec.name` when the test signs or checks service tokens. Its consumer group is
    prefixed with the schema either way, so apps on one schema (replicas) share a group
    and no other test's app joins it (on Tansu a group whose members just left rejoins
    slowly, and every app consumes at least the built-in ``api_key.revoked``)."""
    schema = schema or f"t_{uuid.uuid4().hex[:16]}"
    role_dsn = await db.provision(settings.database_url, schema, schema)
    prefix = f"{settings.kafka_group_prefix}{schema}."
    settings = settings.model_copy(
        update={"database_url": role_dsn, "auto_migrate": True, "kafka_group_prefix": prefix}
    )
    spec = dataclasses.replace(spec, name=name or f"{spec.name}-{schema}", schema=schema)
    app = create_service_app(spec, settings)
    async with app.router.lifespan_context(app), AppClient(app, spec, settings, schema) as client:
        if ready:
            await wait_until(client.ready, timeout, message=f"{spec.name} not ready")
        yield client
