"""The installation service: its composition root, its ``ServiceSpec`` and the ASGI app.

Run: ``python -m installation`` (binds ``INSTALLATION_HTTP_HOST:INSTALLATION_HTTP_PORT``),
or ``uvicorn installation.app:create_app --factory``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from plugboard_servicekit.app import Runtime, ServiceSpec, create_service_app
from plugboard_servicekit.client import ServiceClient
from plugboard_servicekit.logging import get_logger

from installation.api.connections import router as connections_router
from installation.api.projects import router as projects_router
from installation.consumers import SUBSCRIPTIONS
from installation.deps import InstallationDeps
from installation.domain import keys
from installation.remote import Remote
from installation.service_connections import ConnectionService
from installation.service_installations import InstallationService
from installation.service_integrations import IntegrationService
from installation.service_projects import ProjectService
from installation.settings import InstallationSettings

SERVICE_NAME = "installation"
PEERS = ("credential-vault", "oauth-broker", "connector-registry")
log = get_logger(__name__)


def _signing_key(settings: InstallationSettings) -> Ed25519PrivateKey | None:
    if settings.token_signing_key is None:
        log.info("token_signing_key_absent")
        return None
    try:
        return keys.load_private_key(settings.token_signing_key.get_secret_value())
    except ValueError as exc:
        log.error("token_signing_key_unusable", error=type(exc).__name__)
        return None


def _remote(runtime: Runtime[InstallationSettings]) -> Remote:
    """Clients to the peers; none without an identity key (calls then answer 503)."""
    can_sign = runtime.identity.can_sign
    clients: dict[str, ServiceClient | None] = {
        peer: ServiceClient.to(runtime, peer) if can_sign else None for peer in PEERS
    }
    return Remote(clients)


@asynccontextmanager
async def installation_dependencies(
    runtime: Runtime[InstallationSettings],
) -> AsyncIterator[InstallationDeps]:
    """The composition root: peers' clients and the use cases, built once."""
    settings, pool = runtime.settings, runtime.pool
    signing = _signing_key(settings)
    jwks: dict[str, Any] = {"keys": [keys.jwk_of(signing)] if signing is not None else []}
    remote = _remote(runtime)
    projects = ProjectService(pool, signing, settings.token_ttl_seconds)
    integrations = IntegrationService(pool, remote, projects)
    try:
        yield InstallationDeps(
            settings=settings,
            pool=pool,
            remote=remote,
            projects=projects,
            integrations=integrations,
            connections=ConnectionService(pool, remote, projects),
            installations=InstallationService(pool, remote, projects, integrations),
            jwks=jwks,
        )
    finally:
        await remote.aclose()


SPEC = ServiceSpec[InstallationSettings, InstallationDeps](
    name=SERVICE_NAME,
    schema="installation",
    migrations=Path(__file__).parent / "migrations",
    settings_type=InstallationSettings,
    dependencies=installation_dependencies,
    routers=[projects_router, connections_router],
    subscriptions=SUBSCRIPTIONS,
)


def create_app(settings: InstallationSettings | None = None) -> FastAPI:
    """The app (uvicorn ``--factory``); settings from the environment unless given."""
    return create_service_app(SPEC, settings or InstallationSettings())
